"""A real ``petcut`` server in a subprocess on a loopback port, with a fake model (tests only)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

SERVER = """
from petcut.api.server import run
from tests.api.fakes import slow_loader
run(load_segmenter=slow_loader)
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
        threading.Thread(target=lambda: self.output.extend(self.process.stdout), daemon=True).start()  # type: ignore[arg-type, union-attr]

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while True:
                assert self.process is not None and self.process.poll() is None, self.log
                try:
                    if client.get("/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server never became ready:\n" + self.log
                time.sleep(0.1)

    @property
    def log(self) -> str:
        return "".join(self.output)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
