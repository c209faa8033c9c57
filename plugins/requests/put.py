"""``put``: unconditional updates of ConfigMaps ``<name>-<i>``, i random in [0, keySpaceSize).

Upstream's body has only name, namespace and data, which strips the objects' labels (so
``runkperf data configmap`` can no longer find what it created). kperf reads the labels and
annotations of the key space once before the load starts (one LIST, not measured) and keeps them in
every PUT, plus the annotation ``kperf.io/written-at`` (send time) for watches' event lag.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs

from kperf_core import hookimpl
from kperf_core.errors import ClusterError
from kperf_core.request_types import (
    WRITTEN_AT,
    BuildContext,
    CleanupClient,
    RequestType,
    ResourceRef,
    WireRequest,
    wire_request,
)
from kperf_core.validators import InvalidField, positive, required

from .random_payload import alphanumeric


def _configmaps_only(_instance: object, _attribute: object, value: str) -> None:
    if value != "configmaps":
        raise InvalidField("resource", f"put supports configmaps only (got {value!r})")


@attrs.frozen(kw_only=True)
class PutConfig(ResourceRef):
    resource: str = attrs.field(validator=_configmaps_only)
    name: str = attrs.field(default="", validator=required())
    key_space_size: int = attrs.field(default=0, validator=positive())
    payload_size: int = attrs.field(default=0, validator=positive())

    def __attrs_post_init__(self) -> None:
        if self.group not in ("", "core") or self.version != "v1":
            raise InvalidField("group", "put supports core/v1 configmaps only")
        if not self.namespace:
            raise InvalidField("namespace", "required")


class Put(RequestType):
    name = "put"
    config_type = PutConfig

    def __init__(self, config: PutConfig, context: BuildContext) -> None:
        super().__init__(config, context)
        self._put = wire_request(
            "PUT",
            config.path(),
            random_name=True,
            headers=(context.accept_header, "Content-Type: application/json"),
        )
        self._kept: dict[str, dict[str, Any]] = {}

    def prepare(self, client: CleanupClient) -> None:
        status, body = client.request("GET", self.config.path())
        if status != 200:
            raise ClusterError(f"put: listing {self.config.path()} failed with HTTP {status}")
        wanted = {f"{self.config.name}-{i}" for i in range(self.config.key_space_size)}
        for item in json.loads(body).get("items", []):
            metadata = item.get("metadata", {})
            if metadata.get("name") in wanted:
                self._kept[metadata["name"]] = {
                    k: metadata[k] for k in ("labels", "annotations") if metadata.get(k)
                }
        missing = wanted - self._kept.keys()
        if missing:
            # Every PUT to them would answer 404: say so before the run, not in its errors.
            raise ClusterError(_missing_message(self.config, missing))

    def build(self) -> WireRequest:
        cfg = self.config
        rng = self.context.rng
        name = f"{cfg.name}-{rng.randrange(cfg.key_space_size)}"
        kept = self._kept.get(name, {})
        metadata: dict[str, Any] = {"name": name, "namespace": cfg.namespace, **kept}
        # For the watch request type's event lag: when this write left the client.
        metadata["annotations"] = {**kept.get("annotations", {}), WRITTEN_AT: f"{time.time():.6f}"}
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {"payload": alphanumeric(rng, cfg.payload_size)},
        }
        return self._put.with_object(
            cfg.path(name), json.dumps(body, separators=(",", ":")).encode()
        )


def _missing_message(config: PutConfig, missing: set[str]) -> str:
    prefix, size, namespace = config.name, config.key_space_size, config.namespace
    indexes = sorted(int(name.rsplit("-", 1)[1]) for name in missing)
    shown = ", ".join(f"{prefix}-{i}" for i in indexes[:5])
    more = f" and {len(indexes) - 5} more" if len(indexes) > 5 else ""
    # upstream's read_update names its data set's objects runkperf-cm-<set>-<i>
    data_set = prefix.removeprefix("runkperf-cm-") if prefix.startswith("runkperf-cm-") else None
    create = (
        f"runkperf data configmap --namespace {namespace} add {data_set} --total {size}"
        if data_set
        else f"for i in $(seq 0 {size - 1}); do kubectl -n {namespace} create configmap "
        f"{prefix}-$i; done"
    )
    return (
        f"put: {len(indexes)} of the {size} ConfigMaps it updates do not exist in namespace "
        f"{namespace!r} ({shown}{more}); put only replaces existing objects. Create them first, "
        f"e.g. {create}"
    )


@hookimpl
def kperf_register_request_types(registry):  # type: ignore[no-untyped-def]
    registry.add(Put)
