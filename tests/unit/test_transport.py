"""The transport's socket bookkeeping against a real HTTP server on loopback.

Not an apiserver: what is tested is how the engine follows libcurl's sockets when connections
are closed by the server (every response, or after idling) and their numbers come back for new
connections — the cases where a stale epoll registration would hang a run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from loopback_http import plain_endpoint, serving

from kperf_core.engine.transport import CurlTransport, Transfer
from kperf_core.request_types import WireRequest


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 0.1  # an idle keep-alive connection is closed after 100 ms

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.path.startswith("/close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _Handler)) as url:
        yield url


def _transport(server: str, client: int) -> CurlTransport:
    return CurlTransport(plain_endpoint(server), conns=1, client=client, http2=False, timeout=5)


def _run(transport: CurlTransport, path: str, count: int, client: int) -> list[Transfer]:
    request = WireRequest("GET", path, f"GET {path}")
    done: list[Transfer] = []
    started = 0
    deadline = time.monotonic() + 20
    while len(done) < count:
        assert time.monotonic() < deadline, f"hung after {len(done)} of {count} requests"
        while started < count and transport.in_flight < client:
            transport.start(request, None, time.perf_counter())
            started += 1
        done += transport.poll(0.05)
    return done


@pytest.mark.parametrize("path", ["/close", "/keep-alive"])
def test_connections_closed_and_reopened_never_hang(server: str, path: str) -> None:
    transport = _transport(server, client=3)
    try:
        done = _run(transport, path, 150, client=3)
        assert [(t.status, t.error, t.bytes) for t in done] == [(200, 0, 2)] * 150
    finally:
        transport.close()


def test_idle_connections_closed_by_the_server_are_replaced(server: str) -> None:
    transport = _transport(server, client=2)
    try:
        for _ in range(3):
            done = _run(transport, "/keep-alive", 20, client=2)
            assert all(t.status == 200 and t.error == 0 for t in done)
            # the server closes the parked connections meanwhile; a poll sees their hang-up
            time.sleep(0.3)
            assert transport.poll(0.05) == []
    finally:
        transport.close()
