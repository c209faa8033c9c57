"""Plain blocking requests on a run's endpoint: setup and cleanup calls outside the measured load
(deleting what postDel created, reading the objects a put rewrites). Each is counted in the spec's
:class:`~kperf_core.engine.recorder.OutsideLoad`, so the report adds up to the server's counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pycurl

from kperf_core.engine.transport import configure_tls, set_method
from kperf_core.errors import ClusterError

if TYPE_CHECKING:
    from kperf_core.engine.recorder import OutsideLoad
    from kperf_core.kube import ClusterEndpoint


class BlockingClient:
    """One libcurl easy handle, same TLS and auth as the engine; implements ``CleanupClient``."""

    def __init__(
        self,
        endpoint: ClusterEndpoint,
        timeout: float = 30.0,
        *,
        outside: OutsideLoad | None = None,
        purpose: str = "prepare",
    ) -> None:
        self.endpoint = endpoint
        #: where requests are counted, and under which purpose (``prepare``, ``cleanup``)
        self.outside = outside
        self.purpose = purpose
        self._curl = pycurl.Curl()
        self._method = "GET"  # the handle's last method (see set_method)
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
        set_method(c, self._method, method, body)
        self._method = method
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
            if self.outside is not None:
                self.outside.add(self.purpose, outside_key(method, path), 0)
            raise ClusterError(f"{method} {self.endpoint.server}{path}: {exc.args[-1]}") from None
        status = c.getinfo(pycurl.RESPONSE_CODE)
        if self.outside is not None:
            self.outside.add(self.purpose, outside_key(method, path), status)
        return status, b"".join(chunks)

    def close(self) -> None:
        self._curl.close()


def outside_key(method: str, path: str) -> str:
    """The key a request outside the load is counted under: the API server's verb (a GET of a
    collection is a LIST, as the server counts it) and the path with the object's name masked
    (``:name``, bounded cardinality, as the load's keys of random names)."""
    path, _, query = path.partition("?")
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        rest = parts[2:]
    elif parts[0] == "apis":
        rest = parts[3:]
    else:
        return f"{method} {path}"  # not a resource: /version, /healthz
    if len(rest) >= 3 and rest[0] == "namespaces":
        prefix, rest = parts[: len(parts) - len(rest) + 2], rest[2:]
    else:
        prefix = parts[: len(parts) - len(rest)]
    verb = method
    if method == "GET" and "watch=true" in query.split("&"):
        verb = "WATCH"
    elif method == "GET" and len(rest) == 1:
        verb = "LIST"
    if len(rest) >= 2:
        rest = [rest[0], ":name", *rest[2:]]
    return f"{verb} /{'/'.join(prefix + rest)}"


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
