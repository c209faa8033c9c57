"""``staleList`` and ``quorumList``: the LISTs informers and controllers send.

A stale list (``resourceVersion=0``) is served from the apiserver's watch cache; a quorum list (no
resourceVersion) reads from etcd. Upstream reads only a quorum list's first page; ``paginate: true``
follows ``continue`` tokens through every page and counts the whole walk as one LIST.
"""

from __future__ import annotations

import json
from typing import ClassVar

import attrs

from kperf_core import hookimpl
from kperf_core.request_types import (
    BuildContext,
    RequestType,
    ResponseHandling,
    SelectedResources,
    WireRequest,
    wire_request,
)
from kperf_core.validators import InvalidField, non_negative


def _stale_limit(_instance: object, _attribute: object, value: int) -> None:
    if value != 0:
        # The watch cache ignores limit with resourceVersion=0 (kubernetes#108003); upstream
        # refuses it too.
        raise InvalidField("limit", f"must be 0 for a stale list (got {value})")


@attrs.frozen(kw_only=True)
class StaleListConfig(SelectedResources):
    limit: int = attrs.field(default=0, validator=_stale_limit)


@attrs.frozen(kw_only=True)
class QuorumListConfig(SelectedResources):
    limit: int = attrs.field(default=0, validator=non_negative())
    #: kperf: follow ``continue`` tokens through all pages (upstream reads the first page only).
    paginate: bool = False


class _List(RequestType):
    resource_version: ClassVar[str | None]

    def __init__(self, config: StaleListConfig | QuorumListConfig, context: BuildContext) -> None:
        super().__init__(config, context)
        self._params: dict[str, str | int | None] = {
            "resourceVersion": self.resource_version,
            "limit": config.limit or None,
            **config.selector_params,
        }
        self._request = self._page()

    def _page(self, token: str | None = None, number: int = 1) -> WireRequest:
        """The first page, or the page at ``token`` (sent, but not part of the key: every page
        is measured with its walk, under the first page's key)."""
        return wire_request(
            "LIST",
            self.config.path(),
            self._params,
            unkeyed={"continue": token} if token else None,
            headers=(self.context.accept_header,),
            response=self._handling(),
            context=number,
        )

    def _handling(self) -> ResponseHandling:
        return ResponseHandling.DRAIN

    def build(self) -> WireRequest:
        return self._request

    def fixed_request(self) -> WireRequest | None:
        return self._request

    def plain_exchanges(self) -> bool:
        return True


class StaleList(_List):
    name = "staleList"
    config_type = StaleListConfig
    resource_version = "0"


class QuorumList(_List):
    name = "quorumList"
    config_type = QuorumListConfig
    resource_version = None

    def __init__(self, config: QuorumListConfig, context: BuildContext) -> None:
        if config.paginate and context.content_type != "json":
            raise InvalidField(
                "paginate",
                f"reads continue tokens: needs contentType json (got {context.content_type})",
            )
        super().__init__(config, context)

    def _handling(self) -> ResponseHandling:
        return ResponseHandling.BUFFER if self.config.paginate else ResponseHandling.DRAIN

    def on_response(self, request: WireRequest, status: int, body: bytes) -> WireRequest | None:
        token = json.loads(body).get("metadata", {}).get("continue")
        if not token:
            return None
        return self._page(token, request.context + 1)


@hookimpl
def kperf_register_request_types(registry):  # type: ignore[no-untyped-def]
    registry.add(StaleList)
    registry.add(QuorumList)
