"""Plain blocking requests on a run's endpoint: setup and cleanup calls outside the measured load
(deleting what postDel created, reading a resourceVersion before a watch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pycurl

from kperf_core.engine.transport import configure_tls, set_method
from kperf_core.errors import ClusterError

if TYPE_CHECKING:
    from kperf_core.kube import ClusterEndpoint


class BlockingClient:
    """One libcurl easy handle, same TLS and auth as the engine; implements ``CleanupClient``."""

    def __init__(self, endpoint: ClusterEndpoint, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self._curl = pycurl.Curl()
        self._curl.method = "GET"
        self._base = configure_tls(self._curl, endpoint)
        self._curl.setopt(pycurl.NOSIGNAL, 1)
        self._curl.setopt(pycurl.TIMEOUT_MS, int(timeout * 1000))
        self._curl.setopt(pycurl.USERAGENT, "kperf")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: tuple[str, ...] = ()
    ) -> tuple[int, bytes]:
        c = self._curl
        chunks: list[bytes] = []
        c.setopt(pycurl.URL, self._base + path)
        set_method(c, method, body)
        all_headers = list(headers)
        auth = self.endpoint.credentials.authorization_header()
        if auth:
            all_headers.append(f"Authorization: {auth}")
        if body is not None and not any(h.lower().startswith("content-type:") for h in headers):
            all_headers.append("Content-Type: application/json")
        c.setopt(pycurl.HTTPHEADER, all_headers)
        c.setopt(pycurl.WRITEFUNCTION, chunks.append)
        try:
            c.perform()
        except pycurl.error as exc:
            raise ClusterError(f"{method} {self.endpoint.server}{path}: {exc.args[-1]}") from None
        return c.getinfo(pycurl.RESPONSE_CODE), b"".join(chunks)

    def close(self) -> None:
        self._curl.close()


def check_reachable(endpoint: ClusterEndpoint) -> str | None:
    """Fail fast, in one line, when the API server cannot be reached or refuses the credentials;
    return the server's ``gitVersion``."""
    import json

    client = BlockingClient(endpoint, timeout=10)
    try:
        status, body = client.request("GET", "/version")
    except ClusterError as exc:
        raise ClusterError(f"cannot reach the API server ({endpoint.source}): {exc}") from None
    finally:
        client.close()
    if status in (401, 403):
        raise ClusterError(
            f"the API server at {endpoint.server} rejected the credentials of {endpoint.source} "
            f"(HTTP {status})"
        )
    if status != 200:
        return None
    try:
        version: str | None = json.loads(body).get("gitVersion")
    except ValueError:
        return None
    return version
