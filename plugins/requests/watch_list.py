"""``watchList``: a streaming list (``sendInitialEvents``, Kubernetes ≥ 1.27): the initial state
arrives as watch events and the request is complete at the bookmark annotated
``k8s.io/initial-events-end``. Older servers refuse the parameters at once (v1.20: HTTP 422), which
is reported as ``http/422`` — never a hang: the request has the spec's client timeout too.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from kperf_core import hookimpl
from kperf_core.errors import ConfigError
from kperf_core.request_types import (
    BuildContext,
    RequestType,
    ResponseHandling,
    SelectedResources,
    WireRequest,
    wire_request,
)

from .watch_events import split_events

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@attrs.frozen(kw_only=True)
class WatchListConfig(SelectedResources):
    pass


class WatchList(RequestType):
    name = "watchList"
    config_type = WatchListConfig

    def __init__(self, config: WatchListConfig, context: BuildContext) -> None:
        if context.content_type != "json":
            raise ConfigError("watchList reads events as JSON: it needs contentType json")
        super().__init__(config, context)
        self._request = wire_request(
            "WATCHLIST",
            config.path(),
            {
                "allowWatchBookmarks": "true",
                **config.selector_params,
                "resourceVersionMatch": "NotOlderThan",
                "sendInitialEvents": "true",
                "watch": "true",
            },
            headers=(context.accept_header,),
            response=ResponseHandling.STREAM,
        )
        self._objects = 0

    def build(self) -> WireRequest:
        return self._request

    def on_chunk(self, request: WireRequest, state: dict[str, Any], chunk: bytes) -> bool:
        for line in split_events(state, chunk):
            # Parse only lines that may be bookmarks (the one that ends the list); count the rest.
            event = json.loads(line) if b'"BOOKMARK"' in line else None
            if event is None or event["type"] != "BOOKMARK":
                self._objects += 1
                continue
            annotations = event["object"].get("metadata", {}).get("annotations") or {}
            if annotations.get(INITIAL_EVENTS_END) == "true":
                return True
        return False

    def on_stream_end(self, request: WireRequest, state: dict[str, Any]) -> str | None:
        return "unknown/watch ended before the initial-events bookmark"

    def facts(self) -> dict[str, Any]:
        return {"objects": self._objects}


@hookimpl
def kperf_register_request_types(registry):  # type: ignore[no-untyped-def]
    registry.add(WatchList)
