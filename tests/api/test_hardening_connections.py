"""docs/security.md: slow or lying clients get a 408 and lose their connection; one client cannot hold
every connection; /health keeps answering. Real server, real sockets."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import ServerProcess
from tests.support.service import ORIGIN

WAIT_S = 20.0  # far past the 1 s timeouts: a missing answer fails the test instead of hanging it


def _connect(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S, source_address=(source, 0))
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _parse(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, json.loads(body)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(
        PETCUT_CORS_ORIGINS=ORIGIN,
        PETCUT_HEADER_TIMEOUT_S="1",
        PETCUT_BODY_TIMEOUT_S="1",
        PETCUT_MAX_CONNECTIONS_PER_CLIENT="6",
        PETCUT_TEST_DELAY="0",
    ) as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /api/v2/remove-backgr", b"POST /api/v2/remove-background HTTP/1.1\r\nHost: x\r\nContent-Ty"],
    ids=["nothing", "half-a-request-line", "partial-headers"],
)
def test_incomplete_requests_get_408_and_are_closed(server: ServerProcess, sent: bytes) -> None:
    with _connect(server) as sock:
        sock.sendall(sent)
        status, headers, body = _parse(_read_all(sock))
    assert status == 408 and body["error"]["code"] == "request_timeout", body
    assert headers["connection"] == "close"


@pytest.mark.slow
def test_a_body_shorter_than_its_content_length_gets_408_with_cors(server: ServerProcess) -> None:
    body = b"x" * 1000
    request = (
        b"POST /api/v2/remove-background HTTP/1.1\r\nHost: petcut\r\nOrigin: " + ORIGIN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n" + body
    )
    with _connect(server) as sock:
        sock.sendall(request)
        status, headers, payload = _parse(_read_all(sock))
    assert status == 408 and payload["error"]["code"] == "request_timeout", payload
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["x-request-id"] == payload["error"]["request_id"]


@pytest.mark.slow
def test_one_client_cannot_hold_every_connection_and_health_stays_up(server: ServerProcess) -> None:
    with contextlib.ExitStack() as stack:
        held = []
        for _ in range(6):  # the limit is checked when a connection opens
            held.append(stack.enter_context(_connect(server)))
        extra = stack.enter_context(_connect(server))
        status, _, body = _parse(_read_all(extra))
        assert status == 429 and body["error"]["code"] == "too_many_connections", body
        transport = httpx.HTTPTransport(local_address="127.0.0.2")  # the prober is another client
        with httpx.Client(base_url=server.base, transport=transport, timeout=WAIT_S) as prober:
            assert prober.get("/health").status_code == 200
        for sock in held:  # the header timeout closes the idle ones
            status, _, _ = _parse(_read_all(sock))
            assert status == 408
    # their slots are free again: the client may connect (polled: the server counts a close when it sees it)
    statuses = []
    with httpx.Client(base_url=server.base, timeout=WAIT_S) as client:
        for _ in range(50):
            statuses.append(client.get("/health", headers={"Connection": "close"}).status_code)
            if statuses[-1] == 200:
                break
    assert statuses[-1] == 200, statuses
