"""The service on the real network (random weights, CPU): warmup at the configured resize mode, the
16×16 image included (the old service's warmup failed on it under dynamic resize, yet answered 200)."""

from __future__ import annotations

from pathlib import Path

import pytest

from petcut.api.app import default_loader
from petcut.model.runtime import State
from tests.support.checks import check_edge, check_png
from tests.support.images import jpeg_bytes
from tests.support.service import Service, make_settings, run


@pytest.mark.slow
@pytest.mark.parametrize("resize", ["static", "dynamic"])
def test_real_model_warmup_and_processing(random_checkpoint: Path, resize: str) -> None:
    async def scenario() -> None:
        settings = make_settings(
            checkpoint=random_checkpoint, mode="fast", resize=resize, device="cpu", inference_timeout_s=120
        )
        async with Service(settings, default_loader) as svc:
            await svc.wait_state(State.READY, State.DEGRADED, State.FAILED, timeout=240)
            assert svc.runtime.state is State.READY, svc.runtime.status()
            response = await svc.client.post("/warmup")
            check_edge(response)
            body = response.json()
            assert response.status_code == 200, body
            assert body["status"] == "success" and body["resize"] == resize and body["device"] == "cpu"
            assert body["details"]["tiny"] == body["details"]["tiny"] | {"width": 16, "height": 16}
            check_png(await svc.process(jpeg_bytes(40, 30)), (40, 30))

    run(scenario(), timeout=300)
