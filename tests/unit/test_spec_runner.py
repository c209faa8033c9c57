"""The spec runner's accounting against a small HTTP server on loopback (not an apiserver): what
the server answered, what the report counts, and what it counts outside the load — a retried 429,
the earlier pages of a paginated walk — add up to every request the server saw."""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from loopback_http import plain_endpoint, serving

from kperf_core.engine import LoadRun, RunSettings, run_profile
from kperf_core.profile import LoadProfile, LoadProfileSpec, WeightedRequest
from kperf_core.request_types import (
    RequestType,
    ResponseHandling,
    WireRequest,
    wire_request,
)

#: how many times the server refuses each /busy request with 429 + Retry-After before it answers
REFUSALS = 2
#: pages of a /pages walk
PAGES = 3


class _Server(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: collections.Counter[tuple[str, int]] = collections.Counter()
        self.refused = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        status, body, headers = 200, b"{}", {}
        with self.server.lock:
            if path == "/busy":
                self.server.refused += 1
                if self.server.refused % (REFUSALS + 1):
                    status, headers = 429, {"Retry-After": "0"}
            elif path == "/pages":
                page = int(dict(p.split("=") for p in query.split("&") if p).get("continue", 1))
                token = str(page + 1) if page < PAGES else ""
                body = json.dumps({"metadata": {"continue": token}}).encode()
            self.server.seen[(path, status)] += 1
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    with serving(httpd):
        yield httpd


class _Busy(RequestType):
    name = "busy"
    config_type = dict

    def build(self) -> WireRequest:
        return wire_request("GET", "/busy")


class _Pages(RequestType):
    name = "pages"
    config_type = dict

    def build(self) -> WireRequest:
        return self._page(None)

    def _page(self, token: str | None) -> WireRequest:
        unkeyed = {"continue": token} if token else None
        return wire_request("LIST", "/pages", unkeyed=unkeyed, response=ResponseHandling.BUFFER)

    def on_response(self, request: WireRequest, status: int, body: bytes) -> WireRequest | None:
        token = json.loads(body)["metadata"]["continue"]
        return self._page(token) if token else None


def _run(server: _Server, kind: str, total: int, **spec: Any) -> dict[str, Any]:
    from kperf_core.report import runner_report

    endpoint = plain_endpoint(f"http://127.0.0.1:{server.server_address[1]}")
    profile = LoadProfile(
        version=1,
        specs=(
            LoadProfileSpec(
                requests=(WeightedRequest(1, kind, {}),),
                total=total,
                client=1,  # one at a time: the server's refusals follow a fixed pattern
                conns=1,
                disable_http2=True,
                timeout=5,
                **spec,
            ),
        ),
    )
    registry = {"busy": _Busy, "pages": _Pages}
    run = LoadRun(profile, endpoint, registry, RunSettings(seed=1))  # type: ignore[arg-type]
    report = runner_report(run_profile(run), "")
    return report["perSpecResults"][0]


def test_retried_attempts_are_counted_outside_the_load(server: _Server) -> None:
    section = _run(server, "busy", total=10, max_retries=REFUSALS)
    assert section["requestsByURL"]["GET /busy?timeout=1m0s"]["succeeded"] == 10
    assert section["requestsOutsideLoad"] == {
        "retriedAttempts": {"GET /busy?timeout=1m0s": {"429": 10 * REFUSALS}}
    }
    # the load's successes and the retried refusals are every request the server saw
    assert server.seen == {("/busy", 200): 10, ("/busy", 429): 10 * REFUSALS}


def test_a_paginated_walk_counts_once_and_its_earlier_pages_outside(server: _Server) -> None:
    section = _run(server, "pages", total=4)
    assert section["requestsByURL"]["LIST /pages?timeout=1m0s"]["succeeded"] == 4
    assert section["requestsOutsideLoad"] == {
        "earlierPages": {"LIST /pages?timeout=1m0s": {"200": 4 * (PAGES - 1)}}
    }
    assert server.seen == {("/pages", 200): 4 * PAGES}


def test_without_retries_a_refusal_is_an_error_of_its_own(server: _Server) -> None:
    section = _run(server, "busy", total=6)
    assert section["requestsOutsideLoad"] == {}
    assert section["errorStats"] == {"http/429": server.seen[("/busy", 429)]}
    assert sum(server.seen.values()) == 6
