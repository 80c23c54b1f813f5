"""A server started with a corrupt checkpoint, through the real loader: it stays up and says so."""

from __future__ import annotations

from pathlib import Path

from petcut.api.app import default_loader
from petcut.model.runtime import State
from tests.support.checks import check_edge, check_error
from tests.support.service import ORIGIN, Service, make_settings, run


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt_base.pth"
    checkpoint.write_bytes(b"this is not a torch checkpoint \x00\x01\x02" * 1000)

    async def scenario() -> None:
        settings = make_settings(checkpoint=checkpoint, device="cpu", mode="fast", load_attempts=3)
        async with Service(settings, default_loader) as svc:
            await svc.wait_state(State.FAILED, timeout=120)
            assert svc.runtime.load_attempts == 1  # a corrupt file is permanent: no retry

            health = await svc.client.get("/health")
            assert health.status_code == 200
            check_edge(health, ORIGIN)
            assert health.json()["model_status"] == "failed"

            ready = check_error(await svc.client.get("/ready"), 503, "not_ready")
            assert "corrupt" in ready["reason"] and str(tmp_path) not in ready["reason"]

            check_error(await svc.process(), 503, "model_unavailable")

            warmup = await svc.client.post("/warmup")
            body = check_error(warmup, 500, "model_load_failed")
            assert body["status"] == "error" and body["model_ready"] is False
            assert warmup.headers["x-warmup-status"] == "error"
            assert warmup.headers["x-model-ready"] == "false"
            assert str(tmp_path) not in warmup.text

    run(scenario(), timeout=180)
