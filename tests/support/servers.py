"""Real servers on loopback ports for the tests: a free port, the one wait-until-ready helper, a
``redis-server``, and ``petcut`` itself in a subprocess with a fake model."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll_until(
    check: Callable[[], T],
    what: str,
    timeout: float,
    *,
    interval: float = 0.1,
    alive: Callable[[], bool] = lambda: True,
    log: Callable[[], str] = str,
) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something true, and return that (a refused
    or failed connection counts as "not yet"). Fails, with ``log()``, as soon as ``alive()`` is false (the
    server being waited for has exited) or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert alive(), f"{what}: the server exited\n{log()}"
        try:
            result = check()
            if result:
                return result
        except (httpx.TransportError, OSError):
            pass
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s\n{log()}"
        time.sleep(interval)


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; reaped either way."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """A real redis-server on a loopback port that a test can kill and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does this)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        poll_until(self._pong, "redis-server answering PING", 10, interval=0.05, alive=self._running)

    def _running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _pong(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


# --- petcut in a subprocess ------------------------------------------------------------------------------
SERVER = """
from petcut.api.server import run
from tests.support.fakes import slow_loader
run(load_segmenter=slow_loader)
"""

MARKED_SLOW_SERVER = """
from petcut.api.server import run
from tests.support.fakes import marked_slow_loader
run(load_segmenter=marked_slow_loader)
"""


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETCUT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


class ServerProcess:
    """``with ServerProcess(PETCUT_...=...) as server:`` starts the server and waits for ``/ready``.
    ``script`` is the Python the process runs (a subclass may serve with another loader)."""

    script = SERVER

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = server_env(PETCUT_HOST="127.0.0.1", PETCUT_PORT=str(self.port), PETCUT_MODE="fast", **env)
        self.output: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        self.wait_ready()
        return self

    def start(self) -> None:
        """Start the process (output collected in ``self.output``) without waiting for anything."""
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.script],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self.output.extend, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 90) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            poll_until(
                lambda: client.get("/ready").status_code == 200,
                "the server becoming ready",
                timeout,
                alive=self.running,
                log=lambda: self.log,
            )

    @property
    def log(self) -> str:
        return "".join(self.output)

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process, 15)
        if self._reader is not None:
            self._reader.join(10)  # the output up to the end, then the pipe is closed
            if not self._reader.is_alive() and self.process is not None and self.process.stdout is not None:
                self.process.stdout.close()


class HardeningServer(ServerProcess):
    """A server whose fake model is slow only for images ``SLOW_WIDTH`` pixels wide (the drain tests)."""

    script = MARKED_SLOW_SERVER
