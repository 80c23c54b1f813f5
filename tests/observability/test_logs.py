"""JSON logs: the formatter, the process-wide configuration, the startup timeline, and a real server whose
every printed line is a JSON object with Cloud Logging's fields."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from petcut.model.runtime import State
from petcut.observability import JsonFormatter, request_id_var, trace_var, uvicorn_log_config
from tests.support.fakes import FakeSegmenter, Loader, oom
from tests.support.images import jpeg_bytes
from tests.support.servers import ROOT, free_port, server_env
from tests.support.service import ORIGIN, Service, make_settings, run

TRACE = "105445aa7843bc8bf206b12000100000"
TRACE_KEY = "logging.googleapis.com/trace"


def parse_line(line: str) -> dict[str, Any]:
    """A log line as Cloud Logging reads it: a JSON object with severity, message and an RFC 3339 time."""
    entry = json.loads(line)
    assert isinstance(entry, dict), line
    assert entry["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
    assert isinstance(entry["message"], str), line
    assert entry["time"].endswith("Z"), line
    datetime.fromisoformat(entry["time"])
    return entry


def record(name: str = "petcut.test", level: int = logging.INFO, msg: str = "hello %s", args: Any = ("world",),
           **extra: Any) -> logging.LogRecord:  # fmt: skip
    rec = logging.LogRecord(name, level, __file__, 42, msg, args, None, func="fn")
    rec.__dict__.update(extra)
    return rec


# --- the formatter -------------------------------------------------------------------------------------
def test_formatter_fields_trace_and_request_id() -> None:
    rid = request_id_var.set("req-123")
    trace = trace_var.set(TRACE)
    try:
        with_project = parse_line(JsonFormatter(project="my-project").format(record(user_field=7)))
        raw = parse_line(JsonFormatter(project=None).format(record()))
    finally:
        request_id_var.reset(rid)
        trace_var.reset(trace)
    assert with_project["message"] == "hello world" and with_project["severity"] == "INFO"
    assert with_project["request_id"] == "req-123"
    assert with_project[TRACE_KEY] == f"projects/my-project/traces/{TRACE}"
    assert with_project["user_field"] == 7
    assert "logging.googleapis.com/sourceLocation" not in with_project
    assert raw[TRACE_KEY] == TRACE
    outside = parse_line(JsonFormatter().format(record()))
    assert "request_id" not in outside and TRACE_KEY not in outside


def test_formatter_access_line_exception_and_source_location() -> None:
    access = record("uvicorn.access", msg='%s - "%s %s HTTP/%s" %d', args=("1.2.3.4:5", "GET", "/x?y=1", "1.1", 404))
    entry = parse_line(JsonFormatter().format(access))
    assert entry["message"] == '1.2.3.4:5 - "GET /x?y=1 HTTP/1.1" 404'
    assert entry["http_method"] == "GET" and entry["path"] == "/x?y=1" and entry["status"] == 404
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = record(level=logging.ERROR, msg="it failed", args=())
        failed.exc_info = sys.exc_info()
    entry = parse_line(JsonFormatter().format(failed))
    assert entry["severity"] == "ERROR" and "RuntimeError: boom" in entry["exception"]
    assert entry["logging.googleapis.com/sourceLocation"]["line"] == "42"


def test_log_config_honours_the_level() -> None:
    config = uvicorn_log_config("WARNING", project="p")
    assert config["root"]["level"] == "WARNING"
    assert {config["loggers"][name]["level"] for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "petcut")} == {
        "WARNING"
    }
    assert config["formatters"]["json"]["project"] == "p"


CONFIGURED = """
import logging, threading, warnings
from petcut.observability import configure_logging
configure_logging("WARNING")
logging.getLogger("petcut.x").info("hidden info")
logging.getLogger("uvicorn.access").info("hidden access")
logging.getLogger("petcut.x").warning("shown warning")
warnings.warn("a python warning")
t = threading.Thread(target=lambda: 1 / 0, name="worker-x")
t.start(); t.join()
raise RuntimeError("uncaught at the top")
"""


def test_configured_process_prints_only_json_at_the_level() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CONFIGURED], cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr == "", result.stderr
    entries = [parse_line(line) for line in result.stdout.splitlines() if line.strip()]
    messages = [e["message"] for e in entries]
    assert "hidden info" not in messages and "hidden access" not in messages
    assert "shown warning" in messages
    assert any("a python warning" in m for m in messages)
    thread = next(e for e in entries if e["message"] == "uncaught exception in a thread")
    assert thread["severity"] == "CRITICAL" and "ZeroDivisionError" in thread["exception"]
    top = next(e for e in entries if e["message"] == "uncaught exception")
    assert "uncaught at the top" in top["exception"]


# --- request id on log lines from other threads -------------------------------------------------------
class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, rec: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(rec)))


class ChattySegmenter(FakeSegmenter):
    def predict_alpha(self, rgb: Any) -> Any:
        logging.getLogger("petcut.test.model").info("inside the model")
        return super().predict_alpha(rgb)


def test_request_id_and_trace_reach_lines_logged_on_the_worker_thread() -> None:
    handler = ListHandler()
    loggers = [logging.getLogger("petcut.test.model"), logging.getLogger("petcut.runtime")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    async def scenario() -> None:
        async with Service(loader=Loader(ChattySegmenter())) as svc:
            await svc.wait_state(State.READY)
            handler.lines.clear()
            headers = {"X-Request-ID": "rid-model-1", "X-Cloud-Trace-Context": f"{TRACE}/1;o=1"}
            assert (await svc.process(headers=headers)).status_code == 200
            svc.segmenter.faults.append(oom())
            oom_response = await svc.process(jpeg_bytes(70, 50), headers={"X-Request-ID": "rid-oom-2"})
            assert oom_response.status_code == 503

    try:
        run(scenario())
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
    inside = [line for line in handler.lines if line["message"] == "inside the model"]
    assert inside[0]["request_id"] == "rid-model-1" and inside[0][TRACE_KEY] == TRACE
    assert inside[1]["request_id"] == "rid-oom-2" and TRACE_KEY not in inside[1]
    oom_line = next(line for line in handler.lines if line["message"] == "inference ran out of memory")
    assert oom_line["request_id"] == "rid-oom-2" and oom_line["severity"] == "ERROR"


# --- the startup timeline --------------------------------------------------------------------------------
@pytest.mark.parametrize("enabled", [True, False])
def test_startup_timeline(enabled: bool, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with Service(make_settings(enable_startup_logging=enabled), Loader(delay=0.05)) as svc:
            await svc.wait_state(State.READY)

    with caplog.at_level(logging.INFO, logger="petcut"):
        run(scenario())
    steps = {r.startup_step: r for r in caplog.records if hasattr(r, "startup_step")}
    assert list(steps) == ["imports done", "weights loaded", "warmup done", "ready"]
    assert steps["weights loaded"].seconds >= 0.05
    assert steps["weights loaded"].step_s >= 0.05
    assert steps["imports done"].since_process_start_s > 0  # how long the process took to get there
    assert steps["ready"].since_start_s >= steps["warmup done"].since_start_s >= steps["weights loaded"].since_start_s
    summary = [r for r in caplog.records if r.getMessage() == "startup complete"]
    settings = [r for r in caplog.records if r.getMessage() == "settings"]
    if enabled:
        assert len(summary) == 1 and list(summary[0].startup_timeline) == list(steps)
        assert len(settings) == 1
    else:
        assert not summary and not settings


# --- a real server ---------------------------------------------------------------------------------------
def test_every_line_a_real_server_prints_is_json(tmp_path: Path) -> None:
    """``python -m petcut serve`` with a corrupt checkpoint (fails to load, fast): health, a 404, a 413
    before the body, /metrics, then SIGTERM. stdout and stderr hold JSON objects only; access lines carry
    the request id and the Cloud trace."""
    checkpoint = tmp_path / "ckpt.pth"
    checkpoint.write_bytes(b"not a checkpoint \x00\x01" * 500)
    port = free_port()
    env = server_env(
        PETCUT_HOST="127.0.0.1", PETCUT_PORT=str(port), PETCUT_CHECKPOINT=str(checkpoint), PETCUT_DEVICE="cpu",
        PETCUT_MODE="fast", PETCUT_MAX_UPLOAD_MB="0.1", PETCUT_CORS_ORIGINS=ORIGIN, LOG_LEVEL="INFO",
        ENABLE_STARTUP_LOGGING="true", GOOGLE_CLOUD_PROJECT="petcut-test", PETCUT_LOAD_ATTEMPTS="1",
    )  # fmt: skip
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen([sys.executable, "-m", "petcut", "serve"], cwd=ROOT, env=env, stdout=out, stderr=err)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10, headers={"Origin": ORIGIN}) as client:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, stdout.read_text() + stderr.read_text()
                try:
                    ready = client.get("/ready")
                    if ready.json().get("status") == "failed":
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the load never failed:\n" + stdout.read_text()
                time.sleep(0.1)
            trace = {"X-Cloud-Trace-Context": f"{TRACE}/7;o=1"}
            assert client.get("/health", headers={"X-Request-ID": "log-health", **trace}).status_code == 200
            assert client.get("/nope", headers={"X-Request-ID": "log-404"}).status_code == 404
            big = client.post(
                "/api/v2/remove-background",
                content=b"x" * 600_000,
                headers={"X-Request-ID": "log-413", "content-type": "multipart/form-data; boundary=x"},
            )
            assert big.status_code == 413
            metrics = client.get("/metrics", headers={"X-Request-ID": "log-metrics"})
            assert metrics.status_code == 200 and 'petcut_model_state{state="failed"} 1.0' in metrics.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out_lines = [line for line in stdout.read_text().splitlines() if line.strip()]
    err_lines = [line for line in stderr.read_text().splitlines() if line.strip()]
    entries = []
    for line in out_lines + err_lines:
        try:
            entries.append(parse_line(line))
        except (ValueError, KeyError, AssertionError):
            pytest.fail(f"not a JSON log line: {line!r}")
    access = {e.get("request_id"): e for e in entries if e["logger"] == "uvicorn.access"}
    for rid, status in (("log-health", 200), ("log-404", 404), ("log-413", 413), ("log-metrics", 200)):
        assert access[rid]["status"] == status, access.get(rid)
    assert access["log-health"][TRACE_KEY] == f"projects/petcut-test/traces/{TRACE}"
    assert TRACE_KEY not in access["log-404"]
    load_failed = next(e for e in entries if e["message"] == "model load failed")
    assert load_failed["severity"] == "CRITICAL" and "exception" in load_failed
    steps = [e["startup_step"] for e in entries if "startup_step" in e]
    assert steps[0] == "imports done" and entries[0]["logger"].startswith("uvicorn")
    assert any(e["message"] == "Finished server process" or "Finished server" in e["message"] for e in entries)
