"""The series deploy/monitoring's alerts and dashboard read: /warmup answers by status and code (at zero
from the start, so the first 500 is an increase), whether the last warmup passed, the queue's capacity."""

from __future__ import annotations

from petcut.model.runtime import State
from tests.support.fakes import Loader, corrupt
from tests.support.metrics import scrape
from tests.support.service import Service, degraded_service, make_settings, run

WARMUP = "petcut_warmup_responses_total"


def test_warmup_answers_exist_at_zero_then_count_success() -> None:
    async def scenario() -> None:
        async with Service(make_settings(max_queue=3)) as svc:
            await svc.wait_state(State.READY)
            m = await scrape(svc)
            for status, code in (("success", "200"), ("partial", "206"), ("error", "500"), ("loading", "503")):
                assert m.has(WARMUP, status=status, code=code) and m(WARMUP, status=status, code=code) == 0
            assert m("petcut_warmup_last_passed") == 1  # the startup warmup passed
            assert m("petcut_inference_queue_capacity") == 3
            assert (await svc.client.post("/warmup")).status_code == 200
            assert (await svc.client.get("/warmup")).status_code == 200
            m = await scrape(svc)
            assert m(WARMUP, status="success", code="200") == 2
            assert m(WARMUP, status="partial", code="206") == 0 and m(WARMUP, status="error", code="500") == 0

    run(scenario())


def test_partial_warmup_counts_206_and_last_passed_0_until_a_warmup_passes() -> None:
    async def scenario() -> None:
        async with degraded_service() as (svc, segmenter):
            m = await scrape(svc)
            assert m("petcut_warmup_last_passed") == 0
            assert m(WARMUP, status="partial", code="206") == 0  # the startup warmup is not a /warmup answer
            segmenter.faults.append(ValueError("and again"))
            response = await svc.client.post("/warmup")
            assert response.status_code == 206 and response.headers["x-warmup-status"] == "partial"
            m = await scrape(svc)
            assert m(WARMUP, status="partial", code="206") == 1 and m("petcut_warmup_last_passed") == 0
            assert (await svc.client.post("/warmup")).status_code == 200
            m = await scrape(svc)
            assert m(WARMUP, status="success", code="200") == 1 and m("petcut_warmup_last_passed") == 1

    run(scenario())


def test_failed_load_warmup_counts_500_and_has_no_last_warmup() -> None:
    async def scenario() -> None:
        async with Service(loader=Loader(errors=[corrupt(), corrupt()])) as svc:
            await svc.wait_state(State.FAILED)
            response = await svc.client.post("/warmup")
            assert response.status_code == 500 and response.headers["x-warmup-status"] == "error"
            m = await scrape(svc)
            assert m(WARMUP, status="error", code="500") == 1
            assert m(WARMUP, status="success", code="200") == 0
            assert not m.has("petcut_warmup_last_passed")  # no model, so no warmup ever ran

    run(scenario())


def test_warmup_answer_labels_stay_bounded() -> None:
    from petcut.observability import Metrics

    metrics = Metrics(process=False)
    metrics.warmup_answer("something a proxy made up", 500)
    metrics.warmup_answer(None, 500)
    assert metrics.sample(WARMUP, status="other", code="500") == 2
    assert b"made up" not in metrics.render()
