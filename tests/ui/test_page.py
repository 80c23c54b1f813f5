"""The web page at /ui/ in a real browser, and the shop's cross-origin request from another origin."""

from __future__ import annotations

import base64
import re
import threading
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import expect

from petcut import effects
from tests.support.browser import WAIT_MS, LiveServer
from tests.support.fakes import Loader, corrupt
from tests.support.shared_data import pet_photo

pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CUTOUT_EFFECT = "color"  # the page shows the registry's identity effect as the cut-out
PROCESS_PATH = "/api/v2/process-with-effects"


def squid() -> Path:
    return pet_photo("Squid.jpg")


def squid_size() -> tuple[int, int]:
    with Image.open(squid()) as image:
        return image.size


def effect_names() -> list[str]:
    return [name for name in effects.names() if name != CUTOUT_EFFECT]


def open_ui(page: Any, server: LiveServer) -> None:
    page.goto(server.url + "/ui")  # the redirect to /ui/ is part of the contract
    assert page.url == server.url + "/ui/"
    expect(page.get_by_role("heading", name="petcut")).to_be_visible()


def wait_images_decoded(page: Any, count: int) -> None:
    """``count`` result cards plus both layers of the comparison, every image decoded."""
    page.wait_for_function(
        """count => {
            const imgs = [...document.querySelectorAll('#result-grid img')];
            const all = [...imgs, document.getElementById('compare-before'),
                         document.getElementById('compare-after-img')];
            return imgs.length === count && all.every(img => img.complete && img.naturalWidth > 0);
        }""",
        arg=count,
        timeout=WAIT_MS,
    )


def wait_effects_listed(page: Any) -> None:
    expect(page.locator("#effects-list input[type=checkbox]")).to_have_count(len(effect_names()), timeout=WAIT_MS)


def process_calls(page: Any) -> list[tuple[str, float, Any]]:
    """('request'|'response', monotonic time, object) for each process-with-effects call, as they happen."""
    calls: list[tuple[str, float, Any]] = []
    page.on("request", lambda r: PROCESS_PATH in r.url and calls.append(("request", time.monotonic(), r)))
    page.on("response", lambda r: PROCESS_PATH in r.url and calls.append(("response", time.monotonic(), r)))
    return calls


# --- (a) upload a photo, see the cut-out and every effect, the slider ----------------------------------
def test_upload_shows_cutout_effects_and_slider(ready_server: LiveServer, page_factory: Any, tmp_path: Path) -> None:
    page = page_factory(viewport={"width": 1280, "height": 900})
    open_ui(page, ready_server)
    expect(page.locator("#model-state")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    expect(page.locator("#model-state")).to_contain_text("ready")
    wait_effects_listed(page)
    # registry-driven: one labelled checkbox per effect of the catalogue
    for name in effect_names():
        page.get_by_label(name, exact=True).check()
    calls = process_calls(page)

    page.get_by_label("Choose a pet photo").set_input_files(squid())

    cards = page.locator("#result-grid li")
    expect(cards).to_have_count(1 + len(effect_names()), timeout=WAIT_MS)
    wait_images_decoded(page, 1 + len(effect_names()))
    assert [c.get_attribute("data-effect") for c in cards.all()] == ["cutout", *effect_names()]
    expect(page.locator("#results-summary")).to_contain_text("Done in")
    expect(page.get_by_role("alert")).to_be_hidden()
    # the shop's request: JSON with every effect (the cut-out first) named in the query
    request = next(obj for kind, _, obj in calls if kind == "request")
    assert request.method == "POST" and request.url.startswith(ready_server.url + PROCESS_PATH + "?")
    assert "return_all_effects=true" in request.url
    assert "effects=" + "%2C".join([CUTOUT_EFFECT, *effect_names()]) in request.url

    # the cut-out keeps the photo's size and really is transparent around the subject
    width, height = squid_size()
    sizes = page.evaluate(
        "() => [...document.querySelectorAll('#result-grid img')].map(i => [i.naturalWidth, i.naturalHeight])"
    )
    assert sizes == [[width, height]] * len(sizes)
    assert page.evaluate("() => document.getElementById('compare-before').naturalWidth") == width

    # before/after: the range input moves the clip of the cut-out layer, from the keyboard too
    slider = page.get_by_label(re.compile("Before / after"))
    clip = page.locator("#compare-after")
    expect(clip).to_have_attribute("style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 50%\)"))
    slider.focus()
    page.keyboard.press("Home")
    expect(clip).to_have_attribute("style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 0%\)"))
    page.keyboard.press("End")
    expect(clip).to_have_attribute("style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 100%\)"))
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    expect(clip).to_have_attribute("style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 97%\)"))
    slider.evaluate("el => { el.value = 30; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    expect(clip).to_have_attribute("style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 30%\)"))
    page.screenshot(path=str(tmp_path / "desktop-results.png"), full_page=True)


# --- (b) download one result ---------------------------------------------------------------------------
def test_download_result_is_a_png(ready_server: LiveServer, page_factory: Any, tmp_path: Path) -> None:
    page = page_factory(viewport={"width": 1280, "height": 900})
    open_ui(page, ready_server)
    wait_effects_listed(page)
    page.get_by_label("Choose a pet photo").set_input_files(squid())
    expect(page.get_by_role("link", name="Download cut-out")).to_be_visible(timeout=WAIT_MS)

    for link_name, filename, mode in (
        ("Download cut-out", "Squid-cutout.png", "RGBA"),
        ("Download enhancedblackwhite", "Squid-enhancedblackwhite.png", None),
    ):
        with page.expect_download() as info:
            page.get_by_role("link", name=link_name).click()
        download = info.value
        assert download.suggested_filename == filename
        target = tmp_path / filename
        download.save_as(target)
        data = target.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(BytesIO(data)) as image:
            image.load()
            assert image.format == "PNG"
            assert image.size == squid_size()
            if mode:
                assert image.mode == mode
                assert image.getchannel("A").getextrema() == (0, 255)  # transparent background, opaque pet


# --- API errors reach the person -----------------------------------------------------------------------
def test_api_error_message_is_shown(ready_server: LiveServer, page_factory: Any, tmp_path: Path) -> None:
    page = page_factory(viewport={"width": 1280, "height": 900})
    open_ui(page, ready_server)
    wait_effects_listed(page)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n" * 50)
    expected = httpx.post(
        ready_server.url + PROCESS_PATH + "?return_all_effects=true",
        files={"file": ("notes.txt", notes.read_bytes(), "text/plain")},
        timeout=30,
    )
    assert expected.status_code in (415, 422), expected.text
    message = expected.json()["error"]["message"]

    page.get_by_label("Choose a pet photo").set_input_files(notes)
    expect(page.get_by_role("alert")).to_have_text(message, timeout=WAIT_MS)
    expect(page.locator("#progress-panel")).to_be_hidden()
    expect(page.get_by_role("button", name="Remove background")).to_be_enabled()


# --- (c) the model is loading: the page says so and retries after Retry-After -----------------------
def test_page_retries_while_the_model_loads(live_server: Any, page_factory: Any, tmp_path: Path) -> None:
    server = live_server(Loader(delay=5.0))
    page = page_factory(viewport={"width": 1280, "height": 900})
    calls = process_calls(page)
    open_ui(page, server)
    state = page.locator("#model-state")
    expect(state).to_have_attribute("data-state", "loading", timeout=WAIT_MS)
    expect(state).to_contain_text(re.compile("loading", re.I))
    wait_effects_listed(page)  # the catalogue does not need the model

    page.get_by_label("Choose a pet photo").set_input_files(squid())
    progress = page.locator("#progress-text")
    expect(progress).to_contain_text(re.compile(r"Model loading, retrying in \d+ s"), timeout=WAIT_MS)
    expect(page.locator("#progress")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    page.screenshot(path=str(tmp_path / "model-loading.png"), full_page=True)

    expect(page.locator("#result-grid li")).to_have_count(2, timeout=WAIT_MS)  # cut-out + default effect
    wait_images_decoded(page, 2)
    expect(state).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    expect(page.get_by_role("alert")).to_be_hidden()

    # the page waited at least Retry-After before each retry
    responses = [(t, r) for kind, t, r in calls if kind == "response"]
    requests = [t for kind, t, _ in calls if kind == "request"]
    assert responses[0][1].status == 503
    assert responses[-1][1].status == 200
    assert len(requests) == len(responses) >= 2
    for (answered, response), retried in zip(responses, requests[1:], strict=False):
        retry_after = int(response.headers["retry-after"])
        assert retried - answered >= retry_after - 0.5, (retry_after, retried - answered)


def test_page_shows_a_failed_model_and_the_api_message(live_server: Any, page_factory: Any, tmp_path: Path) -> None:
    def broken(settings: Any) -> Any:
        raise corrupt()

    server = live_server(broken)
    page = page_factory(viewport={"width": 1280, "height": 900})
    calls = process_calls(page)
    open_ui(page, server)
    state = page.locator("#model-state")
    expect(state).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    expect(state).to_contain_text("failed")
    expect(state).to_contain_text("corrupt")
    wait_effects_listed(page)

    answer = httpx.post(
        server.url + PROCESS_PATH + "?return_all_effects=true",
        files={"file": ("Squid.jpg", squid().read_bytes(), "image/jpeg")},
        timeout=30,
    )
    assert answer.status_code == 503
    message = answer.json()["error"]["message"]
    assert "/secret" not in message

    page.get_by_label("Choose a pet photo").set_input_files(squid())
    expect(page.get_by_role("alert")).to_have_text(message, timeout=WAIT_MS)
    expect(page.locator("#progress-panel")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "model-failed.png"), full_page=True)
    # a failed model is not retried in a loop: one request, then the person decides
    page.wait_for_timeout(1500)
    assert [kind for kind, _, _ in calls] == ["request", "response"]


# --- (d) the old production failure: the shop's request from another origin ------------------------
SHOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shop</title></head>
<body><h1>shop</h1>
<script>
// The shop front-end's request, sent cross-origin with fetch() as the old front-end does.
async function shopRequest(base, padTo) {
  const photo = await (await fetch("Squid.jpg")).blob();
  const blob = padTo ? new Blob([photo, new Uint8Array(padTo - photo.size)], {type: "image/jpeg"}) : photo;
  const form = new FormData();
  form.append("file", blob, "Squid.jpg");
  form.append("effects", "enhancedblackwhite,popart");
  const url = base + "/api/v2/process-with-effects?return_all_effects=true&effects=enhancedblackwhite,popart";
  let response;
  try {
    response = await fetch(url, {method: "POST", body: form});
  } catch (error) {
    return {kind: "network-error", name: error.name, message: String(error)};
  }
  const json = await response.json().catch(() => null);
  const out = {
    kind: "response", status: response.status, ok: response.ok,
    retryAfter: response.headers.get("Retry-After"), requestId: response.headers.get("X-Request-ID"),
    success: json ? json.success : null,
    code: json && json.error ? json.error.code : null,
    message: json && json.error ? json.error.message : null,
    effects: json && json.effects ? Object.keys(json.effects) : null,
  };
  if (json && json.effects) {
    const value = json.effects.popart;
    const img = new Image();
    img.src = value.startsWith("data:") ? value : "data:image/png;base64," + value;
    await img.decode();
    out.width = img.naturalWidth;
  }
  return out;
}
</script></body></html>
"""


def test_shop_request_from_another_origin(live_server: Any, static_site: Any, page_factory: Any) -> None:
    gate = threading.Event()
    (static_site.root / "shop.html").write_text(SHOP_PAGE)
    (static_site.root / "Squid.jpg").write_bytes(squid().read_bytes())
    server = live_server(Loader(gate=gate), cors_origins=[static_site.origin], max_upload_mb=0.5)
    assert static_site.origin != server.url  # two origins: same host, other port
    try:
        page = page_factory()
        page.goto(static_site.origin + "/shop.html")
        expect(page.get_by_role("heading", name="shop")).to_be_visible()

        # the model is not ready: 503 readable from JS, Retry-After exposed
        loading = page.evaluate("base => shopRequest(base, 0)", server.url)
        assert loading["kind"] == "response", loading
        assert loading["status"] == 503 and loading["ok"] is False, loading
        assert loading["success"] is False and loading["code"] == "model_loading", loading
        assert loading["retryAfter"] is not None and int(loading["retryAfter"]) >= 1, loading
        assert loading["requestId"], loading

        # an oversized upload (1 MiB against a 0.5 MiB limit): a 413 the page can read, not a network error
        too_big = page.evaluate("([base, size]) => shopRequest(base, size)", [server.url, 1024 * 1024])
        assert too_big["kind"] == "response", too_big
        assert too_big["status"] == 413 and too_big["ok"] is False, too_big
        assert too_big["code"] == "payload_too_large" and too_big["message"], too_big

        # the model is ready: 200, success, every effect, the images decode in the browser
        gate.set()
        server.wait_ready()
        done = page.evaluate("base => shopRequest(base, 0)", server.url)
        assert done["kind"] == "response", done
        assert done["status"] == 200 and done["ok"] is True and done["success"] is True, done
        assert sorted(done["effects"]) == ["enhancedblackwhite", "popart"], done
        assert done["width"] == squid_size()[0], done
    finally:
        gate.set()


# --- (e) a phone-sized screen and the keyboard ---------------------------------------------------------
def test_phone_layout_keyboard_and_drop(ready_server: LiveServer, page_factory: Any, tmp_path: Path) -> None:
    page = page_factory(viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True)
    open_ui(page, ready_server)
    wait_effects_listed(page)
    no_overflow = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(no_overflow)

    # Tab reaches the file input, the effect checkboxes and the button, with a visible focus ring
    page.locator("body").focus()
    reached: list[str] = []
    for _ in range(len(effect_names()) + 6):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("() => document.activeElement.id"))
        if reached[-1] == "process":
            ring = page.evaluate(
                "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; }"
            )
            assert ring[0] != "none" and ring[1] != "0px", ring
    assert "file" in reached and "process" in reached, reached
    assert any(r.startswith("effect-") for r in reached), reached
    # a checkbox toggles from the keyboard
    first = page.locator("#effects-list input[type=checkbox]").first
    before = first.is_checked()
    first.focus()
    page.keyboard.press("Space")
    assert first.is_checked() is not before

    # drag and drop a photo on the drop zone
    data = base64.b64encode(squid().read_bytes()).decode("ascii")
    page.evaluate(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: 'image/jpeg'}));
            const zone = document.getElementById('drop-zone');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
            }
        }""",
        [data, "Squid.jpg"],
    )
    expect(page.locator("#file-name")).to_contain_text("Squid.jpg")
    count = 1 + sum(1 for box in page.locator("#effects-list input[type=checkbox]").all() if box.is_checked())
    expect(page.locator("#result-grid li")).to_have_count(count, timeout=WAIT_MS)
    wait_images_decoded(page, count)
    assert page.evaluate(no_overflow), page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    # the download buttons and the slider are reachable from the keyboard on the phone too
    page.get_by_role("link", name="Download cut-out").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.tagName") in ("A", "INPUT")
    page.screenshot(path=str(tmp_path / "phone-results.png"), full_page=True)
