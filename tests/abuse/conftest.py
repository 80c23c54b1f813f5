"""Helpers for the abuse-resistance tests: a controllable clock and clients with a chosen peer address."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import TIMEOUT, Service


class FakeClock:
    """Wall-clock seconds that move only when the test says so (injected into the rate limiter)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def use_clock(svc: Service, clock: FakeClock) -> None:
    svc.app.state.abuse_guard.limiter.clock = clock


def client_for(svc: Service, peer: str = "127.0.0.1", **headers: str) -> httpx.AsyncClient:
    """A client whose TCP peer address is ``peer``; default headers as given (no Origin unless given)."""
    transport = httpx.ASGITransport(app=svc.app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://petcut.test", headers=headers, timeout=TIMEOUT)


def upload(data: bytes) -> dict[str, Any]:
    return {"files": {"file": ("pet.jpg", data, "image/jpeg")}}
