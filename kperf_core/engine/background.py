"""Background sessions: what runs beside a spec's load (informers' watches), on connections of its
own.

A background request type (``watch``) keeps its sessions open for the whole spec, each opened
again when it ends. They must never take capacity from the load: an HTTP/2 connection carries
at most the server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` streams, so long-running watches sharing
the load's connections take every stream and the load waits. So they get a transport of their own,
sized from the session count and the stream limit the server advertises (read before the spec
starts, see :mod:`~kperf_core.engine.http2_settings`) — client-go's informers would open more
connections too — and the load keeps its ``conns`` and ``client``. Planning with more streams per
connection than the server allows is not harmless: the streams beyond its limit wait in the
client until another on that connection ends, which for a watch is its whole ``timeoutSeconds``
(seen on v1.35, which allows 100: 600 of 1,000 watches planned at 250 per connection waited).

The sessions are established before the load starts (each informer has listed and its watch is
open), as informers are running before the traffic they sit beside: a thousand informers listing at
once would otherwise measure their start-up herd, not the load beside them. They start a window
at a time (:data:`STARTING_AT_ONCE` sent and not yet answered), not all at once: thousands of lists
sent together queue in the server past their timeouts, and each failed session comes back on top
of the queue (seen with 10,000 watchers on v1.35: 1,486 lists timed out, 99 watches lost their
connection, 5,381 sessions not established after 60 s, the load beside them at 1.1 of 20 req/s).
"""

from __future__ import annotations

import heapq
import itertools
import math
import resource
from typing import TYPE_CHECKING

from kperf_core.engine.transport import Transfer
from kperf_core.request_types import ResponseHandling

if TYPE_CHECKING:
    from kperf_core.request_types import RequestType

#: Seconds before a failed background session (a watch the server refused) is opened again.
BACKGROUND_RETRY_PAUSE = 1.0
#: Streams per HTTP/2 connection when the server's SETTINGS cannot be read: the smallest that
#: kube-apiserver advertises by default (100 since 1.29, 250 before), and what Go's HTTP/2 client
#: assumes until it hears otherwise. Too few only costs connections; too many stalls sessions.
DEFAULT_STREAM_LIMIT = 100
#: New sessions sent and not yet answered at most (see the module's docstring).
STARTING_AT_ONCE = 200
#: Seconds between looks at whether started sessions were answered (which frees the window).
_WINDOW_RECHECK = 0.01
#: File descriptors the process needs beside its connections (libcurl, epoll, logs, Python).
_SPARE_FILES = 64


class BackgroundSessions:
    """The sessions of a spec's background request types and when each is (re)opened."""

    def __init__(
        self,
        request_types: list[RequestType],
        *,
        http2: bool,
        stream_limit: int | None = None,
        worker: tuple[int, int] = (0, 1),
        starting_at_once: int = STARTING_AT_ONCE,
    ) -> None:
        self.request_types = [t for t in request_types if t.background]
        # With several engine processes (--workers), process i of n opens every n-th session.
        index, count = worker
        self._mine = [
            t
            for i, t in enumerate(
                t for t in self.request_types for _ in range(t.background_sessions())
            )
            if i % count == index
        ]
        self.sessions = len(self._mine)
        self.http2 = http2
        #: whether ``stream_limit`` is the server's (read from its SETTINGS) or the default
        self.stream_limit_from = "default" if stream_limit is None else "server"
        self.stream_limit = max(1, stream_limit or DEFAULT_STREAM_LIMIT)
        #: connections the sessions need: HTTP/2 multiplexes up to the server's stream limit
        #: on each, HTTP/1.1 needs one per session
        self.connections = math.ceil(self.sessions / self.stream_limit) if http2 else self.sessions
        self.open: set[Transfer] = set()
        #: open streams not yet answered, and those answered 2xx (established): kept as they
        #: change, as counting over every open session on each turn of the loop cost a core's
        #: tenth at 10,000 sessions
        self._unanswered: set[Transfer] = set()
        self._established: set[Transfer] = set()
        #: sessions opened (each watch session and each list counts)
        self.sent = 0
        #: sessions that ended in an error (they are opened again after a pause)
        self.failed = 0
        self._due: list[tuple[float, int, RequestType]] = []  # heap of (when, seq, type)
        self._seq = itertools.count()
        self._stopped = False
        self.starting_at_once = starting_at_once
        #: new sessions not started yet (the last starts first), and those started and not yet
        #: answered
        self._waiting: list[RequestType] = []
        self._starting: set[Transfer] = set()
        self._recheck_at = math.inf

    def start(self, now: float) -> None:
        """Start the sessions, a window at a time (see :meth:`due`)."""
        self._waiting = self._mine[::-1]
        self._recheck_at = now

    def reopen(self, request_type: RequestType, when: float) -> None:
        heapq.heappush(self._due, (when, next(self._seq), request_type))

    def ended(self, transfer: Transfer, request_type: RequestType, ok: bool, now: float) -> None:
        """A session ended: opened again at once, or after a pause when it failed."""
        self.open.discard(transfer)
        self._starting.discard(transfer)
        self._unanswered.discard(transfer)
        self._established.discard(transfer)
        if not ok:
            self.failed += 1
        if not self._stopped:
            pause = 0.0 if ok else max(BACKGROUND_RETRY_PAUSE, transfer.retry_after or 0.0)
            self.reopen(request_type, now + pause)

    def due(self, now: float) -> list[tuple[RequestType, bool]]:
        """The sessions to open now, each with whether it is a new one (then its first request
        comes from :meth:`RequestType.build_first`, and it is passed to :meth:`opened`): those
        opened again, and as many new ones as the window has room for."""
        due = []
        while self._due and self._due[0][0] <= now:
            due.append((heapq.heappop(self._due)[2], False))
        if self._waiting and now >= self._recheck_at and not self._stopped:
            # a started session leaves the window when the server answered it
            self._starting = {t for t in self._starting if t.headers_at is None}
            room = min(len(self._waiting), self.starting_at_once - len(self._starting))
            due.extend((self._waiting.pop(), True) for _ in range(max(0, room)))
            self._recheck_at = now + _WINDOW_RECHECK if self._waiting else math.inf
        return due

    def opened(self, transfer: Transfer, new: bool) -> None:
        """A session's request was sent (``new``: the first of a new session)."""
        self.open.add(transfer)
        self.sent += 1
        if new:
            self._starting.add(transfer)
        if transfer.request.response is ResponseHandling.STREAM:
            self._unanswered.add(transfer)

    def wake_at(self) -> float:
        return min(self._due[0][0] if self._due else math.inf, self._recheck_at)

    def settled(self, now: float) -> int:
        """Sessions that are established (a stream the server answered 2xx) or failed and wait
        to be opened again: when all are, the load may start."""
        answered = [t for t in self._unanswered if t.headers_at is not None]
        self._unanswered.difference_update(answered)
        self._established.update(t for t in answered if 200 <= t.status < 300)
        return len(self._established) + sum(1 for when, _, _ in self._due if when > now)

    def stop(self) -> None:
        """The spec ends: nothing is opened again."""
        self._stopped = True
        self._due.clear()
        self._waiting.clear()
        self._recheck_at = math.inf


def file_limit_problem(connections: int) -> str | None:
    """Make room for ``connections`` sockets: raise the soft open-file limit up to the hard one
    (as Go's runtime does for every Go client); None if there is room, else the one line that
    says which limit stands in the way."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + _SPARE_FILES
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        target = soft
    if needed <= target:
        return None
    return (
        f"open-file limit: {connections} connections need about {needed} file descriptors, "
        f"the limit is {target} (raise `ulimit -n`, or use HTTP/2, which multiplexes)"
    )
