"""Metrics keys → (verb, resource, scope), as the API server's RequestInfo reads a URL."""

from __future__ import annotations

import pytest

from kperf_core.api_calls import ApiCall, classify, url_path

SERVER = "https://10.0.0.1:6443"


@pytest.mark.parametrize(
    ("key", "call"),
    [
        ("LIST /api/v1/pods?resourceVersion=0", ApiCall("LIST", "pods", "cluster", False)),
        ("LIST /api/v1/namespaces", ApiCall("LIST", "namespaces", "cluster", False)),
        ("GET /api/v1/namespaces/default", ApiCall("GET", "namespaces", "resource", False)),
        (
            "PUT /api/v1/namespaces/default/finalize",
            ApiCall("PUT", "namespaces/finalize", "resource", False),
        ),
        (
            "LIST /api/v1/namespaces/ns/configmaps?limit=500",
            ApiCall("LIST", "configmaps", "namespace", False),
        ),
        (
            "PATCH /api/v1/namespaces/ns/configmaps/:name?timeout=1m0s",
            ApiCall("PATCH", "configmaps", "resource", False),
        ),
        (
            "PUT /api/v1/namespaces/ns/pods/p/status",
            ApiCall("PUT", "pods/status", "resource", False),
        ),
        (
            "LIST /apis/apps/v1/namespaces/ns/deployments",
            ApiCall("LIST", "apps/deployments", "namespace", False),
        ),
        ("LIST /apis/apps/v1/deployments", ApiCall("LIST", "apps/deployments", "cluster", False)),
        (
            "GET /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            ApiCall("GET", "coordination.k8s.io/leases", "resource", False),
        ),
        ("WATCH /api/v1/pods?watch=true", ApiCall("WATCH", "pods", "cluster", True)),
        ("WATCHLIST /api/v1/pods", ApiCall("WATCHLIST", "pods", "cluster", True)),
        (
            "POD_LOG /api/v1/namespaces/ns/pods/p/log",
            ApiCall("POD_LOG", "pods/log", "resource", True),
        ),
        (  # a create: the server counts it in the resource scope
            "POST /api/v1/namespaces/ns/configmaps",
            ApiCall("POST", "configmaps", "resource", False),
        ),
        (
            "POST /api/v1/namespaces/ns/pods/p/exec",
            ApiCall("POST", "pods/exec", "resource", True),
        ),
        ("GET /healthz", ApiCall("GET", "(other)", "cluster", False)),
    ],
)
def test_classify(key: str, call: ApiCall) -> None:
    assert classify(key) == call
    method, _, target = key.partition(" ")
    assert classify(f"{method} {SERVER}{target}") == call  # with the server, as reports write it


def test_url_path_drops_the_server_only() -> None:
    assert url_path(f"LIST {SERVER}/api/v1/pods?resourceVersion=0&timeout=1m0s") == (
        "LIST /api/v1/pods?resourceVersion=0&timeout=1m0s"
    )
    assert url_path("GET /api/v1/namespaces/default") == "GET /api/v1/namespaces/default"


def test_mutating() -> None:
    assert classify("DELETE /api/v1/namespaces/ns/configmaps/x").mutating
    assert not classify("LIST /api/v1/namespaces/ns/configmaps").mutating
