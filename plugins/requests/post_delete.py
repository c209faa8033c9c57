"""``postDel``: create objects from a template (POST) and delete earlier ones (DELETE).

Each request deletes with probability ``deleteRatio`` when something created earlier exists, and
creates otherwise. Unlike upstream, everything created is deleted when the spec ends (also after a
failure or Ctrl-C), resources other than pods work (give a ``template``), and names are drawn from
the run's seeded random source.

Default templates: pods as upstream (``app=fake-pod``, container ``fake-container``, image
``registry.k8s.io/pause:3.10``, env ``PAYLOAD`` of ``payloadSize`` characters); configmaps with
the payload under ``data.payload``. Every object gets the label ``kperf.io/created-by=postDel`` and
the annotation ``kperf.io/written-at`` (send time, for watches' event lag).
"""

from __future__ import annotations

import collections
import copy
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
    ResponseHandling,
    WireRequest,
    wire_request,
)
from kperf_core.validators import InvalidField, in_range, non_negative, required

from .random_payload import alphanumeric

CREATED_BY_LABEL = "kperf.io/created-by"

DEFAULT_TEMPLATES: dict[str, dict[str, Any]] = {
    "pods": {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"app": "fake-pod"}},
        "spec": {
            "containers": [
                {
                    "name": "fake-container",
                    "image": "registry.k8s.io/pause:3.10",
                    "env": [{"name": "PAYLOAD", "value": "{{payload}}"}],
                }
            ]
        },
    },
    "configmaps": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {},
        "data": {"payload": "{{payload}}"},
    },
}


@attrs.frozen(kw_only=True)
class PostDelConfig(ResourceRef):
    namespace: str = attrs.field(default="", validator=required())
    delete_ratio: float = attrs.field(default=0.0, validator=in_range(0, 0.5))
    payload_size: int = attrs.field(default=0, validator=non_negative())
    #: kperf: the object to create (any resource); ``{{payload}}`` in a string is replaced.
    template: dict[str, Any] | None = None


class PostDelete(RequestType):
    name = "postDel"
    config_type = PostDelConfig

    def __init__(self, config: PostDelConfig, context: BuildContext) -> None:
        super().__init__(config, context)
        template = config.template or DEFAULT_TEMPLATES.get(config.resource)
        if template is None:
            raise InvalidField(
                "template",
                f"required for resource {config.resource!r} (built-in templates: "
                f"{', '.join(DEFAULT_TEMPLATES)})",
            )
        self._template = template
        # BUFFER, so that on_response settles the name
        self._post = wire_request(
            "POST",
            config.path(),
            headers=(context.accept_header, "Content-Type: application/json"),
            response=ResponseHandling.BUFFER,
        )
        self._delete = wire_request(
            "DELETE",
            config.path(),
            random_name=True,
            headers=(context.accept_header,),
            response=ResponseHandling.BUFFER,
        )
        self._created: collections.deque[str] = collections.deque()
        #: names whose POST or DELETE is in flight (unanswered at Ctrl-C: they may exist, so
        #: cleanup deletes them all the same)
        self._in_flight: set[str] = set()
        self._counter = 0
        self._name_prefix = f"kperf-{context.rng.getrandbits(32):08x}"

    def _body(self, name: str) -> bytes:
        payload = alphanumeric(self.context.rng, self.config.payload_size)
        obj = _render(copy.deepcopy(self._template), payload)
        metadata = obj.setdefault("metadata", {})
        metadata["name"] = name
        metadata["namespace"] = self.config.namespace
        metadata.setdefault("labels", {})[CREATED_BY_LABEL] = "postDel"
        metadata.setdefault("annotations", {})[WRITTEN_AT] = f"{time.time():.6f}"
        return json.dumps(obj, separators=(",", ":")).encode()

    def build(self) -> WireRequest:
        rng = self.context.rng
        if self._created and rng.random() < self.config.delete_ratio:
            name = self._created.popleft()
            self._in_flight.add(name)
            return self._delete.with_object(self.config.path(name), context=name)
        self._counter += 1
        name = f"{self._name_prefix}-{self._counter}"
        self._in_flight.add(name)
        return self._post.with_object(self._post.path, self._body(name), context=name)

    def on_response(self, request: WireRequest, status: int, body: bytes) -> WireRequest | None:
        self._in_flight.discard(request.context)
        if request.method == "POST":
            self._created.append(request.context)
        return None

    def on_error(self, request: WireRequest, error_key: str) -> None:
        if request.method == "DELETE":
            self._in_flight.discard(request.context)
            if error_key != "http/404":
                self._created.append(request.context)  # try again later, or at cleanup
        elif error_key.startswith("http/"):
            self._in_flight.discard(request.context)  # POST refused: nothing was created

    def cleanup(self, client: CleanupClient) -> None:
        names = list(self._created) + sorted(self._in_flight)
        for name in names:
            status, _ = client.request(
                "DELETE", self.config.path(name), body=b'{"gracePeriodSeconds":0}'
            )
            if status not in (200, 202, 404):
                raise ClusterError(f"postDel cleanup: deleting {name} failed with HTTP {status}")
        self._created.clear()
        self._in_flight.clear()


def _render(node: Any, payload: str) -> Any:
    if isinstance(node, str):
        return node.replace("{{payload}}", payload)
    if isinstance(node, dict):
        return {k: _render(v, payload) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, payload) for v in node]
    return node


@hookimpl
def kperf_register_request_types(registry):  # type: ignore[no-untyped-def]
    registry.add(PostDelete)
