"""The native transport and a server that closes a kept-alive HTTP/1.1 connection while it is idle
(Go's http.Server does after its idle timeout): the next request on it reaches a closed socket and
gets no answer at all. libcurl and Go's transport send such a request again on a new connection;
so must the native transport, or a load test reports a failure the server never saw."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from loopback_http import plain_endpoint

from kperf_core.engine.native_transport import NativeTransport
from kperf_core.engine.transport import Transfer
from kperf_core.request_types import wire_request

pytest.importorskip("kperf_native")


class _ClosingWhenIdle(BaseHTTPRequestHandler):
    """Answers with keep-alive, then closes the connection a moment later without saying so."""

    protocol_version = "HTTP/1.1"
    served: list[str]

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        self.wfile.flush()
        self.served.append(self.path)
        time.sleep(0.05)  # the client has the answer; the connection is idle now
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _tls_server(pki: Path) -> Iterator[tuple[str, list[str], bytes]]:
    from kperf_plugins.backends.local_control_plane.pki import create_credentials

    credentials = create_credentials(pki)
    served: list[str] = []
    handler = type("Handler", (_ClosingWhenIdle,), {"served": served})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(credentials.serving_cert, credentials.serving_key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}"
        yield url, served, credentials.ca_cert.read_bytes()
    finally:
        httpd.shutdown()
        httpd.server_close()


def _complete(transport: NativeTransport, transfer: Transfer) -> None:
    deadline = time.monotonic() + 10
    while transfer not in transport.poll(0.2):
        assert time.monotonic() < deadline, "no answer within 10 s"


def test_a_request_on_a_connection_the_server_closed_while_idle_is_sent_again(tmp_path) -> None:
    with _tls_server(tmp_path / "pki") as (url, served, ca_pem):
        transport = NativeTransport(plain_endpoint(url, ca_pem), conns=1, client=1, http2=False)
        try:
            request = wire_request("GET", "/api/v1/namespaces")
            for _ in range(3):
                transfer = transport.start(request, None, time.perf_counter())
                _complete(transport, transfer)
                assert (transfer.status, transfer.error, transfer.error_message) == (200, 0, "")
                assert transfer.attempts == 1  # not a retry of kperf's: the transport's own
                # nothing drives the connection now (the engine would be sending elsewhere):
                # the server's close is noticed only when the next request tries it
                time.sleep(0.3)
            assert transport.protocol == "http/1.1"
        finally:
            transport.close()
    assert len(served) == 3  # each request reached the server once
    assert transport.connections_opened == 3  # a new connection for each, the stale ones left
