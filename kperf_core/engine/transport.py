"""The HTTP transport: libcurl's multi interface driven by an epoll loop in this thread.

Why libcurl (pycurl): measured on the project's machines it carries ~9k req/s of small GETs from one
Python thread with HTTP/2 multiplexing, where asyncio stacks top out lower and carry no HTTP/2
(see README "Performance"). Per request, Python only sets options, counts body chunks and records
the completion; TLS, HTTP/2 framing and decompression stay in C.

Connections follow upstream's meaning of ``conns`` and ``client``:
* HTTP/2 — at most ``conns`` connections, each carrying up to ``ceil(client / conns)`` streams
  (upstream: ``conns`` transports, worker i on transport i % conns, one connection each);
* HTTP/1.1 — one connection per in-flight request (upstream's transports open connections as
  needed), so ``client`` is the connection count and ``conns`` only groups them.
"""

from __future__ import annotations

import abc
import math
import os
import select
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pycurl

from kperf_core.request_types import ResponseHandling, WireRequest

if TYPE_CHECKING:
    from kperf_core.kube import ClusterEndpoint

_EPOLL_FOR = {
    pycurl.POLL_IN: select.EPOLLIN,
    pycurl.POLL_OUT: select.EPOLLOUT,
    pycurl.POLL_INOUT: select.EPOLLIN | select.EPOLLOUT,
}


def _cselect(mask: int) -> int:
    flags = 0
    if mask & select.EPOLLIN:
        flags |= pycurl.CSELECT_IN
    if mask & select.EPOLLOUT:
        flags |= pycurl.CSELECT_OUT
    if mask & (select.EPOLLERR | select.EPOLLHUP):
        flags |= pycurl.CSELECT_ERR
    return flags


#: epoll event masks → libcurl's CSELECT flags, for the masks that occur
_CSELECT_FOR = {
    m: _cselect(m) for m in (select.EPOLLIN, select.EPOLLOUT, select.EPOLLIN | select.EPOLLOUT)
}


class Transfer:
    """One request in flight (or just finished)."""

    __slots__ = (
        "attempts",
        "body",
        "bytes",
        "error",
        "error_message",
        "failed_stream",
        "finished_at",
        "handle",
        "headers_at",
        "request",
        "retry_after",
        "started",
        "state",
        "status",
        "stream_done",
        "tag",
    )

    def __init__(self, request: WireRequest, tag: Any, started: float) -> None:
        self.request = request
        self.tag = tag
        self.started = started
        self.handle: _Handle | None = None
        self.status = 0
        self.error = 0  # libcurl errno, 0 when the transfer itself succeeded
        self.error_message = ""
        self.bytes = 0
        self.body: list[bytes] | None = None
        self.state: dict[str, Any] | None = None
        self.failed_stream: str | None = None
        self.stream_done = False
        self.headers_at: float | None = None
        self.retry_after: float | None = None
        self.attempts = 0
        #: when libcurl had read the whole answer (see :meth:`CurlTransport.poll`)
        self.finished_at = 0.0

    def keep(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self.body.append(chunk)  # type: ignore[union-attr]


class _Handle:
    """A libcurl easy handle and what it was last set up for.

    The state lives here, not in attributes of the ``pycurl.Curl`` object: pycurl looks such an
    attribute up only after a failed generic lookup has raised and cleared an AttributeError,
    which cost ~4,000 instructions per access (callgrind), about 25,000 per request."""

    __slots__ = (
        "counting",
        "curl",
        "header_callback",
        "method",
        "prepared",
        "timeout_ms",
        "transfer",
    )

    def __init__(self, curl: pycurl.Curl, timeout_ms: int) -> None:
        self.curl = curl
        self.transfer: Transfer | None = None
        self.method = "GET"
        self.header_callback = False
        # a request sent again (lists and gets build the same WireRequest object every time)
        # with the same credentials skips its options
        self.prepared: tuple[WireRequest | None, str | None] = (None, None)
        self.timeout_ms = timeout_ms
        # the write callback is count() (set once; setting it per request cost a setopt and a
        # bound method each time)
        self.counting = False

    # Bodies are counted after decompression, as upstream's Go client counts them (libcurl's
    # SIZE_DOWNLOAD counts the gzip bytes on the wire).
    def count(self, chunk: bytes) -> None:
        self.transfer.bytes += len(chunk)  # type: ignore[union-attr]


class Transport(abc.ABC):
    """What the spec runner drives: requests started, finished transfers polled for. Implemented
    by :class:`CurlTransport` and, for plain exchanges, by the native transport
    (:mod:`kperf_core.engine.native_transport`)."""

    #: transfers started and not yet finished or aborted
    in_flight: int

    def start(self, request: WireRequest, tag: Any, started: float) -> Transfer:
        """Begin sending ``request``; its :class:`Transfer` comes back from :meth:`poll`."""
        transfer = Transfer(request, tag, started)
        self._submit(transfer)
        return transfer

    def resubmit(self, transfer: Transfer) -> None:
        """Send the same request again on the same transfer (retries, follow-up pages)."""
        transfer.status = 0
        transfer.error = 0
        transfer.error_message = ""
        self._submit(transfer)

    @abc.abstractmethod
    def _submit(self, transfer: Transfer) -> None:
        """Send ``transfer.request`` (again) and count the attempt."""

    @property
    @abc.abstractmethod
    def connections_opened(self) -> int:
        """Connections opened so far (HTTP/1.1 opens again after a server's close)."""

    @abc.abstractmethod
    def poll(self, max_wait: float) -> list[Transfer]:
        """Wait up to ``max_wait`` seconds for I/O and return the finished transfers, each
        stamped with its ``finished_at``."""

    @abc.abstractmethod
    def abort(self, transfer: Transfer) -> None:
        """Stop a transfer now (run end); it is not returned by :meth:`poll`."""

    @abc.abstractmethod
    def close(self) -> list[Transfer]:
        """Abandon whatever is still in flight (returned) and free every connection."""


class CurlTransport(Transport):
    """A connection pool with its own event loop; one per spec (per-spec pools, unlike upstream).

    :param on_chunk: for ``STREAM`` requests, called with (transfer, chunk); returns True when the
        stream is complete (the transfer then finishes as a success).
    :param max_streams: HTTP/2 streams per connection (default: ``client`` spread over ``conns``);
        libcurl opens another connection, up to ``conns``, when one is full or the server allows
        fewer.
    """

    def __init__(
        self,
        endpoint: ClusterEndpoint,
        *,
        conns: int,
        client: int,
        http2: bool = True,
        user_agent: str = "",
        timeout: float = 60.0,
        want_retry_after: bool = False,
        on_chunk: Callable[[Transfer, bytes], bool] | None = None,
        max_streams: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._url_base = _url_base(endpoint)[0]
        self.http2 = http2
        self.timeout_ms = max(1, int(timeout * 1000))
        self.user_agent = user_agent or "kperf"
        self.want_retry_after = want_retry_after
        self.on_chunk = on_chunk
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        # No M_TIMERFUNCTION: libcurl changes its timer about twice per request, and asking
        # multi.timeout() once per poll costs less than those calls into Python.
        if http2:
            self.multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
            self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, conns)
            self.multi.setopt(
                pycurl.M_MAX_CONCURRENT_STREAMS, max_streams or max(1, math.ceil(client / conns))
            )
            self.multi.setopt(pycurl.M_MAXCONNECTS, conns)
        else:
            self.multi.setopt(pycurl.M_PIPELINING, 0)
            self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, client)
            self.multi.setopt(pycurl.M_MAXCONNECTS, client)
        self._epoll = select.epoll()
        self._registered: set[int] = set()  # sockets libcurl waits on
        self._parked: set[int] = set()  # in the epoll set, but libcurl does not wait on them
        self._masks: dict[int, int] = {}  # socket → its event mask in the epoll set
        self._idle: list[_Handle] = []
        self._active: dict[pycurl.Curl, _Handle] = {}  # what info_read names → its handle
        self.in_flight = 0
        self._connections_opened = 0
        #: a transport polled together with this one (see :meth:`attach`)
        self._child: CurlTransport | None = None
        self._child_fd = -1
        self._auth_value: str | None = None
        self._auth_line: str | None = None

    # -- libcurl callbacks (must not call back into libcurl) -----------------------------------

    def _on_socket(self, what: int, fd: int, _multi: Any, _data: Any) -> None:
        # libcurl removes a kept-alive HTTP/1.1 connection's socket after every request and asks
        # for it again with the next: leave it in the epoll set, parked, so that the usual
        # request costs one epoll_ctl rather than two.
        if what == pycurl.POLL_REMOVE:
            if fd in self._registered:
                self._registered.discard(fd)
                self._parked.add(fd)
            return
        mask = _EPOLL_FOR[what]
        epoll = self._epoll
        if fd in self._parked:
            # libcurl may have closed it meanwhile and got the number again for a new socket
            # (closing drops a socket from the epoll set): modify fails for such a one
            self._parked.discard(fd)
            try:
                epoll.modify(fd, mask)
            except FileNotFoundError:
                epoll.register(fd, mask)
        elif fd not in self._masks:
            epoll.register(fd, mask)
        elif self._masks[fd] != mask:
            epoll.modify(fd, mask)
        self._masks[fd] = mask
        self._registered.add(fd)

    def _on_new_socket(self, _fd: int, _purpose: int) -> int:
        # libcurl calls this once per socket it opens: the connection count costs nothing
        # per request
        self._connections_opened += 1
        return 0  # CURL_SOCKOPT_OK

    @property
    def connections_opened(self) -> int:
        return self._connections_opened

    def _forget(self, fd: int) -> None:
        self._masks.pop(fd, None)
        self._parked.discard(fd)
        try:
            self._epoll.unregister(fd)
        except (FileNotFoundError, OSError):
            pass  # closed already

    # -- handles -------------------------------------------------------------------------------

    def _new_handle(self) -> _Handle:
        c = pycurl.Curl()
        configure_tls(c, self.endpoint)
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.TCP_NODELAY, 1)
        c.setopt(pycurl.SOCKOPTFUNCTION, self._on_new_socket)
        if not proxy_in_environment(self.endpoint.server):
            # nothing for libcurl to find: without this it reads six environment variables
            # for every request (callgrind: ~1,800 instructions per request)
            c.setopt(pycurl.PROXY, "")
        c.setopt(pycurl.USERAGENT, self.user_agent)
        c.setopt(pycurl.ACCEPT_ENCODING, "gzip")  # what Go's transport asks for by default
        c.setopt(
            pycurl.HTTP_VERSION,
            pycurl.CURL_HTTP_VERSION_2TLS if self.http2 else pycurl.CURL_HTTP_VERSION_1_1,
        )
        if self.http2:
            c.setopt(pycurl.PIPEWAIT, 1)  # multiplex on an open connection rather than open more
        c.setopt(pycurl.TIMEOUT_MS, self.timeout_ms)
        return _Handle(c, self.timeout_ms)

    def _authorization(self) -> str | None:
        """The ``Authorization`` header line to send now (credentials may refresh)."""
        value = self.endpoint.credentials.authorization_header()
        if value is None:
            return None
        if value != self._auth_value:
            self._auth_value, self._auth_line = value, f"Authorization: {value}"
        return self._auth_line

    def _submit(self, transfer: Transfer) -> None:
        request = transfer.request
        handle = self._idle.pop() if self._idle else self._new_handle()
        c = handle.curl
        transfer.handle = handle
        transfer.attempts += 1
        auth = self._authorization()
        prepared = handle.prepared
        if prepared[0] is not request or prepared[1] != auth:
            c.setopt(pycurl.URL, self._url_base + request.target)
            set_method(c, handle.method, request.method, request.body)
            handle.method = request.method
            c.setopt(pycurl.HTTPHEADER, [*request.headers, auth] if auth else request.headers)
            handle.prepared = (request, auth)
        handling = request.response
        if handling is ResponseHandling.DRAIN:
            if not handle.counting:
                c.setopt(pycurl.WRITEFUNCTION, handle.count)
                handle.counting = True
        elif handling is ResponseHandling.BUFFER:
            transfer.body = []
            c.setopt(pycurl.WRITEFUNCTION, transfer.keep)
            handle.counting = False
        else:
            handle.counting = False
            transfer.state = {}
            on_chunk = self.on_chunk
            if on_chunk is None:
                raise RuntimeError("streaming request on a transport without on_chunk")

            def stream(chunk: bytes, transfer: Transfer = transfer) -> int | None:
                transfer.bytes += len(chunk)
                if transfer.failed_stream is not None:
                    return 0
                if not 200 <= transfer.status < 300:  # from the status line (see header())
                    return None  # an error Status body, not events: classified by its code
                if on_chunk(transfer, chunk):
                    transfer.stream_done = True
                    return 0  # abort the transfer: libcurl reports E_WRITE_ERROR, we know why
                return 0 if transfer.failed_stream is not None else None

            c.setopt(pycurl.WRITEFUNCTION, stream)
        timeout_ms = self.timeout_ms if request.timeout is None else int(request.timeout * 1000)
        if handle.timeout_ms != timeout_ms:
            c.setopt(pycurl.TIMEOUT_MS, timeout_ms)
            handle.timeout_ms = timeout_ms
        # Headers are read only when needed: Retry-After, time to headers, a stream's status
        # (libcurl's getinfo cannot be called from inside a write callback).
        wants_headers = (
            self.want_retry_after
            or request.latency_to_headers
            or handling is ResponseHandling.STREAM
        )
        if wants_headers:
            transfer.retry_after = None

            def header(line: bytes, transfer: Transfer = transfer) -> None:
                if transfer.headers_at is None:
                    transfer.headers_at = time.perf_counter()
                if line[:5] == b"HTTP/":
                    parts = line.split(None, 2)
                    transfer.status = int(parts[1]) if len(parts) > 1 else 0
                elif line[:12].lower() == b"retry-after:":
                    try:
                        transfer.retry_after = float(line[12:].strip())
                    except ValueError:
                        transfer.retry_after = None

            c.setopt(pycurl.HEADERFUNCTION, header)
        elif handle.header_callback:
            c.unsetopt(pycurl.HEADERFUNCTION)
        handle.header_callback = wants_headers
        handle.transfer = transfer
        self.multi.add_handle(c)
        self._active[c] = handle
        self.in_flight += 1

    # -- the loop ------------------------------------------------------------------------------

    def attach(self, child: CurlTransport) -> None:
        """Poll ``child`` (a pool of its own, e.g. background sessions) in this one's
        :meth:`poll`: its epoll set waits inside this one's, so one wait serves both and the
        load's requests pay nothing for it."""
        self._child = child
        self._child_fd = child._epoll.fileno()
        self._epoll.register(self._child_fd, select.EPOLLIN)
        # with the parked sockets: the one branch of poll() that is not a libcurl socket
        self._parked.add(self._child_fd)

    def poll(self, max_wait: float) -> list[Transfer]:
        """Wait up to ``max_wait`` seconds for I/O, advance libcurl, return finished transfers
        (the attached child's too), each stamped with its ``finished_at``."""
        timer_ms = self.multi.timeout()  # libcurl's next deadline (-1: none)
        child = self._child
        child_due = False
        if child is not None:
            child_ms = child.multi.timeout()
            child_due = child_ms == 0
            if child_ms > 0:
                max_wait = min(max_wait, child_ms / 1000)
                child_due = max_wait >= child_ms / 1000  # its deadline passes while waiting
        if timer_ms < 0:
            timer_at, wait = None, max_wait
        elif timer_ms == 0:  # due now (a transfer just added): no need to read the clock
            timer_at, wait = 0.0, 0.0
        else:
            timer_at = time.perf_counter() + timer_ms / 1000
            wait = min(max_wait, timer_ms / 1000)
        events = (
            self._epoll.poll(wait if wait > 0 else 0)
            if self._registered or wait > 0 or child is not None
            else []
        )
        woke_at = time.perf_counter()
        socket_action = self.multi.socket_action
        parked = self._parked
        for fd, mask in events:
            if fd in parked:
                if fd == self._child_fd:
                    child_due = True
                    continue
                # an idle connection's socket became readable (the server closed it, or sent
                # what nobody asked for): out of the set, or it would be reported on every poll;
                # libcurl finds out when it next uses the connection
                self._forget(fd)
                continue
            socket_action(fd, _CSELECT_FOR.get(mask) or _cselect(mask))
        if timer_at is not None and woke_at >= timer_at:
            socket_action(pycurl.SOCKET_TIMEOUT, 0)
        # Completion time: after libcurl read what it read. The wake-up time would be too early
        # for an answer that arrived while libcurl worked through the events (it reads each
        # socket until it would block): latencies of 10 µs were recorded on loopback.
        done = self._collect(time.perf_counter())
        if child_due:
            done.extend(child.poll(0))  # type: ignore[union-attr]
        return done

    def _collect(self, finished_at: float) -> list[Transfer]:
        done: list[Transfer] = []
        while True:
            queued, ok_list, err_list = self.multi.info_read()
            for c in ok_list:
                done.append(self._finish(c, 0, "", finished_at))
            for c, errno, message in err_list:
                done.append(self._finish(c, errno, message, finished_at))
            if not queued:
                return done

    def _finish(self, c: pycurl.Curl, errno: int, message: str, finished_at: float) -> Transfer:
        handle = self._active[c]
        transfer: Transfer = handle.transfer  # type: ignore[assignment]
        transfer.status = c.getinfo(pycurl.RESPONSE_CODE)
        transfer.error = errno
        transfer.error_message = message
        transfer.finished_at = finished_at
        self._release(handle)
        return transfer

    def abort(self, transfer: Transfer) -> None:
        """Stop a transfer now (run end); it is not returned by :meth:`poll`."""
        if transfer.handle is not None:
            self._release(transfer.handle)

    def _release(self, handle: _Handle) -> None:
        self.multi.remove_handle(handle.curl)
        del self._active[handle.curl]
        self.in_flight -= 1
        handle.transfer.handle = None  # type: ignore[union-attr]
        handle.transfer = None
        self._idle.append(handle)

    def close(self) -> list[Transfer]:
        """Abandon whatever is still in flight (returned: the attached child's too) and free
        every handle and socket."""
        abandoned = [h.transfer for h in self._active.values() if h.transfer is not None]
        if self._child is not None:
            abandoned += self._child.close()
            self._child = None
        for handle in list(self._active.values()):
            self._release(handle)
        for handle in self._idle:
            handle.curl.close()
        self._idle.clear()
        self.multi.close()
        self._epoll.close()
        return abandoned


def set_method(c: pycurl.Curl, previous: str, method: str, body: bytes | None) -> None:
    """Set method and body on a handle whose last method was ``previous`` (a reused handle must
    not resend the previous request's body: HTTPGET clears libcurl's POST state first)."""
    if previous != "GET" or method == "GET":
        c.setopt(pycurl.HTTPGET, 1)
        if previous != "GET":
            c.unsetopt(pycurl.CUSTOMREQUEST)
    if method != "GET":
        c.setopt(pycurl.CUSTOMREQUEST, method)
        if body is not None:
            c.setopt(pycurl.POSTFIELDS, body)


def configure_tls(c: pycurl.Curl, endpoint: ClusterEndpoint) -> str:
    """Trust, client certificate and address options; returns the URL prefix to use."""
    base, connect_to = _url_base(endpoint)
    if endpoint.ca_pem is not None:
        c.setopt(pycurl.CAINFO_BLOB, endpoint.ca_pem)
    if endpoint.insecure_skip_tls_verify:
        c.setopt(pycurl.SSL_VERIFYPEER, 0)
        c.setopt(pycurl.SSL_VERIFYHOST, 0)
    if endpoint.client_cert_pem is not None and endpoint.client_key_pem is not None:
        c.setopt(pycurl.SSLCERT_BLOB, endpoint.client_cert_pem)
        c.setopt(pycurl.SSLCERTTYPE, "PEM")
        c.setopt(pycurl.SSLKEY_BLOB, endpoint.client_key_pem)
        c.setopt(pycurl.SSLKEYTYPE, "PEM")
    if connect_to:
        c.setopt(pycurl.CONNECT_TO, connect_to)
    return base


def proxy_in_environment(server: str) -> bool:
    """Whether libcurl would find a proxy for ``server`` in the environment (it reads
    ``<scheme>_proxy``, ``HTTPS_PROXY`` and ``all_proxy`` / ``ALL_PROXY``; never ``HTTP_PROXY``)."""
    scheme = server.split("://", 1)[0].lower()
    names = [f"{scheme}_proxy", "all_proxy", "ALL_PROXY"]
    if scheme != "http":
        names.append(f"{scheme.upper()}_PROXY")
    return any(os.environ.get(name) for name in names)


def _url_base(endpoint: ClusterEndpoint) -> tuple[str, list[str]]:
    """URL prefix and CONNECT_TO list. libcurl has no SNI override, so with ``tls-server-name``
    the URL names that host and CONNECT_TO sends the connection to the real address."""
    server = endpoint.server.rstrip("/")
    if not endpoint.tls_server_name:
        return server, []
    scheme, rest = server.split("://", 1)
    host_port = rest.split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host:  # no explicit port
        host, port = host_port, "443" if scheme == "https" else "80"
    name = endpoint.tls_server_name
    return f"{scheme}://{name}:{port}", [f"{name}:{port}:{host}:{port}"]
