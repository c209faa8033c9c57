"""``staleGet`` and ``quorumGet``: single-object reads, from the watch cache or from etcd."""

from __future__ import annotations

from typing import ClassVar

import attrs

from kperf_core import hookimpl
from kperf_core.request_types import (
    BuildContext,
    RequestType,
    ResourceRef,
    WireRequest,
    wire_request,
)
from kperf_core.validators import required


@attrs.frozen(kw_only=True)
class GetConfig(ResourceRef):
    name: str = attrs.field(default="", validator=required())


class _Get(RequestType):
    config_type = GetConfig
    resource_version: ClassVar[str | None]

    def __init__(self, config: GetConfig, context: BuildContext) -> None:
        super().__init__(config, context)
        self._request = wire_request(
            "GET",
            config.path(config.name),
            {"resourceVersion": self.resource_version},
            headers=(context.accept_header,),
        )

    def build(self) -> WireRequest:
        return self._request

    def fixed_request(self) -> WireRequest | None:
        return self._request

    def plain_exchanges(self) -> bool:
        return True


class StaleGet(_Get):
    name = "staleGet"
    resource_version = "0"


class QuorumGet(_Get):
    name = "quorumGet"
    resource_version = None


@hookimpl
def kperf_register_request_types(registry):  # type: ignore[no-untyped-def]
    registry.add(StaleGet)
    registry.add(QuorumGet)
