"""What runs is visible: model, engine, device, precision and why, in /, /ready and the metrics."""

from __future__ import annotations

from petcut.model.runtime import State
from tests.support.fakes import FakeSegmenter, Loader
from tests.support.service import Service, make_settings, run

INFO = {"model": "inspyrenet", "engine": "openvino", "device": "cpu", "precision": "bf16",
        "engine_reason": "auto: CPU with a verified prepared artifact"}  # fmt: skip


class InfoSegmenter(FakeSegmenter):
    info = INFO


def test_ready_root_and_metrics_say_which_engine_runs() -> None:
    async def scenario() -> None:
        async with Service(make_settings(), Loader(InfoSegmenter())) as svc:
            await svc.wait_state(State.READY)
            ready = (await svc.client.get("/ready")).json()
            root = (await svc.client.get("/")).json()
            metrics = (await svc.client.get("/metrics")).text
        assert ready["engine"] == INFO and root["engine"] == INFO
        assert 'petcut_model_info{device="cpu",engine="openvino",model="inspyrenet",precision="bf16"} 1.0' in metrics

    run(scenario())


def test_engine_is_null_until_a_model_is_loaded() -> None:
    async def scenario() -> None:
        async with Service(make_settings(skip_model_preload=True), Loader(InfoSegmenter())) as svc:
            ready = await svc.client.get("/ready")
            metrics = (await svc.client.get("/metrics")).text
        assert ready.status_code == 503 and ready.json()["engine"] is None
        assert "petcut_model_info{" not in metrics

    run(scenario())
