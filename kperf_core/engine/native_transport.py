"""The native transport: the optional ``kperf_native`` extension (Rust: hyper + rustls, built from
``native/`` by scripts/setup.sh when cargo is present) behind :class:`CurlTransport`'s contract.

Why: libcurl's own cost per request (~100,000 instructions per small GET through pycurl, before any
kperf code) is above what issue 11's target allows; hyper + rustls took ~29,000 where wrk takes
~22,000 (benchmarks/results/2026-11-29-native-prototype.txt). The extension runs the I/O on a
single-threaded runtime that :meth:`NativeTransport.poll` drives, and hands the finished requests
back in one list per poll; bodies cross into Python only for ``BUFFER`` requests.

It carries plain exchanges only — requests whose answer is drained or buffered, of request types
that say so (:meth:`RequestType.plain_exchanges`), with fixed credentials and a CA to verify
against. :func:`choose_transport` picks it per spec when all of that holds and the extension is
installed; everything else runs on libcurl, and the report's ``connections.load`` says which
transport ran the spec and why not the native one. ``KPERF_TRANSPORT=curl|native`` forces one
(A/B benchmarks); ``native`` with a spec it cannot carry is an error before the run.

Connections follow the same ``conns`` / ``client`` meaning as :class:`CurlTransport`'s.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from kperf_core.engine.transport import Transfer, Transport, proxy_in_environment
from kperf_core.errors import ConfigError
from kperf_core.kube_auth import Credentials, StaticCredentials
from kperf_core.request_types import ResponseHandling, WireRequest

if TYPE_CHECKING:
    from kperf_core.kube import ClusterEndpoint
    from kperf_core.request_types import RequestType

#: Environment variable that forces a transport: ``curl`` or ``native`` (unset or ``auto``: choose).
TRANSPORT_ENV = "KPERF_TRANSPORT"
NATIVE = "native"
LIBCURL = "libcurl"
_CHOICES = {"": "", "auto": "", "curl": LIBCURL, "libcurl": LIBCURL, "native": NATIVE}


@attrs.frozen
class TransportChoice:
    """Which transport runs a spec's load, and why not the native one (empty when it does)."""

    name: str
    reason: str = ""


def native_installed() -> bool:
    return importlib.util.find_spec("kperf_native") is not None


def choose_transport(
    instances: Sequence[RequestType],
    endpoint: ClusterEndpoint,
    environ: Mapping[str, str] = os.environ,
) -> TransportChoice:
    """The native transport when it can carry every request of the spec, else libcurl."""
    value = environ.get(TRANSPORT_ENV, "")
    wanted = _CHOICES.get(value.strip().lower())
    if wanted is None:
        raise ConfigError(f"{TRANSPORT_ENV}={value!r}: expected curl, native or auto")
    if wanted == LIBCURL:
        return TransportChoice(LIBCURL, f"{TRANSPORT_ENV}={value}")
    problem = native_problem(instances, endpoint)
    if problem is None:
        return TransportChoice(NATIVE)
    if wanted == NATIVE:
        raise ConfigError(f"{TRANSPORT_ENV}=native, but {problem}")
    return TransportChoice(LIBCURL, problem)


def native_problem(instances: Sequence[RequestType], endpoint: ClusterEndpoint) -> str | None:
    """Why the native transport cannot run a spec of ``instances`` against ``endpoint`` (None: it
    can)."""
    if not native_installed():
        return "the kperf_native extension is not installed (scripts/setup.sh builds it with cargo)"
    for instance in instances:
        if instance.background:
            return f"{instance.name} opens background sessions (native: plain requests only)"
        if not instance.plain_exchanges():
            return f"{instance.name} sends requests other than plain exchanges (streams)"
    return _endpoint_problem(endpoint)


def _endpoint_problem(endpoint: ClusterEndpoint) -> str | None:
    if urlsplit(endpoint.server).scheme != "https":
        return "the server is not https"
    if endpoint.ca_pem is None or endpoint.insecure_skip_tls_verify:
        return "the kubeconfig has no CA to verify the server with"
    if endpoint.tls_server_name:
        return "the kubeconfig sets tls-server-name"
    if proxy_in_environment(endpoint.server):
        return "a proxy is set in the environment"
    if type(endpoint.credentials) not in (Credentials, StaticCredentials):
        # token files and exec plugins refresh while the load runs; libcurl asks them per request
        return "the credentials refresh during the run (token file or exec plugin)"
    return None


class NativeTransport(Transport):
    """The spec runner's :class:`~kperf_core.engine.transport.Transport` over the extension."""

    def __init__(
        self,
        endpoint: ClusterEndpoint,
        *,
        conns: int,
        client: int,
        http2: bool = True,
        user_agent: str = "",
        timeout: float = 60.0,
    ) -> None:
        import kperf_native

        parts = urlsplit(endpoint.server)
        host = parts.hostname or ""
        self._native = kperf_native.Transport(
            f"[{host}]" if ":" in host else host,
            parts.port or 443,
            endpoint.ca_pem,
            cert_pem=endpoint.client_cert_pem if endpoint.client_key_pem else None,
            key_pem=endpoint.client_key_pem if endpoint.client_cert_pem else None,
            http2=http2,
            conns=conns,
            streams=max(1, math.ceil(client / conns)),
            h1_connections=client,
        )
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        auth = endpoint.credentials.authorization_header()
        self._common = (
            f"User-Agent: {user_agent or 'kperf'}",
            "Accept-Encoding: gzip",  # what CurlTransport (and Go's transport) asks for
            *((f"Authorization: {auth}",) if auth else ()),
        )
        # id(request) → (request, prepared): gets and lists send one WireRequest object again
        # and again; the request is kept so that its id cannot be reused meanwhile
        self._prepared: dict[int, tuple[WireRequest, Any]] = {}
        self._transfers: dict[int, Transfer] = {}
        self.in_flight = 0

    @property
    def connections_opened(self) -> int:
        return int(self._native.connections_opened)

    @property
    def protocol(self) -> str:
        """``h2`` or ``http/1.1``, as the server agreed in ALPN (empty before a connection)."""
        return str(self._native.protocol)

    def _submit(self, transfer: Transfer) -> None:
        request = transfer.request
        if request.response is ResponseHandling.STREAM:
            raise RuntimeError(f"streaming request on the native transport: {request.metrics_key}")
        entry = self._prepared.get(id(request))
        if entry is None or entry[0] is not request:
            if len(self._prepared) >= 1024:  # requests of random objects are new every time
                self._prepared.clear()
            prepared = self._native.prepare(
                request.method, self._prefix + request.target, self._lines(request), request.body
            )
            entry = self._prepared[id(request)] = (request, prepared)
        timeout = self.timeout if request.timeout is None else request.timeout
        handle = self._native.start(entry[1], timeout, request.response is ResponseHandling.BUFFER)
        transfer.attempts += 1
        self._transfers[handle] = transfer
        self.in_flight += 1

    def _lines(self, request: WireRequest) -> list[str]:
        """The request's header lines with what libcurl adds to them (Accept, a body's type)."""
        lines = [*request.headers, *self._common]
        names = {line.split(":", 1)[0].strip().lower() for line in request.headers}
        if "accept" not in names:
            lines.append("Accept: */*")
        if request.body is not None and "content-type" not in names:
            lines.append("Content-Type: application/x-www-form-urlencoded")
        return lines

    def poll(self, max_wait: float) -> list[Transfer]:
        # the I/O runs inside this call: up to max_wait, less once something finished
        done: list[Transfer] = []
        transfers = self._transfers
        for (
            handle,
            status,
            errno,
            message,
            size,
            body,
            finished,
            headers_at,
            retry_after,
        ) in self._native.poll(max_wait):
            transfer = transfers.pop(handle)
            transfer.status = status
            transfer.error = errno
            transfer.error_message = message
            transfer.bytes += size  # a paginated walk's pages add up, as on libcurl
            transfer.finished_at = finished
            transfer.headers_at = headers_at
            transfer.retry_after = retry_after
            if body is not None:
                transfer.body = [body]
            done.append(transfer)
        self.in_flight -= len(done)
        return done

    def abort(self, transfer: Transfer) -> None:
        for handle, candidate in self._transfers.items():
            if candidate is transfer:
                self._native.abort(handle)
                del self._transfers[handle]
                self.in_flight -= 1
                return

    def close(self) -> list[Transfer]:
        abandoned = list(self._transfers.values())
        self._transfers.clear()
        self.in_flight = 0
        self._native.close()
        return abandoned
