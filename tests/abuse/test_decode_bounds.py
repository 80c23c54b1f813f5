"""docs/security.md, scan bombs: a progressive-JPEG scan bomb must not burn CPU before admission or after the
client has gone; JPEGs with implausible scan counts are refused before decoding; every decode has a
deadline."""

from __future__ import annotations

import asyncio
import threading
from io import BytesIO

import pytest
from PIL import Image

from petcut import pipeline as pipeline_module
from petcut.api.deps import CpuPool, unless_disconnected
from petcut.api.errors import ApiError
from petcut.imaging import bounds
from petcut.imaging.decode import decode_image
from tests.support.bombs import progressive_jpeg, scan_bomb
from tests.support.checks import check_error, check_png
from tests.support.images import jpeg_bytes
from tests.support.service import Service, make_settings, run, wait_for
from tests.support.shared_data import pet_photos

LIMITS = {"max_bytes": 50 << 20, "max_pixels": 60_000_000}


def test_a_normal_progressive_jpeg_has_about_ten_scans_and_a_bomb_thousands() -> None:
    assert 2 <= bounds.count_jpeg_scans(progressive_jpeg(64)) <= 12
    assert bounds.count_jpeg_scans(jpeg_bytes()) == 1  # baseline
    assert bounds.count_jpeg_scans(scan_bomb(side=64, repeats=500)) > 500


def test_scan_count_ignores_marker_bytes_inside_header_segments() -> None:
    buffer = BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(buffer, "JPEG", comment=b"\xff\xda" * 200)
    assert bounds.count_jpeg_scans(buffer.getvalue()) == 1


def test_the_shops_photos_are_far_below_the_scan_limit() -> None:
    photos = pet_photos()
    assert photos
    for photo in photos:
        assert bounds.count_jpeg_scans(photo.read_bytes()) <= 16, photo.name


def test_scan_bomb_is_refused_before_pillow_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("Image.open was called for a JPEG over the scan limit")

    monkeypatch.setattr("petcut.imaging.decode.Image.open", no_open)
    with pytest.raises(bounds.TooManyScans) as refused:
        decode_image(scan_bomb(side=64, repeats=200), max_scans=64, **LIMITS)
    assert refused.value.http_status == 422 and refused.value.code == "too_many_scans"


def test_every_decode_has_a_deadline() -> None:
    bomb = scan_bomb()  # a couple of seconds of CPU when decoded to the end
    with pytest.raises(bounds.DecodeTimeout) as refused:
        decode_image(bomb, timeout_s=0.05, **LIMITS)  # no scan limit: the deadline must stop it
    assert refused.value.http_status == 422 and refused.value.code == "decode_timeout"
    decoded = decode_image(progressive_jpeg(256), max_scans=64, timeout_s=30, **LIMITS)
    assert decoded.width == 256


def test_a_cancelled_decode_stops() -> None:
    with bounds.cancellation() as gone:
        gone.set()
        with pytest.raises(bounds.DecodeCancelled):
            decode_image(jpeg_bytes(), timeout_s=30, **LIMITS)


def test_scan_bomb_upload_gets_422_too_many_scans() -> None:
    async def scenario() -> None:
        async with Service(make_settings()) as svc:
            await svc.wait_state(*_ready())
            check_error(await svc.process(scan_bomb(side=256, repeats=300)), 422, "too_many_scans")
            check_png(await svc.process(progressive_jpeg(64)), (64, 64))

    run(scenario())


def test_queue_full_refuses_before_any_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    real = pipeline_module.decode_image

    def counting(data: bytes, **kwargs: object):  # type: ignore[no-untyped-def]
        decoded.append(len(data))
        return real(data, **kwargs)

    monkeypatch.setattr(pipeline_module, "decode_image", counting)

    async def scenario() -> None:
        async with Service(make_settings(max_queue=1, max_jpeg_scans=10_000)) as svc:
            await svc.wait_state(*_ready())
            segmenter = svc.segmenter
            first = await svc.occupy_worker(segmenter)
            second = asyncio.ensure_future(svc.process())
            await wait_for(lambda: svc.runtime.worker.depth == 1, what="second job queued")
            before = len(decoded)
            check_error(await svc.process(scan_bomb(repeats=500)), 503, "overloaded")
            assert len(decoded) == before, "the bomb was decoded although the queue was full"
            segmenter.gate.set()
            assert (await first).status_code == 200 and (await second).status_code == 200

    run(scenario())


class _GoneRequest:
    """The least of a Starlette request that ``unless_disconnected`` reads: a client that has gone."""

    async def receive(self) -> dict[str, str]:
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}


def test_a_client_that_goes_stops_its_decode() -> None:
    outcome: list[object] = []
    finished = threading.Event()

    def decode() -> None:
        try:
            outcome.append(decode_image(scan_bomb(), timeout_s=120, **LIMITS))
        except Exception as exc:
            outcome.append(exc)
        finally:
            finished.set()

    async def scenario() -> None:
        cpu = CpuPool(1)
        with pytest.raises(ApiError) as gone:
            await unless_disconnected(_GoneRequest(), cpu.run(decode))  # type: ignore[arg-type]
        assert gone.value.status == 499
        await wait_for(finished.is_set, timeout=60, what="the decode thread to end")

    run(scenario(), timeout=90)
    assert len(outcome) == 1 and isinstance(outcome[0], bounds.DecodeCancelled), outcome


def _ready():  # type: ignore[no-untyped-def]
    from petcut.model.runtime import State

    return (State.READY,)
