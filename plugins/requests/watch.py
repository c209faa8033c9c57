"""``watch``: informer-style watches — list once, then watch from the list's resourceVersion with
bookmarks, re-establish each session where the last one ended, relist after 410 Gone.

A watch runs *beside* the spec's load, as informers do: ``watchers`` sessions open when the spec
starts and stay open until it ends, outside its ``shares``, ``rate``, ``client`` and ``total`` (a
watch item takes no shares). Each request is one watch session of ``timeoutSeconds`` (client-go's
reflector uses 5-10 minutes); the session's latency is the time until the server answered
(headers), since its end is chosen by the client. The lists are real traffic and are measured as
LISTs under their own keys (the first with ``resourceVersion=0`` from the watch cache, relists
after 410 from etcd, as the reflector).

Facts reported per key: events by type, bookmarks, lists, 410 Gone errors, and **event lag** —
for objects written by kperf's ``put`` and ``postDel`` (annotation ``kperf.io/written-at``), the
time from the write's send to the event's arrival, both on this machine's clock.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs

from kperf_core import hookimpl
from kperf_core.errors import ConfigError
from kperf_core.metrics import LatencyHistogram
from kperf_core.request_types import (
    WRITTEN_AT,
    BuildContext,
    RequestType,
    ResponseHandling,
    SelectedResources,
    WireRequest,
    wire_request,
)
from kperf_core.validators import positive

from .watch_events import event_summary, split_events

_WRITTEN_AT_KEY = WRITTEN_AT.encode()


@attrs.frozen(kw_only=True)
class WatchConfig(SelectedResources):
    #: length of one watch session (server-side ``timeoutSeconds``)
    timeout_seconds: int = attrs.field(default=60, validator=positive())
    #: concurrent watch sessions kept open beside the spec's load (informers, one watch each)
    watchers: int = attrs.field(default=1, validator=positive())


class Watch(RequestType):
    name = "watch"
    config_type = WatchConfig
    background = True

    def __init__(self, config: WatchConfig, context: BuildContext) -> None:
        if context.content_type != "json":
            raise ConfigError("watch reads events as JSON: it needs contentType json")
        super().__init__(config, context)
        selectors = config.selector_params
        # As client-go's reflector: the first list is served from the watch cache
        # (resourceVersion=0); after 410 Gone it relists from etcd (no resourceVersion).
        self._initial_list, self._relist = (
            wire_request(
                "LIST",
                config.path(),
                {**selectors, "resourceVersion": resource_version},
                headers=(context.accept_header,),
                response=ResponseHandling.BUFFER,
            )
            for resource_version in ("0", None)
        )
        self._watch_params: dict[str, str | int | None] = {
            **selectors,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": config.timeout_seconds,
            "watch": "true",
        }
        self._resource_version: str | None = None
        self._events = {"ADDED": 0, "MODIFIED": 0, "DELETED": 0}
        self._bookmarks = 0
        self._lists = 0
        self._gone = 0
        self._lag = LatencyHistogram()

    def background_sessions(self) -> int:
        return int(self.config.watchers)

    def build_first(self) -> WireRequest:
        # Every informer lists when it starts, even when another session already knows a
        # resourceVersion to watch from (sessions start a few at a time, see the engine).
        self._lists += 1
        return self._initial_list

    def build(self) -> WireRequest:
        if self._resource_version is None:
            self._lists += 1
            return self._relist if self._gone else self._initial_list
        # The key leaves out the resourceVersion, which changes with every session; the
        # session's length is timeoutSeconds, not client-go's timeout hint.
        return wire_request(
            "WATCH",
            self.config.path(),
            self._watch_params,
            unkeyed={"resourceVersion": self._resource_version},
            server_timeout=False,
            headers=(self.context.accept_header,),
            response=ResponseHandling.STREAM,
            timeout=self.config.timeout_seconds + 30,
            latency_to_headers=True,
        )

    def on_response(self, request: WireRequest, status: int, body: bytes) -> WireRequest | None:
        self._resource_version = json.loads(body)["metadata"]["resourceVersion"]
        return None

    def on_chunk(self, request: WireRequest, state: dict[str, Any], chunk: bytes) -> bool:
        now = time.time()
        for line in split_events(state, chunk):
            summary = event_summary(line, _WRITTEN_AT_KEY)
            if summary is None:  # not plain: decode it whole
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    if obj.get("code") == 410:  # resourceVersion too old: relist, as informers
                        self._gone += 1
                        self._resource_version = None
                        return True
                    continue
                metadata = obj.get("metadata", {})
                annotations = metadata.get("annotations") or {}
                summary = (
                    event["type"],
                    metadata.get("resourceVersion"),
                    annotations.get(WRITTEN_AT),
                )
            kind, resource_version, written_at = summary
            if resource_version is not None:
                self._resource_version = resource_version
            if kind == "BOOKMARK":
                self._bookmarks += 1
                continue
            self._events[kind] = self._events.get(kind, 0) + 1
            if written_at and kind != "DELETED":
                self._lag.record(max(0.0, now - float(written_at)))
        return False

    def on_run_end(self, request: WireRequest, state: dict[str, Any]) -> bool:
        return True  # the run ended the session, as an informer's stop would

    def facts(self) -> dict[str, Any]:
        return {
            "events": dict(self._events),
            "bookmarks": self._bookmarks,
            "lists": self._lists,
            "goneErrors": self._gone,
            "eventLag": self._lag,
        }


@hookimpl
def kperf_register_request_types(registry):  # type: ignore[no-untyped-def]
    registry.add(Watch)
