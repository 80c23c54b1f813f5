"""``petcut smoke URL``: is a deployed petcut serving the shop? (``deploy/deploy.sh`` runs it on each release.)

Checks, in order:

1. ``health``: ``GET /health`` answers 200 JSON (retried while the port is not open yet, within ``wait``).
2. ``ready``: ``GET /ready`` polled until 200, at most ``wait`` seconds, sleeping what ``Retry-After``
   says (capped at ``max_poll``); fails at once with the server's reason when the model ``failed`` to
   load, the instance is ``poisoned`` or it is ``draining``.
3. ``cors preflight`` (with ``origin``): ``OPTIONS /api/v2/process-with-effects`` echoes the origin.
4. ``cors on error`` (with ``origin``): ``POST /api/v2/remove-background`` without a file is a JSON 400
   that still carries ``Access-Control-Allow-Origin``.
5. ``warmup``: ``POST /warmup`` is 200 with ``X-Warmup-Status: success``.
6. ``process-with-effects``: the shop's exact request with the bundled photo; ``success`` is true and
   both effects decode as PNGs of the photo's size.

Without ``origin`` the CORS checks are skipped; after a failed ``health`` the rest is skipped, after a
failed ``ready`` the model checks are. The run fails if any check fails. Each request carries an
``X-Request-ID`` (``smoke-<run>-<check>``) to find it in the server's logs.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from io import BytesIO
from typing import Any

import httpx

from petcut import __version__

SHOP_EFFECTS = ("enhancedblackwhite", "color")
PROCESS_PATH = "/api/v2/process-with-effects"
ERROR_PATH = "/api/v2/remove-background"
#: states that will not become ready by waiting
FATAL_STATES = {
    "failed": "the model failed to load",
    "poisoned": "the instance is poisoned (non-recoverable accelerator error)",
    "draining": "the server is shutting down",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class CheckResult:
    name: str
    status: str  # pass | fail | skip
    detail: str
    seconds: float = 0.0


@dataclass
class SmokeReport:
    url: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.status != FAIL for check in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if check.status == FAIL]


class CheckFailed(Exception):
    """A check's verdict: ``str(exc)`` is the detail shown."""


@functools.cache
def sample_photo() -> bytes:
    """The bundled sample photo (the same one ``/warmup`` uses)."""
    return resources.files("petcut").joinpath("assets/sample.jpg").read_bytes()


def _photo_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, ImageOps

    with Image.open(BytesIO(data)) as image:
        return ImageOps.exif_transpose(image).size


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise CheckFailed(f"HTTP {response.status_code}, body is not JSON: {response.text[:120]!r}") from None
    if not isinstance(body, dict):
        raise CheckFailed(f"HTTP {response.status_code}, body is not a JSON object")
    return body


def _error_text(body: dict[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return str(body.get("reason") or body.get("message") or body)[:200]


def _retry_after(response: httpx.Response, default: float = 1.0) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", default)))
    except ValueError:
        return default


class Smoke:
    """One smoke run against ``url``. ``client`` (tests) replaces the HTTP client; ``sleep`` and ``clock``
    the waiting; ``progress`` gets a line whenever the ``/ready`` state changes while waiting."""

    def __init__(
        self,
        url: str,
        *,
        origin: str | None = None,
        wait: float = 120.0,
        timeout: float = 60.0,
        max_poll: float = 5.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.origin = origin.rstrip("/") if origin else None
        self.wait = max(0.0, wait)
        self.max_poll = max(0.05, max_poll)
        self.sleep = sleep
        self.clock = clock
        self.progress = progress or (lambda line: None)
        self.run_id = uuid.uuid4().hex[:8]
        self.client = client or httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            headers={"User-Agent": f"petcut-smoke/{__version__}"},
            follow_redirects=False,
        )
        self._owns_client = client is None
        self._deadline = 0.0

    # --- plumbing ----------------------------------------------------------------------------------
    def _headers(self, check: str, extra: Mapping[str, str] | None = None, *, origin: bool = True) -> dict[str, str]:
        headers = {"X-Request-ID": f"smoke-{self.run_id}-{check.replace(' ', '-')}", **(extra or {})}
        if origin and self.origin:
            headers["Origin"] = self.origin
        return headers

    def _remaining(self) -> float:
        return self._deadline - self.clock()

    def _cors(self, response: httpx.Response) -> None:
        """With an origin: the response must allow it."""
        if not self.origin:
            return
        allowed = response.headers.get("access-control-allow-origin")
        if allowed not in (self.origin, "*"):
            raise CheckFailed(
                f"HTTP {response.status_code} without Access-Control-Allow-Origin for {self.origin} "
                f"(got {allowed!r}): is the origin in PETCUT_CORS_ORIGINS?"
            )

    # --- checks ------------------------------------------------------------------------------------
    def check_health(self) -> str:
        last = "no answer"
        while True:
            try:
                response = self.client.get("/health", headers=self._headers("health"))
            except httpx.TransportError as exc:
                last = f"unreachable ({type(exc).__name__}: {exc})"
            else:
                body = _json(response)
                state = body.get("model_status")
                if response.status_code == 200:
                    return f"200, model {state}, version {body.get('version')}, up {body.get('uptime_s')} s"
                if state == "poisoned":
                    raise CheckFailed(f"HTTP 503: {FATAL_STATES['poisoned']}: {_error_text(body)}")
                last = f"HTTP {response.status_code}: {_error_text(body)}"
                if response.status_code < 500:
                    raise CheckFailed(f"{last} (is {self.url} a petcut service?)")
            if self._remaining() <= 0:
                raise CheckFailed(f"/health not answering 200 after {self.wait:g} s: {last}")
            self.sleep(min(1.0, self.max_poll, max(0.0, self._remaining())))

    def check_ready(self) -> str:
        last_line = ""
        while True:
            try:
                response = self.client.get("/ready", headers=self._headers("ready"))
            except httpx.TransportError as exc:
                response, line, pause = None, f"unreachable ({type(exc).__name__})", 1.0
            if response is not None:
                body = _json(response)
                state = str(body.get("status") or "unknown")
                reason = str(body.get("reason") or _error_text(body))
                if response.status_code == 200:
                    return f"200 {state} after {self.wait - max(0.0, self._remaining()):.1f} s"
                if response.status_code != 503:
                    raise CheckFailed(f"HTTP {response.status_code} from /ready: {_error_text(body)}")
                if state in FATAL_STATES:
                    raise CheckFailed(f"{FATAL_STATES[state]}: {reason}")
                line, pause = f"{state}: {reason}", _retry_after(response)
            if line != last_line:
                self.progress(f"waiting for /ready: {line}")
                last_line = line
            remaining = self._remaining()
            if remaining <= 0:
                raise CheckFailed(f"not ready after {self.wait:g} s; last: {line}")
            self.sleep(min(pause, self.max_poll, remaining))

    def check_preflight(self) -> str:
        headers = self._headers(
            "cors-preflight",
            {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
        )
        response = self.client.options(PROCESS_PATH, headers=headers)
        if not 200 <= response.status_code < 300:
            raise CheckFailed(f"preflight answered HTTP {response.status_code}: {response.text[:160]!r}")
        self._cors(response)
        methods = response.headers.get("access-control-allow-methods", "")
        if "POST" not in methods.upper():
            raise CheckFailed(f"Access-Control-Allow-Methods does not allow POST: {methods!r}")
        return f"{response.status_code}, allow-origin {response.headers.get('access-control-allow-origin')}"

    def check_error_cors(self) -> str:
        response = self.client.post(ERROR_PATH, headers=self._headers("cors-error"))
        self._cors(response)
        body = _json(response)
        if response.status_code != 400:
            raise CheckFailed(f"expected 400 for a request without a file, got {response.status_code}: "
                              f"{_error_text(body)}")  # fmt: skip
        error = body.get("error")
        if body.get("success") is not False or not isinstance(error, dict) or not error.get("code"):
            raise CheckFailed(f"400 without the JSON error envelope: {response.text[:160]!r}")
        exposed = response.headers.get("access-control-expose-headers", "").lower()
        if "x-request-id" not in exposed:
            raise CheckFailed("Access-Control-Expose-Headers does not expose X-Request-ID")
        return f"400 {error['code']}, allow-origin {response.headers.get('access-control-allow-origin')}"

    def check_warmup(self) -> str:
        response = self.client.post("/warmup", headers=self._headers("warmup"))
        self._cors(response)
        status = response.headers.get("x-warmup-status")
        body = _json(response)
        if response.status_code != 200 or status != "success":
            message = body.get("message") or _error_text(body)
            raise CheckFailed(f"HTTP {response.status_code}, X-Warmup-Status {status}: {message}")
        return (
            f"200 success, warmup {response.headers.get('x-warmup-time')} s, "
            f"device {body.get('device')}, mode {body.get('mode')}/{body.get('resize')}"
        )

    def check_process(self) -> str:
        photo = sample_photo()
        effects = ",".join(SHOP_EFFECTS)
        response = self.client.post(
            PROCESS_PATH,
            params={"return_all_effects": "true", "effects": effects},
            files={"file": ("sample.jpg", photo, "image/jpeg")},
            data={"effects": effects},
            headers=self._headers("process"),
        )
        self._cors(response)
        body = _json(response)
        if response.status_code != 200 or body.get("success") is not True:
            raise CheckFailed(f"HTTP {response.status_code}, success={body.get('success')}: {_error_text(body)}")
        images = body.get("effects")
        if not isinstance(images, dict):
            raise CheckFailed("no 'effects' object in the response")
        expected = _photo_size(photo)
        for name in SHOP_EFFECTS:
            encoded = images.get(name)
            if not isinstance(encoded, str) or not encoded:
                raise CheckFailed(f"effect {name} missing (failed_effects: {body.get('failed_effects')})")
            if encoded.startswith("data:"):
                encoded = encoded.partition(",")[2]
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise CheckFailed(f"effect {name} is not valid base64") from None
            if not data.startswith(PNG_SIGNATURE):
                raise CheckFailed(f"effect {name} is not a PNG")
            try:
                size = _photo_size(data)
            except Exception as exc:
                raise CheckFailed(f"effect {name} does not decode as a PNG ({type(exc).__name__})") from None
            if size != expected:
                raise CheckFailed(f"effect {name} is {size[0]}×{size[1]}, expected {expected[0]}×{expected[1]}")
        cache = body.get("cache_info") or {}
        return (
            f"200, {len(SHOP_EFFECTS)} PNG effects {expected[0]}×{expected[1]}, "
            f"server {response.headers.get('x-processing-time')} s, cache hits {cache.get('total_cache_hits')}"
        )

    # --- the run -------------------------------------------------------------------------------------
    def _run_check(self, report: SmokeReport, name: str, fn: Callable[[], str]) -> bool:
        started = self.clock()
        try:
            detail, status = fn(), PASS
        except CheckFailed as exc:
            detail, status = str(exc), FAIL
        except httpx.HTTPError as exc:
            detail, status = f"{type(exc).__name__}: {exc}", FAIL
        except Exception as exc:  # a surprise answer must still end in a report, not a traceback
            detail, status = f"unexpected {type(exc).__name__}: {exc}", FAIL
        report.checks.append(CheckResult(name, status, detail, round(self.clock() - started, 3)))
        return status == PASS

    def run(self) -> SmokeReport:
        report = SmokeReport(self.url)
        self._deadline = self.clock() + self.wait
        try:
            if not self._run_check(report, "health", self.check_health):
                for name in ("ready", "cors preflight", "cors on error", "warmup", "process-with-effects"):
                    report.checks.append(CheckResult(name, SKIP, "skipped: /health failed"))
                return report
            ready = self._run_check(report, "ready", self.check_ready)
            if self.origin:
                self._run_check(report, "cors preflight", self.check_preflight)
                self._run_check(report, "cors on error", self.check_error_cors)
            else:
                for name in ("cors preflight", "cors on error"):
                    report.checks.append(CheckResult(name, SKIP, "skipped: no --origin"))
            if ready:
                self._run_check(report, "warmup", self.check_warmup)
                self._run_check(report, "process-with-effects", self.check_process)
            else:
                for name in ("warmup", "process-with-effects"):
                    report.checks.append(CheckResult(name, SKIP, "skipped: the service is not ready"))
            return report
        finally:
            if self._owns_client:
                self.client.close()


def run_smoke(url: str, **options: Any) -> SmokeReport:
    """Run every check against ``url`` (options: see :class:`Smoke`)."""
    return Smoke(url, **options).run()


def render(report: SmokeReport, console: Any) -> None:
    """The results as a table, then one summary line (``console``: a rich Console)."""
    from rich.markup import escape
    from rich.table import Table

    marks = {PASS: "[green]pass[/green]", FAIL: "[bold red]FAIL[/bold red]", SKIP: "[dim]skipped[/dim]"}
    table = Table(title=f"petcut smoke: {escape(report.url)}", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("seconds", justify="right", no_wrap=True)
    for check in report.checks:
        seconds = f"{check.seconds:.2f}" if check.status != SKIP else ""
        table.add_row(escape(check.name), marks[check.status], escape(check.detail), seconds)
    console.print(table)
    passed = sum(check.status == PASS for check in report.checks)
    skipped = sum(check.status == SKIP for check in report.checks)
    if report.ok:
        console.print(f"[green]smoke test passed[/green]: {passed} checks passed, {skipped} skipped")
    else:
        first = report.failures[0]
        console.print(
            f"[bold red]smoke test FAILED[/bold red] ({escape(first.name)}): {escape(first.detail)}", soft_wrap=True
        )
