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

The fast lane: where a spec's closed loop needs nothing of Python per request — every request
type sends one fixed request whose answer is drained, no retries, no raw latencies kept —
:func:`choose_loop` runs that loop inside the extension too (:mod:`kperf_core.engine.native_loop`):
a GET over HTTP/1.1 took 77,803 instructions with the Python loop, 47,468 with the native one
(benchmarks/results/2026-11-29-native-loop.txt). The report's
``connections.load.loop`` says which loop ran (``native`` or ``python``) and
``notNativeLoopBecause`` why not the native one; ``KPERF_NATIVE_LOOP=python|native`` forces one.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from kperf_core.engine.transport import Transfer, Transport, proxy_in_environment
from kperf_core.errors import ConfigError
from kperf_core.kube_auth import Credentials, StaticCredentials
from kperf_core.request_types import ResponseHandling, WireRequest

if TYPE_CHECKING:
    from kperf_core.kube import ClusterEndpoint
    from kperf_core.profile import LoadProfileSpec
    from kperf_core.request_types import RequestType

#: Environment variable that forces a transport: ``curl`` or ``native`` (unset or ``auto``: choose).
TRANSPORT_ENV = "KPERF_TRANSPORT"
NATIVE = "native"
LIBCURL = "libcurl"
_CHOICES = {"": "", "auto": "", "curl": LIBCURL, "libcurl": LIBCURL, "native": NATIVE}


@attrs.frozen
class TransportChoice:
    """Which transport runs a spec's load (or which loop sends it: :func:`choose_loop`), and why
    not the native one (empty when it does)."""

    name: str
    reason: str = ""


#: Environment variable that forces the load's loop: ``python`` or ``native`` (unset or ``auto``:
#: choose).
LOOP_ENV = "KPERF_NATIVE_LOOP"
PYTHON = "python"
_LOOP_CHOICES = {"": "", "auto": "", "python": PYTHON, "native": NATIVE, "rust": NATIVE}


def native_installed() -> bool:
    return importlib.util.find_spec("kperf_native") is not None


def choose_transport(
    instances: Sequence[RequestType],
    endpoint: ClusterEndpoint,
    environ: Mapping[str, str] = os.environ,
) -> TransportChoice:
    """The native transport when it can carry every request of the spec, else libcurl."""
    return _choose(
        TRANSPORT_ENV, _CHOICES, LIBCURL, lambda: native_problem(instances, endpoint), environ
    )


def choose_loop(
    spec: LoadProfileSpec,
    instances: Sequence[RequestType],
    transport: TransportChoice,
    keep_raw: bool,
    environ: Mapping[str, str] = os.environ,
) -> TransportChoice:
    """The native loop (the fast lane) when the spec's load needs no Python per request, else
    the engine's Python loop; ``reason`` says why not the native one."""
    return _choose(
        LOOP_ENV,
        _LOOP_CHOICES,
        PYTHON,
        lambda: native_loop_problem(spec, instances, transport, keep_raw),
        environ,
    )


def _choose(
    variable: str,
    choices: Mapping[str, str],
    other: str,
    problem: Callable[[], str | None],
    environ: Mapping[str, str],
) -> TransportChoice:
    """Native unless ``problem()`` says why not (then ``other``), or what ``$variable`` forces:
    ``other`` at once, native or a one-line ConfigError saying why it cannot be."""
    value = environ.get(variable, "")
    wanted = choices.get(value.strip().lower())
    if wanted is None:
        spelled = next(name for name, choice in choices.items() if choice == other)
        raise ConfigError(f"{variable}={value!r}: expected {spelled}, native or auto")
    if wanted == other:
        return TransportChoice(other, f"{variable}={value}")
    why = problem()
    if why is None:
        return TransportChoice(NATIVE)
    if wanted == NATIVE:
        raise ConfigError(f"{variable}=native, but {why}")
    return TransportChoice(other, why)


def native_loop_problem(
    spec: LoadProfileSpec,
    instances: Sequence[RequestType],
    transport: TransportChoice,
    keep_raw: bool,
) -> str | None:
    """Why the spec's load cannot run in the native loop (None: it can)."""
    if transport.name != NATIVE:
        return "the load runs on libcurl"
    if spec.arrival != "closed":
        return f"arrival {spec.arrival} (the native loop runs the closed loop only)"
    if spec.max_retries > 0:
        return "maxRetries > 0 (retries run in Python)"
    if keep_raw:
        return "--raw-data keeps every latency"
    if not any(spec_item.shares for spec_item in spec.requests):
        return "no request type takes a share of the load"
    for instance, item in zip(instances, spec.requests, strict=True):
        if not item.shares:
            continue
        request = instance.fixed_request()
        if request is None:
            return f"{instance.name} builds a new request each time"
        if request.response is not ResponseHandling.DRAIN or request.latency_to_headers:
            return f"{instance.name} reads its answers in Python (pagination)"
    return None


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
        handle = self._native.start(
            self._prepare(request),
            self._timeout_of(request),
            request.response is ResponseHandling.BUFFER,
        )
        transfer.attempts += 1
        self._transfers[handle] = transfer
        self.in_flight += 1

    def _prepare(self, request: WireRequest) -> Any:
        entry = self._prepared.get(id(request))
        if entry is None or entry[0] is not request:
            if len(self._prepared) >= 1024:  # requests of random objects are new every time
                self._prepared.clear()
            prepared = self._native.prepare(
                request.method, self._prefix + request.target, self._lines(request), request.body
            )
            entry = self._prepared[id(request)] = (request, prepared)
        return entry[1]

    def _timeout_of(self, request: WireRequest) -> float:
        return self.timeout if request.timeout is None else request.timeout

    def start_loop(
        self,
        requests: Sequence[WireRequest],
        shares: Sequence[float],
        *,
        seed: int,
        client: int,
        total: float,
        rate: float,
        start: float,
        deadline: float,
    ) -> None:
        """Begin the native loop (:mod:`kperf_core.engine.native_loop`) of ``requests`` chosen by
        ``shares``; this transport then sends nothing else."""
        self._native.start_loop(
            [self._prepare(request) for request in requests],
            [self._timeout_of(request) for request in requests],
            list(itertools.accumulate(shares)),
            seed=seed,
            client=client,
            total=min(total, 2**64 - 1),
            rate=rate,
            start=start,
            deadline=deadline,
        )

    def run_loop(self, until: float) -> tuple[Any, ...]:
        """Run the native loop until ``until`` (``time.perf_counter()``) or until it drained;
        returns kperf_native's batch (sent, in flight, drained, busy seconds, longest lag,
        successes, failures)."""
        return tuple(self._native.run_loop(until))

    def loop_in_flight(self) -> list[int]:
        """The native loop's requests in flight, per request of :meth:`start_loop`."""
        return list(self._native.loop_in_flight())

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
