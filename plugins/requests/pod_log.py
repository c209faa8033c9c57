"""``getPodLog``: read a pod's log through the apiserver (which proxies to the kubelet)."""

from __future__ import annotations

import attrs

from kperf_core import hookimpl
from kperf_core.request_types import (
    BuildContext,
    RequestType,
    WireRequest,
    api_path,
    wire_request,
)
from kperf_core.validators import non_negative, required


@attrs.frozen(kw_only=True)
class PodLogConfig:
    namespace: str = attrs.field(validator=required())
    name: str = attrs.field(validator=required())
    container: str = ""
    tail_lines: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(non_negative())
    )
    limit_bytes: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(non_negative())
    )


class GetPodLog(RequestType):
    name = "getPodLog"
    config_type = PodLogConfig

    def __init__(self, config: PodLogConfig, context: BuildContext) -> None:
        super().__init__(config, context)
        self._request = wire_request(
            "POD_LOG",
            api_path("", "v1", "pods", config.namespace, config.name, "log"),
            {
                "container": config.container,
                "tailLines": config.tail_lines,
                "limitBytes": config.limit_bytes,
            },
            headers=(context.accept_header,),
        )

    def build(self) -> WireRequest:
        return self._request


@hookimpl
def kperf_register_request_types(registry):  # type: ignore[no-untyped-def]
    registry.add(GetPodLog)
