"""The contract a request type implements: one key users write under ``requests:`` in a profile.

A request type is a class with two class attributes and one required method:

* ``name`` — the profile key (``staleList``, ``quorumList``, ``watch``, ``patch``, …);
* ``config_type`` — a frozen attrs class describing the mapping under that key; the profile loader
  structures the YAML into it (unknown keys refused, every problem reported with its YAML path);
* :meth:`RequestType.build` — the next :class:`WireRequest`: exactly what goes to the API server
  and the metrics key it is counted under.

How the engine consumes the response is part of the :class:`WireRequest` (``response``), and the
optional methods below receive what it read, so pagination, watch streams and create/delete
bookkeeping are properties of the request type, not new hooks.

``api_path`` builds paths and :func:`wire_request` is the one place a request's query (with the
server-side ``timeout``) and its metrics key are derived; use them in plugins too.
"""

from __future__ import annotations

import abc
import enum
import random
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol
from urllib.parse import quote, urlencode

import attrs

from kperf_core.validators import required

#: Upstream sends the server-side timeout hint on every request (client-go's ``timeout=1m0s``).
SERVER_TIMEOUT = "1m0s"

#: Annotation kperf's writes (``put``, ``postDel``) carry: when the write left the client (Unix
#: seconds). Watches read it to measure event lag.
WRITTEN_AT = "kperf.io/written-at"

#: Metrics-key verbs (upstream's) that are not the HTTP method they are sent with.
HTTP_METHOD_OF = {"LIST": "GET", "WATCH": "GET", "WATCHLIST": "GET", "POD_LOG": "GET"}

CONTENT_TYPES = {"json": "application/json", "protobuf": "application/vnd.kubernetes.protobuf"}


class ResponseHandling(enum.Enum):
    """What the engine does with a response body."""

    #: Read the whole body and count its bytes (GET, LIST, PUT, PATCH, DELETE, pod logs).
    DRAIN = "drain"
    #: Keep the body and pass it to :meth:`RequestType.on_response` (continue tokens, names).
    BUFFER = "buffer"
    #: Hand each chunk to :meth:`RequestType.on_chunk` until it says the request is complete
    #: (watches, streaming lists).
    STREAM = "stream"


@attrs.frozen
class WireRequest:
    """One HTTP request as it reaches the API server, plus how it is measured.

    ``metrics_key`` is upstream's key without the server address — ``"LIST /api/v1/pods?
    resourceVersion=0&timeout=1m0s"``; reports prefix the server, giving upstream's
    ``"LIST https://host:port/api/v1/pods?…"``. Random object names are masked (``:name``).
    ``accept`` is the response media type (json or protobuf, from the spec's ``contentType``).
    """

    method: str
    path: str
    metrics_key: str
    query: str = ""
    headers: tuple[str, ...] = ()
    body: bytes | None = None
    response: ResponseHandling = ResponseHandling.DRAIN
    #: Free for the request type: carried back to on_response / on_chunk (a name, a page count).
    context: Any = None
    #: Client-side deadline in seconds for this request (None: the spec's ``timeout``).
    timeout: float | None = None
    #: Record latency to the response headers instead of to the end (long-lived watches, whose
    #: end is chosen by the client; the useful figure is how fast the server answered).
    latency_to_headers: bool = False

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def with_object(self, path: str, body: bytes | None = None, context: Any = None) -> WireRequest:
        """This request on another object of the same collection (same key, query, headers):
        for request types whose objects are random names, built once per request."""
        return WireRequest(
            self.method,
            path,
            self.metrics_key,
            self.query,
            self.headers,
            body,
            self.response,
            context,
            self.timeout,
            self.latency_to_headers,
        )


def wire_request(
    verb: str,
    path: str,
    params: Mapping[str, str | int | None] | None = None,
    *,
    random_name: bool = False,
    unkeyed: Mapping[str, str | int | None] | None = None,
    server_timeout: bool = True,
    headers: tuple[str, ...] = (),
    body: bytes | None = None,
    response: ResponseHandling = ResponseHandling.DRAIN,
    context: Any = None,
    timeout: float | None = None,
    latency_to_headers: bool = False,
) -> WireRequest:
    """The one place a request's query and metrics key are derived (upstream's compatibility
    contract: ``"<VERB> <path>?<query>"``, query keys sorted).

    :param verb: the metrics verb (``LIST``, ``GET``, ``WATCH``, ``POD_LOG``, ``PUT``, …); the
        HTTP method follows from it.
    :param random_name: ``path`` is the collection and the requests go to random objects in it
        (:meth:`WireRequest.with_object`): the key names the object ``:name``, as upstream masks it.
    :param unkeyed: parameters sent but left out of the key (a watch's resourceVersion, which
        changes with every session).
    :param server_timeout: add client-go's server-side hint ``timeout=1m0s`` (every request but a
        watch, which has ``timeoutSeconds``).
    """
    keyed = dict(params or {})
    if server_timeout:
        keyed["timeout"] = SERVER_TIMEOUT
    key_query = encode_query(keyed)
    query = encode_query({**keyed, **unkeyed}) if unkeyed else key_query
    key_path = f"{path}/:name" if random_name else path
    return WireRequest(
        HTTP_METHOD_OF.get(verb, verb),
        path,
        f"{verb} {key_path}?{key_query}" if key_query else f"{verb} {key_path}",
        query=query,
        headers=headers,
        body=body,
        response=response,
        context=context,
        timeout=timeout,
        latency_to_headers=latency_to_headers,
    )


class CleanupClient(Protocol):
    """What :meth:`RequestType.cleanup` gets: blocking requests on the run's endpoint."""

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: tuple[str, ...] = ()
    ) -> tuple[int, bytes]: ...


@attrs.frozen
class BuildContext:
    """Per-spec facts a request type needs to build requests."""

    #: ``json`` or ``protobuf``.
    content_type: str = "json"
    #: Seeded random source of the run (reproducible choices and names).
    rng: random.Random = attrs.field(factory=random.Random)

    @property
    def accept_header(self) -> str:
        # client-go sends "Accept: <type>, */*".
        return f"Accept: {CONTENT_TYPES[self.content_type]}, */*"


class RequestType(abc.ABC):
    """Base class of every request type, built-in or third-party.

    One instance is made per profile item per spec, holding that item's validated config; it may
    keep state across requests (created names, a watch's resourceVersion). The engine is single-
    threaded, so no locking is needed.
    """

    #: The key users write in a profile's ``requests:`` item, e.g. ``staleList``.
    name: ClassVar[str]
    #: Frozen attrs class the YAML mapping under :attr:`name` is structured into.
    config_type: ClassVar[type[Any]]
    #: True for long-lived sessions that run *beside* the spec's load, as informers' watches do:
    #: :meth:`background_sessions` of them open when the spec starts, each re-established when it
    #: ends, until the spec ends. They take no ``shares`` and are not limited by ``rate``,
    #: ``client`` or ``total``, so a few watches do not starve the requests they share a spec with.
    background: ClassVar[bool] = False

    def __init__(self, config: Any, context: BuildContext) -> None:
        self.config = config
        self.context = context

    @abc.abstractmethod
    def build(self) -> WireRequest:
        """Return the next request to send."""

    def background_sessions(self) -> int:
        """:attr:`background` types: how many sessions to keep open."""
        return 1

    def build_first(self) -> WireRequest:
        """:attr:`background` types: the first request of a new session (an informer's initial
        list); the session's later requests come from :meth:`build`. Default: :meth:`build`."""
        return self.build()

    def plain_exchanges(self) -> bool:
        """True when every request this instance builds is a plain exchange: its answer is
        ``DRAIN``-ed or ``BUFFER``-ed (never ``STREAM``), its body fixed when it is built. Specs
        whose request types all say so may run on the native transport
        (:mod:`kperf_core.engine.native_transport`); the default keeps a type on libcurl."""
        return False

    def fixed_request(self) -> WireRequest | None:
        """The one request :meth:`build` returns every time, when it always returns the same one
        (a get or list of a named object or selection); None (the default) when requests differ.
        Specs whose request types all have one may run their closed loop inside the native
        transport (:func:`kperf_core.engine.native_transport.choose_loop`)."""
        return None

    def on_response(self, request: WireRequest, status: int, body: bytes) -> WireRequest | None:
        """``BUFFER`` requests: see the body; return a follow-up (next page) or None when done.

        A follow-up is sent at once on the same slot and the whole chain is measured as one
        request under the first request's metrics key.
        """
        return None

    def on_error(self, request: WireRequest, error_key: str) -> None:
        """Any request of this type failed (after retries) with ``error_key``."""

    def on_chunk(self, request: WireRequest, state: dict[str, Any], chunk: bytes) -> bool:
        """``STREAM`` requests: consume one chunk; return True when the request is complete.

        ``state`` is a fresh dict per request for the type's bookkeeping. Raise
        :class:`StreamError` to fail the request with an error class of its own.
        """
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def on_stream_end(self, request: WireRequest, state: dict[str, Any]) -> str | None:
        """``STREAM`` request the server closed normally before ``on_chunk`` said it was complete:
        None if that is a success, else the error key (``unknown/...``)."""
        return None

    def on_run_end(self, request: WireRequest, state: dict[str, Any]) -> bool:
        """``STREAM`` requests still open when the run ends: True if that counts as success."""
        return False

    def facts(self) -> dict[str, Any]:
        """Measurements of this request type beyond latency and bytes (watch events, relists),
        reported under the spec's ``requestTypeFacts``; summed across instances of the type."""
        return {}

    def prepare(self, client: CleanupClient) -> None:
        """Blocking setup before the spec's load starts (not measured)."""

    def cleanup(self, client: CleanupClient) -> None:
        """Remove what this request type created (called once when its spec ends, always)."""


class StreamError(Exception):
    """A streaming request failed in a way the request type detected (e.g. no bookmark)."""

    def __init__(self, error_key: str) -> None:
        super().__init__(error_key)
        #: ``<type>/<message>``, e.g. ``unknown/watch ended before the initial-events bookmark``.
        self.error_key = error_key


@attrs.frozen(kw_only=True)
class ResourceRef:
    """The group/version/resource (+ namespace) fields most request configs share.

    ``group`` empty or ``core`` means the core API group (``/api/v1``).
    """

    version: str = attrs.field(default="", validator=required())
    resource: str = attrs.field(default="", validator=required())
    group: str = ""
    namespace: str = ""

    def path(self, name: str = "", subresource: str = "") -> str:
        return api_path(self.group, self.version, self.resource, self.namespace, name, subresource)


@attrs.frozen(kw_only=True)
class SelectedResources(ResourceRef):
    """A :class:`ResourceRef` narrowed by label and field selectors (lists and watches)."""

    selector: str = ""
    field_selector: str = ""

    @property
    def selector_params(self) -> dict[str, str | int | None]:
        """The selectors as query parameters (empty ones are left out by ``encode_query``)."""
        return {"labelSelector": self.selector, "fieldSelector": self.field_selector}


def api_path(
    group: str,
    version: str,
    resource: str,
    namespace: str = "",
    name: str = "",
    subresource: str = "",
) -> str:
    """``/api/v1/...`` for the core group (``""`` or ``core``), ``/apis/<group>/<version>/...``
    otherwise — upstream builds ``/apis/core/v1`` for ``group: core``, a bug not copied."""
    prefix = f"/api/{version}" if group in ("", "core") else f"/apis/{group}/{version}"
    if namespace:
        prefix += f"/namespaces/{quote(namespace, safe='')}"
    path = f"{prefix}/{resource}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path


def encode_query(params: Mapping[str, str | int | None]) -> str:
    """Query string as Go's ``url.Values.Encode``: keys sorted, empty values left out."""
    return urlencode(sorted((k, str(v)) for k, v in params.items() if v not in (None, "")))
