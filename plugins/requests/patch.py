"""``patch``: PATCH ``<name>-<i>`` (i random in [0, keySpaceSize)) with a fixed body, as JSON
patch, merge patch or strategic-merge patch."""

from __future__ import annotations

import json

import attrs

from kperf_core import hookimpl
from kperf_core.request_types import (
    BuildContext,
    RequestType,
    ResourceRef,
    WireRequest,
    wire_request,
)
from kperf_core.validators import InvalidField, one_of, positive, required

PATCH_CONTENT_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic-merge": "application/strategic-merge-patch+json",
}


def _json_text(_instance: object, _attribute: object, value: str) -> None:
    if not value.strip():
        raise InvalidField("body", "required (a JSON document)")
    try:
        json.loads(value)
    except ValueError as exc:
        raise InvalidField("body", f"must be valid JSON: {exc}") from None


@attrs.frozen(kw_only=True)
class PatchConfig(ResourceRef):
    name: str = attrs.field(default="", validator=required())
    key_space_size: int = attrs.field(default=0, validator=positive())
    patch_type: str = attrs.field(default="", validator=one_of(*PATCH_CONTENT_TYPES))
    body: str = attrs.field(default="", validator=_json_text)


class Patch(RequestType):
    name = "patch"
    config_type = PatchConfig

    def __init__(self, config: PatchConfig, context: BuildContext) -> None:
        super().__init__(config, context)
        self._patch = wire_request(
            "PATCH",
            config.path(),
            random_name=True,
            headers=(
                context.accept_header,
                f"Content-Type: {PATCH_CONTENT_TYPES[config.patch_type]}",
            ),
            body=config.body.strip().encode(),
        )
        # Paths are built once: the key space is bounded and PATCH is on the hot path.
        self._paths = [config.path(f"{config.name}-{i}") for i in range(config.key_space_size)]

    def build(self) -> WireRequest:
        path = self._paths[self.context.rng.randrange(len(self._paths))]
        return self._patch.with_object(path, self._patch.body)


@hookimpl
def kperf_register_request_types(registry):  # type: ignore[no-untyped-def]
    registry.add(Patch)
