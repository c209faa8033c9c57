"""The engine's parts that need no server: background sessions' bookkeeping, the completion
recorder, the keys of requests outside the load, and the one place metrics keys are made."""

from __future__ import annotations

import math
import resource

import pytest

from kperf_core.engine.background import (
    DEFAULT_STREAM_LIMIT,
    BackgroundSessions,
    file_limit_problem,
)
from kperf_core.engine.blocking_client import outside_key
from kperf_core.engine.http2_settings import stream_limit_of
from kperf_core.engine.recorder import CompletionRecorder, OutsideLoad
from kperf_core.engine.transport import Transfer
from kperf_core.request_types import (
    SERVER_TIMEOUT,
    BuildContext,
    RequestType,
    ResponseHandling,
    WireRequest,
    wire_request,
)


class _Informer(RequestType):
    name = "informer"
    config_type = dict
    background = True

    def __init__(self, sessions: int) -> None:
        super().__init__({}, BuildContext())
        self.sessions = sessions

    def background_sessions(self) -> int:
        return self.sessions

    def build(self) -> WireRequest:
        return wire_request("WATCH", "/api/v1/pods", {"watch": "true"}, server_timeout=False)


class _Load(_Informer):
    background = False


def test_background_connections_follow_the_stream_limit() -> None:
    informers = [_Informer(3 * 250), _Informer(1), _Load(50)]
    http2 = BackgroundSessions(informers, http2=True, stream_limit=250)
    assert http2.sessions == 3 * 250 + 1  # the load's type is not a background one
    assert (http2.connections, http2.stream_limit_from) == (4, "server")
    assert BackgroundSessions(informers, http2=False).connections == http2.sessions
    unknown = BackgroundSessions(informers, http2=True)  # the server's SETTINGS unread
    assert unknown.stream_limit_from == "default"
    assert unknown.connections == math.ceil(http2.sessions / DEFAULT_STREAM_LIMIT)


def _frame(kind: int, flags: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + bytes(4) + payload


def _setting(identifier: int, value: int) -> bytes:
    return identifier.to_bytes(2, "big") + value.to_bytes(4, "big")


def test_the_servers_stream_limit_is_read_from_its_settings_frame() -> None:
    # what kube-apiserver v1.35 sends: max frame size, max concurrent streams, ...
    settings = _frame(0x4, 0, _setting(0x5, 262144) + _setting(0x3, 100) + _setting(0x6, 1 << 20))
    assert stream_limit_of(settings) == 100
    # a frame before it (e.g. WINDOW_UPDATE) and a SETTINGS ACK are skipped
    window_update = _frame(0x8, 0, (1 << 20).to_bytes(4, "big"))
    assert stream_limit_of(window_update + _frame(0x4, 0x1, b"") + settings) == 100
    # no limit set, or the frame not complete yet: unknown
    assert stream_limit_of(_frame(0x4, 0, _setting(0x5, 262144))) is None
    assert stream_limit_of(settings[:-3]) is None
    assert stream_limit_of(b"") is None


def test_workers_open_every_nth_background_session() -> None:
    informers = [_Informer(3), _Informer(2)]
    shares = [BackgroundSessions(informers, http2=True, worker=(i, 3)) for i in range(3)]
    assert [share.sessions for share in shares] == [2, 2, 1]
    for share in shares:
        share.start(0.0)
    opened = [t for share in shares for t, new in share.due(0.0)]
    assert sorted(map(id, opened)) == sorted(map(id, [informers[0]] * 3 + [informers[1]] * 2))
    assert BackgroundSessions([_Informer(1)], http2=True, worker=(1, 2)).sessions == 0


def test_background_sessions_reopen_at_once_or_after_a_pause() -> None:
    informer = _Informer(2)
    sessions = BackgroundSessions([informer], http2=True)
    sessions.start(10.0)
    assert sessions.due(10.0) == [(informer, True), (informer, True)]
    assert sessions.wake_at() == math.inf
    ok, refused = Transfer(informer.build(), None, 10.0), Transfer(informer.build(), None, 10.0)
    refused.retry_after = 5.0
    sessions.ended(ok, informer, True, 11.0)
    sessions.ended(refused, informer, False, 11.0)
    assert sessions.due(11.0) == [(informer, False)]  # the one that ended well, at once
    assert sessions.wake_at() == 16.0  # the refused one: after the server's Retry-After
    assert sessions.failed == 1
    sessions.stop()
    sessions.ended(ok, informer, True, 20.0)
    assert sessions.due(math.inf) == []  # nothing opens once the spec ended


def test_new_sessions_start_a_window_at_a_time() -> None:
    informer = _Informer(5)
    sessions = BackgroundSessions([informer], http2=True, starting_at_once=2)
    sessions.start(0.0)
    started: list[Transfer] = []

    def open_due(now: float) -> list[tuple[RequestType, bool]]:
        due = sessions.due(now)
        for _, new in due:
            started.append(Transfer(informer.build_first(), None, now))
            sessions.opened(started[-1], new)
        return due

    assert open_due(0.0) == [(informer, True)] * 2
    assert open_due(1.0) == []  # neither was answered: the window is full
    assert sessions.wake_at() <= 1.1  # … and is looked at again soon
    started[0].headers_at = 1.5  # answered (a list's headers): room for one more
    assert open_due(2.0) == [(informer, True)]
    sessions.ended(started[1], informer, False, 2.5)  # failed: room, and opened again later
    assert open_due(3.0) == [(informer, True)]
    assert open_due(4.0) == [(informer, False)]  # the failed one, after its pause
    assert open_due(4.5) == []  # the window is full again
    started[2].headers_at = 4.6
    assert open_due(5.0) == [(informer, True)]  # the fifth and last new session
    assert sessions.wake_at() == math.inf
    assert sessions.sent == 6


def test_a_session_is_settled_when_its_stream_is_answered_or_it_failed() -> None:
    informer = _Informer(3)
    sessions = BackgroundSessions([informer], http2=True)
    stream = wire_request(
        "WATCH", "/api/v1/pods", response=ResponseHandling.STREAM, server_timeout=False
    )
    answered, waiting = Transfer(stream, None, 0.0), Transfer(stream, None, 0.0)
    answered.status, answered.headers_at = 200, 0.5
    sessions.opened(answered, True)
    sessions.opened(waiting, True)
    sessions.ended(Transfer(informer.build(), None, 0.0), informer, False, 1.0)
    assert sessions.settled(1.0) == 2  # answered + failed-and-waiting; `waiting` is not


def test_file_limit_is_raised_to_the_hard_limit_or_named() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        assert file_limit_problem(10) is None
        if hard != resource.RLIM_INFINITY:
            problem = file_limit_problem(hard * 2)
            assert problem is not None and "\n" not in problem
            assert f"{hard * 2} connections" in problem and "ulimit -n" in problem
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_recorder_counts_successes_failures_and_raw_errors() -> None:
    recorder = CompletionRecorder(keep_raw=True)
    recorder.success("GET /api/v1/pods/:name?timeout=1m0s", 0.25, 100)
    recorder.failure("GET /api/v1/pods/:name?timeout=1m0s", "http/429", 0.5, 429, 10)
    recorder.failure("GET /api/v1/pods/:name?timeout=1m0s", "connection/EOF", 0.1, 0)
    [stats] = recorder.stats.values()
    assert (stats.succeeded, stats.failed, stats.bytes, stats.raw) == (1, 2, 110, [0.25])
    assert recorder.errors == {"http/429": 1, "connection/EOF": 1}
    assert [(e["method"], e["url"], e["type"], e["code"], e["message"]) for e in
            recorder.raw_errors or ()] == [
        ("GET", "/api/v1/pods/:name?timeout=1m0s", "http", 429, ""),
        ("GET", "/api/v1/pods/:name?timeout=1m0s", "connection", 0, "EOF"),
    ]  # fmt: skip


def test_outside_load_merges_by_purpose_key_and_status() -> None:
    first, second = OutsideLoad(), OutsideLoad()
    first.add("prepare", "LIST /api/v1/namespaces/a/configmaps", 200)
    second.add("prepare", "LIST /api/v1/namespaces/a/configmaps", 200)
    second.add("cleanup", "DELETE /api/v1/namespaces/a/pods/:name", 404)
    first.merge(second)
    assert first.counts == {
        "prepare": {"LIST /api/v1/namespaces/a/configmaps": {200: 2}},
        "cleanup": {"DELETE /api/v1/namespaces/a/pods/:name": {404: 1}},
    }
    assert first.total == 3


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", "/api/v1/namespaces/a/configmaps", "LIST /api/v1/namespaces/a/configmaps"),
        ("GET", "/api/v1/namespaces/a/configmaps/x-1", "GET /api/v1/namespaces/a/configmaps/:name"),
        ("DELETE", "/api/v1/namespaces/a/pods/p", "DELETE /api/v1/namespaces/a/pods/:name"),
        ("GET", "/api/v1/namespaces", "LIST /api/v1/namespaces"),
        ("GET", "/api/v1/namespaces/a", "GET /api/v1/namespaces/:name"),
        ("GET", "/apis/apps/v1/deployments?limit=5", "LIST /apis/apps/v1/deployments"),
        ("GET", "/api/v1/pods?watch=true", "WATCH /api/v1/pods"),
        ("GET", "/api/v1/namespaces/a/pods/p/log", "GET /api/v1/namespaces/a/pods/:name/log"),
        ("GET", "/version", "GET /version"),
    ],
)
def test_outside_keys_use_the_servers_verb_and_mask_names(method, path, key) -> None:
    assert outside_key(method, path) == key


def test_wire_request_derives_query_and_key_in_one_place() -> None:
    listing = wire_request("LIST", "/api/v1/pods", {"resourceVersion": "0", "limit": None})
    assert (listing.method, listing.query) == ("GET", f"resourceVersion=0&timeout={SERVER_TIMEOUT}")
    assert listing.metrics_key == f"LIST /api/v1/pods?resourceVersion=0&timeout={SERVER_TIMEOUT}"
    # random objects: the key masks the name; each request names its object
    put = wire_request("PUT", "/api/v1/namespaces/a/configmaps", random_name=True, body=b"{}")
    one = put.with_object("/api/v1/namespaces/a/configmaps/cm-3", b"{}")
    assert one.path.endswith("/cm-3") and one.metrics_key == put.metrics_key
    assert put.metrics_key == f"PUT /api/v1/namespaces/a/configmaps/:name?timeout={SERVER_TIMEOUT}"
    # a watch: no timeout hint, and a resourceVersion that is sent but is not part of the key
    watch = wire_request(
        "WATCH",
        "/api/v1/pods",
        {"watch": "true"},
        unkeyed={"resourceVersion": "42"},
        server_timeout=False,
    )
    assert watch.query == "resourceVersion=42&watch=true"
    assert watch.metrics_key == "WATCH /api/v1/pods?watch=true"
