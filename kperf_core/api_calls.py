"""What API call a metrics key stands for: verb, resource and scope, derived from its URL.

Metrics keys are ``"<METHOD> <url>"`` (``"LIST https://host:6443/api/v1/namespaces/ns/pods?…"``;
the server part is optional). SLO checks, sinks and comparisons group keys by the API call they
make, the way the API server's own ``RequestInfo`` does, so this is the one place that reads a key.

Scopes are SIG-scalability's, as the API server labels its own metrics: ``resource`` (one object,
or a create), ``namespace`` (objects of one namespace), ``cluster`` (objects across namespaces, or a
cluster-scoped collection).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs

RESOURCE = "resource"
NAMESPACE = "namespace"
CLUSTER = "cluster"

#: Methods that change state (SIG-scalability's "mutating API calls").
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Non-streaming reads; kperf keys say LIST for collection GETs.
READS = frozenset({"GET", "LIST"})
#: Streaming or proxied calls: no latency SLO applies (the response lasts as long as the stream).
_STREAMING_METHODS = frozenset({"WATCH", "WATCHLIST", "POD_LOG"})
_STREAMING_SUBRESOURCES = frozenset({"log", "exec", "attach", "proxy", "portforward"})
# `namespaces/<name>/status` and `/finalize` are the namespace's own subresources (RequestInfo's
# namespaceSubresources), not a namespaced collection called "status".
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@attrs.frozen
class ApiCall:
    """The API call behind one metrics key."""

    #: The key's method: GET, LIST, WATCH, WATCHLIST, POD_LOG, POST, PUT, PATCH, DELETE.
    verb: str
    #: ``pods``, ``apps/deployments``, ``pods/status`` (group/resource[/subresource]).
    resource: str
    scope: str
    #: Watches, pod logs, exec/attach/proxy: excluded from latency SLOs.
    streaming: bool

    @property
    def mutating(self) -> bool:
        return self.verb in MUTATING

    @property
    def key(self) -> tuple[str, str, str]:
        """(verb, resource, scope): the class an SLO judges and the server's view reports."""
        return (self.verb, self.resource, self.scope)


def url_path(key: str) -> str:
    """``"LIST https://h:1/api/v1/pods?x=1"`` → ``"/api/v1/pods?x=1"``: the key without its server,
    so runs against different servers compare key by key."""
    method, _, url = key.partition(" ")
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{method} {target}"


def classify(key: str) -> ApiCall:
    """Read verb, resource and scope from a metrics key; an unrecognised path is ``"(other)"``."""
    method, _, url = key.partition(" ")
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if segments[:1] == ["api"] and len(segments) >= 2:
        group, rest = "", segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 3:
        group, rest = segments[1], segments[3:]
    else:
        return ApiCall(method, "(other)", CLUSTER, method in _STREAMING_METHODS)
    namespaced = False
    if rest[:1] == ["namespaces"] and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespaced, rest = True, rest[2:]
    resource = rest[0] if rest else "(other)"
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    qualified = f"{group}/{resource}" if group else resource
    if subresource:
        qualified += f"/{subresource}"
    if name is not None or method == "POST":
        # a create names no object in its URL, yet the server counts it in the resource scope
        # (apiserver metrics' CleanScope): so must the client, or the two never line up
        scope = RESOURCE
    elif namespaced:
        scope = NAMESPACE
    else:
        scope = CLUSTER
    streaming = method in _STREAMING_METHODS or subresource in _STREAMING_SUBRESOURCES
    return ApiCall(method, qualified, scope, streaming)


#: The API server's metric verbs (``apiserver_request_total{verb=…}``) in kperf's key vocabulary,
#: so that a server class and a client class of the same call share one name.
_SERVER_VERBS = {"CREATE": "POST", "UPDATE": "PUT", "APPLY": "PATCH", "DELETECOLLECTION": "DELETE"}


def server_call(verb: str, group: str, resource: str, subresource: str, scope: str) -> ApiCall:
    """The API call behind one series of the API server's request metrics (its labels).

    Non-resource requests (``/metrics``, ``/healthz``) have no resource: they are ``"(other)"``
    as their client keys are. A pod log read is ``POD_LOG`` as kperf's key says, whichever verb
    the server counts it under (GET up to v1.2x, CONNECT in current releases).
    """
    qualified = "(other)"
    if resource:
        qualified = f"{group}/{resource}" if group else resource
        if subresource:
            qualified += f"/{subresource}"
    name = _SERVER_VERBS.get(verb, verb)
    if subresource == "log" and resource == "pods" and name in ("GET", "CONNECT"):
        name = "POD_LOG"
    streaming = name in _STREAMING_METHODS or subresource in _STREAMING_SUBRESOURCES
    return ApiCall(name, qualified, scope or CLUSTER, streaming)
