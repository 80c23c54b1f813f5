"""Slow or lying clients: bounds at the connection level, below the ASGI app.

:func:`guarded_protocol` wraps uvicorn's HTTP protocol class:

* **header timeout** (``PETCUT_HEADER_TIMEOUT_S``): a connection must deliver a complete request line
  and headers within this time of opening (or, on a kept-alive connection, of the first byte of the next
  request). Past it the server answers a JSON 408 ``request_timeout`` (no CORS: without complete headers
  the origin is unknown) and closes. Connections that send nothing, half a request line or partial
  headers no longer stay open.
* **connections per client** (``PETCUT_MAX_CONNECTIONS_PER_CLIENT``): one peer address holds at most
  this many open connections; another one gets a JSON 429 ``too_many_connections`` and is closed at once.
  Peers in ``PETCUT_TRUSTED_PROXIES`` are exempt (a proxy carries many clients).

The body timeout (``PETCUT_BODY_TIMEOUT_S``, 408 with CORS) is the edge middleware's: by then the
request's headers, and so its origin, are known.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

from petcut.api.errors import envelope_bytes, new_request_id

log = logging.getLogger("petcut.api")

__all__ = ["ConnectionLimits", "guarded_protocol", "raw_json_response"]


def raw_json_response(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with the JSON envelope and ``Connection: close``."""
    request_id = new_request_id()
    body = envelope_bytes(code, message, request_id)
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"connection: close\r\nx-request-id: {request_id}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ConnectionLimits:
    """Open connections per peer address (event loop only)."""

    def __init__(self, *, max_per_client: int, header_timeout_s: float, exempt: Iterable[str] = ()) -> None:
        self.max_per_client = max_per_client
        self.header_timeout_s = header_timeout_s
        self.exempt = [ipaddress.ip_network(item, strict=False) for item in exempt]
        self.open: dict[str, int] = {}

    def _exempt(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.exempt)

    def admit(self, host: str | None) -> bool:
        """Count a new connection from ``host``; False when that peer already holds the maximum."""
        if host is None or self._exempt(host):
            return True
        count = self.open.get(host, 0)
        if count >= self.max_per_client:
            return False
        self.open[host] = count + 1
        return True

    def release(self, host: str | None) -> None:
        if host is None or host not in self.open:
            return
        if self.open[host] <= 1:
            del self.open[host]
        else:
            self.open[host] -= 1


def guarded_protocol(base: type[asyncio.Protocol], limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's ``base`` HTTP protocol enforcing ``limits``."""

    class GuardedProtocol(base):  # type: ignore[valid-type, misc]
        _counted_host: str | None = None
        _header_timer: asyncio.TimerHandle | None = None
        _armed_for: Any = None

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            host = self.client[0] if self.client else None
            if not limits.admit(host):
                log.warning("too many connections from one client", extra={"client": host})
                message = "This client holds too many open connections; close some and retry."
                transport.write(raw_json_response(429, "Too Many Requests", "too_many_connections", message))
                transport.close()
                return
            self._counted_host = host
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            limits.release(self._counted_host)
            self._counted_host = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            between_requests = before is None or before.response_complete
            if self.cycle is before and between_requests and not self._armed_for_current():
                self._arm()  # the first bytes of a request on a kept-alive connection

        # --- the header deadline -------------------------------------------------------------------
        def _armed_for_current(self) -> bool:
            return self._header_timer is not None and self._armed_for is self.cycle

        def _arm(self) -> None:
            self._disarm()
            self._armed_for = self.cycle
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(limits.header_timeout_s, self._headers_overdue)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_overdue(self) -> None:
            self._header_timer = None
            if self.cycle is not self._armed_for or self.transport.is_closing():
                return  # the request's headers arrived in time
            log.info("request headers not received in time; closing", extra={"client": self._counted_host})
            message = "The request line and headers did not arrive in time."
            self.transport.write(raw_json_response(408, "Request Timeout", "request_timeout", message))
            self.transport.close()

    GuardedProtocol.__name__ = f"Guarded{base.__name__}"
    GuardedProtocol.__qualname__ = GuardedProtocol.__name__
    return GuardedProtocol


def http_protocol_base() -> type[asyncio.Protocol]:
    """uvicorn's own choice for ``http="auto"``: httptools when installed, else h11."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
