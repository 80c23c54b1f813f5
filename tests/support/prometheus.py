"""A real Prometheus on a loopback port, in its own temporary directory, stopped by the test (tests only)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.servers import free_port, poll_until, stop_process


class Prometheus:
    """``with Prometheus(binary, tmp, targets, rules) as prom:`` scrapes ``targets`` (job ``petcut``) every
    second and evaluates ``rules`` (a rules file; its groups' intervals become 1 s) every second."""

    def __init__(self, binary: str, directory: Path, targets: list[str], rules: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        groups = yaml.safe_load(rules.read_text())
        for group in groups["groups"]:
            group["interval"] = "1s"  # the only change: evaluate as often as the test scrapes
        (directory / "rules.yaml").write_text(yaml.safe_dump(groups))
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{"job_name": "petcut", "static_configs": [{"targets": targets}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "prometheus.log"

    def __enter__(self) -> Prometheus:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self.wait_for(lambda: httpx.get(f"{self.base}/-/ready", timeout=2).status_code == 200, "ready", 60)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process, 20)
        self.process = None

    def wait_for(self, check: Any, what: str, timeout: float = 60) -> Any:
        return poll_until(
            check,
            f"prometheus: {what}",
            timeout,
            interval=0.5,
            alive=lambda: self.process is not None and self.process.poll() is None,
            log=lambda: self.log.read_text()[-3000:],
        )

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.base}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def alerts(self) -> list[dict[str, Any]]:
        return self.api("alerts")["alerts"]
