"""A plain HTTP server on loopback for the engine's unit tests, and an endpoint that points at it
(no TLS, no credentials): what libcurl does with connections and answers, without an apiserver."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

from kperf_core.kube import ClusterEndpoint, Credentials


@contextlib.contextmanager
def serving(httpd: ThreadingHTTPServer) -> Iterator[str]:
    """Serve ``httpd`` from a thread; yield its URL; stop it and free its port afterwards."""
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def plain_endpoint(url: str, ca_pem: bytes | None = None) -> ClusterEndpoint:
    """An endpoint without credentials (``ca_pem``: the CA of an https ``url``)."""
    return ClusterEndpoint(
        server=url,
        ca_pem=ca_pem,
        insecure_skip_tls_verify=False,
        client_cert_pem=None,
        client_key_pem=None,
        tls_server_name=None,
        credentials=Credentials(),
        source="test",
    )
