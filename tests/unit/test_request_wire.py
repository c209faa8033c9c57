"""Every built-in request type on the wire: method, path, query, headers, body and metrics key
(INVENTORY §3), plus the bookkeeping of the stateful types (put labels, postDel, pagination)."""

from __future__ import annotations

import json
import random
import re
import string
import time
from typing import Any
from urllib.parse import parse_qsl

import pytest

from kperf_core.errors import ClusterError, ConfigError
from kperf_core.profile import make_converter
from kperf_core.request_types import BuildContext, ResponseHandling, WireRequest
from kperf_core.validators import InvalidField

WRITTEN_AT = "kperf.io/written-at"

JSON_ACCEPT = "Accept: application/json, */*"
PROTOBUF_ACCEPT = "Accept: application/vnd.kubernetes.protobuf, */*"
ALPHANUMERIC = re.compile(r"^[A-Za-z0-9]*$")


@pytest.fixture
def make(kperf_plugin_manager):
    """``make(kind, config_dict, content_type="json", seed=1)`` → a request-type instance."""
    registry = kperf_plugin_manager.request_types
    converter = make_converter(registry)

    def build(kind: str, config: dict[str, Any], content_type: str = "json", seed: int = 1):
        cls = registry[kind]
        structured = converter.structure(config, cls.config_type)
        return cls(structured, BuildContext(content_type=content_type, rng=random.Random(seed)))

    return build


class FakeClient:
    """Stands in for the blocking client given to prepare()/cleanup(): records every call."""

    def __init__(self, responses: dict[tuple[str, str], tuple[int, bytes]] | None = None) -> None:
        self.responses = responses or {}
        self.calls: list[tuple[str, str, bytes | None, tuple[str, ...]]] = []

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: tuple[str, ...] = ()
    ) -> tuple[int, bytes]:
        self.calls.append((method, path, body, headers))
        return self.responses.get((method, path), (200, b"{}"))


def header(request: WireRequest, name: str) -> str | None:
    values = [
        h.split(":", 1)[1].strip()
        for h in request.headers
        if h.lower().startswith(f"{name.lower()}:")
    ]
    assert len(values) <= 1, request.headers
    return values[0] if values else None


# -------------------------------------------------------------------------------------------------
# Lists
# -------------------------------------------------------------------------------------------------


def test_stale_list_cluster_scope(make) -> None:
    request = make("staleList", {"version": "v1", "resource": "pods"}).build()
    assert request.method == "GET"
    assert request.path == "/api/v1/pods"
    assert request.query == "resourceVersion=0&timeout=1m0s"
    assert request.metrics_key == "LIST /api/v1/pods?resourceVersion=0&timeout=1m0s"
    assert request.headers == (JSON_ACCEPT,)
    assert request.body is None
    assert request.response is ResponseHandling.DRAIN


def test_stale_list_selectors_sorted_like_go(make) -> None:
    request = make(
        "staleList",
        {
            "version": "v1",
            "resource": "pods",
            "namespace": "job10pod10k",
            "selector": "app=benchmark,tier in (a,b)",
            "fieldSelector": "spec.nodeName=node100pod10k-49",
        },
    ).build()
    assert request.path == "/api/v1/namespaces/job10pod10k/pods"
    assert request.query == (
        "fieldSelector=spec.nodeName%3Dnode100pod10k-49"
        "&labelSelector=app%3Dbenchmark%2Ctier+in+%28a%2Cb%29"
        "&resourceVersion=0&timeout=1m0s"
    )
    assert dict(parse_qsl(request.query)) == {
        "fieldSelector": "spec.nodeName=node100pod10k-49",
        "labelSelector": "app=benchmark,tier in (a,b)",
        "resourceVersion": "0",
        "timeout": "1m0s",
    }


def test_quorum_list_has_no_resource_version(make) -> None:
    request = make(
        "quorumList",
        {
            "version": "v1",
            "resource": "pods",
            "namespace": "benchmark-0",
            "limit": 100,
            "selector": "app=benchmark",
        },
    ).build()
    assert request.path == "/api/v1/namespaces/benchmark-0/pods"
    assert request.query == "labelSelector=app%3Dbenchmark&limit=100&timeout=1m0s"
    assert request.metrics_key == (
        "LIST /api/v1/namespaces/benchmark-0/pods?labelSelector=app%3Dbenchmark&limit=100"
        "&timeout=1m0s"
    )
    assert request.response is ResponseHandling.DRAIN  # upstream reads the first page only


def test_quorum_list_without_limit_leaves_it_out(make) -> None:
    request = make("quorumList", {"version": "v1", "resource": "events"}).build()
    assert request.query == "timeout=1m0s"
    assert request.metrics_key == "LIST /api/v1/events?timeout=1m0s"


@pytest.mark.parametrize(
    ("group", "prefix"),
    [
        ("", "/api/v1"),
        ("core", "/api/v1"),  # upstream builds /apis/core/v1 here: a bug not copied
        ("batch", "/apis/batch/v1"),
    ],
)
def test_group_prefix(make, group: str, prefix: str) -> None:
    request = make(
        "staleList", {"group": group, "version": "v1", "resource": "jobs", "namespace": "ns"}
    ).build()
    assert request.path == f"{prefix}/namespaces/ns/jobs"


def test_custom_resource_cluster_and_namespace_scope(make) -> None:
    identities = make(
        "staleList", {"group": "cilium.io", "version": "v2", "resource": "ciliumidentities"}
    ).build()
    endpoints = make(
        "staleList",
        {
            "group": "cilium.io",
            "version": "v2",
            "resource": "ciliumendpoints",
            "namespace": "default",
        },
    ).build()
    assert identities.path == "/apis/cilium.io/v2/ciliumidentities"
    assert endpoints.path == "/apis/cilium.io/v2/namespaces/default/ciliumendpoints"
    assert identities.metrics_key == (
        "LIST /apis/cilium.io/v2/ciliumidentities?resourceVersion=0&timeout=1m0s"
    )


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("staleList", {"version": "v1", "resource": "pods"}),
        ("quorumList", {"version": "v1", "resource": "pods"}),
        ("staleGet", {"version": "v1", "resource": "nodes", "name": "n"}),
        ("quorumGet", {"version": "v1", "resource": "nodes", "name": "n"}),
        ("patch", {"version": "v1", "resource": "configmaps", "namespace": "d", "name": "cm",
                   "keySpaceSize": 1, "patchType": "merge", "body": "{}"}),
        ("put", {"version": "v1", "resource": "configmaps", "namespace": "d", "name": "cm",
                 "keySpaceSize": 1, "payloadSize": 1}),
        ("postDel", {"version": "v1", "resource": "pods", "namespace": "d"}),
        ("getPodLog", {"namespace": "d", "name": "p"}),
        ("watchList", {"version": "v1", "resource": "pods"}),
        ("watch", {"version": "v1", "resource": "pods"}),
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    ("content_type", "accept"),
    [("json", "application/json, */*"), ("protobuf", "application/vnd.kubernetes.protobuf, */*")],
)
def test_accept_header_follows_content_type(
    make, kind: str, config: dict[str, Any], content_type: str, accept: str
) -> None:
    if kind in ("watch", "watchList") and content_type == "protobuf":
        with pytest.raises(ConfigError, match="needs contentType json"):
            make(kind, config, content_type)
        return
    assert header(make(kind, config, content_type).build(), "Accept") == accept


# -------------------------------------------------------------------------------------------------
# Pagination (kperf addition)
# -------------------------------------------------------------------------------------------------


def test_paginated_quorum_list_follows_continue(make) -> None:
    lister = make(
        "quorumList", {"version": "v1", "resource": "pods", "limit": 100, "paginate": True}
    )
    first = lister.build()
    assert first.response is ResponseHandling.BUFFER
    assert first.query == "limit=100&timeout=1m0s"

    page = {"kind": "PodList", "metadata": {"continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ=="}}
    second = lister.on_response(first, 200, json.dumps(page).encode())
    assert second is not None
    assert second.method == "GET"
    assert second.path == "/api/v1/pods"
    assert second.query == ("continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ%3D%3D&limit=100&timeout=1m0s")
    assert dict(parse_qsl(second.query))["continue"] == "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ=="
    # the whole walk is one LIST under the first page's key
    assert second.metrics_key == first.metrics_key == "LIST /api/v1/pods?limit=100&timeout=1m0s"

    third = lister.on_response(second, 200, json.dumps({"metadata": {"continue": "b"}}).encode())
    assert third is not None
    assert dict(parse_qsl(third.query))["continue"] == "b"
    assert third.query.count("continue=") == 1

    last = {"metadata": {"resourceVersion": "123"}, "items": []}
    assert lister.on_response(third, 200, json.dumps(last).encode()) is None
    assert lister.on_response(third, 200, b'{"metadata": {"continue": ""}}') is None


def test_pagination_needs_json(make) -> None:
    with pytest.raises(InvalidField, match=r"needs contentType json \(got protobuf\)") as caught:
        make(
            "quorumList",
            {"version": "v1", "resource": "pods", "limit": 10, "paginate": True},
            content_type="protobuf",
        )
    assert caught.value.field == "paginate"


# -------------------------------------------------------------------------------------------------
# Gets
# -------------------------------------------------------------------------------------------------


def test_stale_get_namespaced_batch(make) -> None:
    request = make(
        "staleGet",
        {
            "group": "batch",
            "version": "v1",
            "resource": "jobs",
            "namespace": "job10pod10k",
            "name": "benchmark-jobs-5",
        },
    ).build()
    assert request.method == "GET"
    assert request.path == "/apis/batch/v1/namespaces/job10pod10k/jobs/benchmark-jobs-5"
    assert request.query == "resourceVersion=0&timeout=1m0s"
    assert request.metrics_key == (
        "GET /apis/batch/v1/namespaces/job10pod10k/jobs/benchmark-jobs-5"
        "?resourceVersion=0&timeout=1m0s"
    )
    assert request.body is None


def test_quorum_get_cluster_scope(make) -> None:
    request = make(
        "quorumGet", {"version": "v1", "resource": "nodes", "name": "node100job10pod10k-3"}
    ).build()
    assert request.path == "/api/v1/nodes/node100job10pod10k-3"
    assert request.query == "timeout=1m0s"
    assert request.metrics_key == "GET /api/v1/nodes/node100job10pod10k-3?timeout=1m0s"


# -------------------------------------------------------------------------------------------------
# Patch
# -------------------------------------------------------------------------------------------------

PATCH = {
    "version": "v1",
    "resource": "configmaps",
    "namespace": "default",
    "name": "runkperf-cm",
    "keySpaceSize": 5,
    "body": '\n  {"metadata": {"labels": {"test-label": "mutation-test"}}}\n\n',
}


@pytest.mark.parametrize(
    ("patch_type", "content_type"),
    [
        ("json", "application/json-patch+json"),
        ("merge", "application/merge-patch+json"),
        ("strategic-merge", "application/strategic-merge-patch+json"),
    ],
)
def test_patch_content_types(make, patch_type: str, content_type: str) -> None:
    request = make("patch", {**PATCH, "patchType": patch_type}).build()
    assert request.method == "PATCH"
    assert header(request, "Content-Type") == content_type
    assert header(request, "Accept") == "application/json, */*"


def test_patch_names_masked_key_and_trimmed_body(make) -> None:
    patcher = make("patch", {**PATCH, "patchType": "merge"}, seed=4)
    requests = [patcher.build() for _ in range(300)]
    paths = {r.path for r in requests}
    assert paths == {f"/api/v1/namespaces/default/configmaps/runkperf-cm-{i}" for i in range(5)}
    for r in requests:
        assert r.query == "timeout=1m0s"
        assert r.metrics_key == "PATCH /api/v1/namespaces/default/configmaps/:name?timeout=1m0s"
        assert r.body == b'{"metadata": {"labels": {"test-label": "mutation-test"}}}'


def test_patch_key_space_of_one(make) -> None:
    patcher = make("patch", {**PATCH, "keySpaceSize": 1, "patchType": "json", "body": "[]"})
    assert {patcher.build().path for _ in range(20)} == {
        "/api/v1/namespaces/default/configmaps/runkperf-cm-0"
    }


# -------------------------------------------------------------------------------------------------
# Put
# -------------------------------------------------------------------------------------------------

PUT = {
    "version": "v1",
    "resource": "configmaps",
    "namespace": "default",
    "name": "runkperf-cm",
    "keySpaceSize": 4,
    "payloadSize": 100,
}


def test_put_request(make) -> None:
    putter = make("put", PUT, seed=2)
    before = time.time() - 1e-3
    requests = [putter.build() for _ in range(200)]
    names = set()
    for r in requests:
        assert r.method == "PUT"
        assert r.query == "timeout=1m0s"
        assert r.metrics_key == "PUT /api/v1/namespaces/default/configmaps/:name?timeout=1m0s"
        assert header(r, "Content-Type") == "application/json"
        body = json.loads(r.body)
        assert list(body) == ["apiVersion", "kind", "metadata", "data"]
        assert (body["apiVersion"], body["kind"]) == ("v1", "ConfigMap")
        name = body["metadata"]["name"]
        written_at = float(body["metadata"]["annotations"].pop(WRITTEN_AT))
        assert before <= written_at <= time.time() + 1e-3
        assert body["metadata"] == {"name": name, "namespace": "default", "annotations": {}}
        assert r.path == f"/api/v1/namespaces/default/configmaps/{name}"
        assert "resourceVersion" not in body["metadata"]  # unconditional update
        assert list(body["data"]) == ["payload"]
        assert len(body["data"]["payload"]) == 100
        assert ALPHANUMERIC.match(body["data"]["payload"])
        names.add(name)
    assert names == {f"runkperf-cm-{i}" for i in range(4)}
    # payloads are random, not one string repeated
    assert len({json.loads(r.body)["data"]["payload"] for r in requests}) == 200


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000, 4097])
def test_put_payload_length_and_alphabet(make, size: int) -> None:
    payload = json.loads(make("put", {**PUT, "payloadSize": size}).build().body)["data"]["payload"]
    assert len(payload) == size
    assert ALPHANUMERIC.match(payload)


def test_put_payload_uses_the_whole_alphabet(make) -> None:
    payload = json.loads(make("put", {**PUT, "payloadSize": 20000}).build().body)["data"]["payload"]
    assert set(payload) == set(string.ascii_letters + string.digits)


def test_put_keeps_labels_learned_in_prepare(make) -> None:
    listing = {
        "kind": "ConfigMapList",
        "items": [
            {"metadata": {"name": "runkperf-cm-0",
                          "labels": {"app": "runkperf", "cmName": "runkperf-cm"},
                          "annotations": {"owner": "bench", WRITTEN_AT: "1.0"}}},
            {"metadata": {"name": "runkperf-cm-1"}},
            {"metadata": {"name": "unrelated", "labels": {"x": "y"}}},
        ],
    }  # fmt: skip
    client = FakeClient(
        {("GET", "/api/v1/namespaces/default/configmaps"): (200, json.dumps(listing).encode())}
    )
    putter = make("put", {**PUT, "keySpaceSize": 2}, seed=3)
    putter.prepare(client)
    assert [(m, p) for m, p, _, _ in client.calls] == [
        ("GET", "/api/v1/namespaces/default/configmaps")
    ]
    seen = {}
    for _ in range(50):
        metadata = json.loads(putter.build().body)["metadata"]
        seen[metadata["name"]] = metadata
    assert seen["runkperf-cm-0"]["labels"] == {"app": "runkperf", "cmName": "runkperf-cm"}
    kept = seen["runkperf-cm-0"]["annotations"]
    assert kept["owner"] == "bench"
    assert float(kept[WRITTEN_AT]) > 1.0  # refreshed on every write, not copied
    assert "labels" not in seen["runkperf-cm-1"]
    assert list(seen["runkperf-cm-1"]["annotations"]) == [WRITTEN_AT]


def test_put_prepare_failure_is_a_cluster_error(make) -> None:
    client = FakeClient({("GET", "/api/v1/namespaces/default/configmaps"): (403, b"{}")})
    with pytest.raises(ClusterError, match="HTTP 403"):
        make("put", PUT).prepare(client)


def test_put_names_missing_objects_before_the_run(make) -> None:
    listing = {"items": [{"metadata": {"name": f"runkperf-cm-{i}"}} for i in (0, 2, 5)]}
    client = FakeClient(
        {("GET", "/api/v1/namespaces/default/configmaps"): (200, json.dumps(listing).encode())}
    )
    with pytest.raises(ClusterError) as caught:
        make("put", {**PUT, "keySpaceSize": 12}).prepare(client)
    message = str(caught.value)
    assert "\n" not in message
    assert "9 of the 12 ConfigMaps" in message
    # the first five missing, in index order, then how many more
    assert (
        "(runkperf-cm-1, runkperf-cm-3, runkperf-cm-4, runkperf-cm-6, runkperf-cm-7 and 4 more)"
        in message
    )
    assert message.endswith("kubectl -n default create configmap runkperf-cm-$i; done")
    # upstream's data-set names (runkperf-cm-<set>-<i>): the data command that makes them
    data_set = make("put", {**PUT, "name": "runkperf-cm-big", "keySpaceSize": 2})
    with pytest.raises(ClusterError) as caught:
        data_set.prepare(FakeClient())
    assert str(caught.value).endswith(
        "e.g. runkperf data configmap --namespace default add big --total 2"
    )


def test_put_group_core_uses_api_v1(make) -> None:
    request = make("put", {**PUT, "group": "core"}).build()
    assert request.path.startswith("/api/v1/namespaces/default/configmaps/runkperf-cm-")


# -------------------------------------------------------------------------------------------------
# Pod logs
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "query"),
    [
        ({}, "timeout=1m0s"),
        ({"container": "app"}, "container=app&timeout=1m0s"),
        ({"tailLines": 0}, "tailLines=0&timeout=1m0s"),
        ({"tailLines": 50, "limitBytes": 1024, "container": "c"},
         "container=c&limitBytes=1024&tailLines=50&timeout=1m0s"),
        ({"limitBytes": 0}, "limitBytes=0&timeout=1m0s"),
    ],
)  # fmt: skip
def test_pod_log(make, extra: dict[str, Any], query: str) -> None:
    request = make("getPodLog", {"namespace": "kube-system", "name": "etcd-0", **extra}).build()
    assert request.method == "GET"
    assert request.path == "/api/v1/namespaces/kube-system/pods/etcd-0/log"
    assert request.query == query
    assert request.metrics_key == f"POD_LOG /api/v1/namespaces/kube-system/pods/etcd-0/log?{query}"
    assert request.body is None
    assert request.response is ResponseHandling.DRAIN


# -------------------------------------------------------------------------------------------------
# postDel
# -------------------------------------------------------------------------------------------------

POST_DEL = {"version": "v1", "resource": "pods", "namespace": "bench", "payloadSize": 16}


def succeed(post_del, request: WireRequest) -> None:
    """What the engine does after a 2xx: BUFFER requests see their body."""
    if request.response is ResponseHandling.BUFFER:
        assert post_del.on_response(request, 201, b"{}") is None


def test_post_del_create_request(make) -> None:
    request = make("postDel", {**POST_DEL, "deleteRatio": 0.5}).build()
    assert request.method == "POST"
    assert request.path == "/api/v1/namespaces/bench/pods"
    assert request.query == "timeout=1m0s"
    assert request.metrics_key == "POST /api/v1/namespaces/bench/pods?timeout=1m0s"
    assert header(request, "Content-Type") == "application/json"
    assert request.response is ResponseHandling.BUFFER
    pod = json.loads(request.body)
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    assert pod["metadata"]["name"] == request.context
    assert pod["metadata"]["namespace"] == "bench"
    assert pod["metadata"]["labels"] == {"app": "fake-pod", "kperf.io/created-by": "postDel"}
    assert abs(float(pod["metadata"]["annotations"][WRITTEN_AT]) - time.time()) < 5
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "fake-container"
    assert container["image"] == "registry.k8s.io/pause:3.10"
    (env,) = container["env"]
    assert env["name"] == "PAYLOAD"
    assert len(env["value"]) == 16
    assert ALPHANUMERIC.match(env["value"])


def test_post_del_configmap_template(make) -> None:
    request = make(
        "postDel", {"version": "v1", "resource": "configmaps", "namespace": "n", "payloadSize": 9}
    ).build()
    assert request.path == "/api/v1/namespaces/n/configmaps"
    body = json.loads(request.body)
    assert body["kind"] == "ConfigMap"
    assert len(body["data"]["payload"]) == 9
    assert body["metadata"]["labels"] == {"kperf.io/created-by": "postDel"}


def test_post_del_custom_template(make) -> None:
    template = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"labels": {"team": "perf"}, "annotations": {"note": "x-{{payload}}-y"}},
        "spec": {"replicas": 0},
    }
    post_del = make(
        "postDel",
        {"group": "apps", "version": "v1", "resource": "deployments", "namespace": "n",
         "payloadSize": 5, "template": template},
    )  # fmt: skip
    request = post_del.build()
    assert request.path == "/apis/apps/v1/namespaces/n/deployments"
    body = json.loads(request.body)
    assert body["metadata"]["labels"] == {"team": "perf", "kperf.io/created-by": "postDel"}
    assert set(body["metadata"]["annotations"]) == {"note", WRITTEN_AT}
    assert re.fullmatch(r"x-[A-Za-z0-9]{5}-y", body["metadata"]["annotations"]["note"])
    assert body["spec"] == {"replicas": 0}
    # the config's template is not mutated by rendering
    assert template["metadata"] == {
        "labels": {"team": "perf"},
        "annotations": {"note": "x-{{payload}}-y"},
    }


def test_post_del_without_template_is_a_config_error(make) -> None:
    with pytest.raises(InvalidField, match="required for resource 'deployments'") as caught:
        make(
            "postDel",
            {"group": "apps", "version": "v1", "resource": "deployments", "namespace": "n"},
        )
    assert caught.value.field == "template"


def test_post_del_names_are_unique(make) -> None:
    post_del = make("postDel", POST_DEL)
    names = [post_del.build().context for _ in range(500)]
    assert len(set(names)) == 500
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) for n in names)


def test_post_del_delete_ratio_zero_only_creates(make) -> None:
    post_del = make("postDel", POST_DEL)
    for _ in range(200):
        request = post_del.build()
        assert request.method == "POST"
        succeed(post_del, request)


def test_post_del_alternation_follows_delete_ratio(make) -> None:
    post_del = make("postDel", {**POST_DEL, "deleteRatio": 0.5}, seed=11)
    created: list[str] = []  # what exists on the "server", oldest first
    chances = deletes = 0
    for _ in range(4000):
        had_objects = bool(created)
        request = post_del.build()
        if not had_objects:
            assert request.method == "POST"  # nothing to delete yet
        else:
            chances += 1
        if request.method == "DELETE":
            deletes += 1
            assert request.context == created.pop(0)  # FIFO: the oldest object goes first
            assert request.path == f"/api/v1/namespaces/bench/pods/{request.context}"
            assert request.metrics_key == "DELETE /api/v1/namespaces/bench/pods/:name?timeout=1m0s"
            assert request.body is None
        else:
            created.append(request.context)
        succeed(post_del, request)
    assert 0.46 <= deletes / chances <= 0.54


def test_post_del_is_reproducible_with_the_same_seed(make) -> None:
    def run(seed: int) -> list[tuple[str, str, Any]]:
        post_del = make("postDel", {**POST_DEL, "deleteRatio": 0.3}, seed=seed)
        out = []
        for _ in range(100):
            request = post_del.build()
            succeed(post_del, request)
            body = json.loads(request.body) if request.body else None
            if body:
                body["metadata"]["annotations"].pop(WRITTEN_AT)  # wall-clock send time
            out.append((request.method, request.path, body))
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_post_del_deletes_only_after_a_successful_create(make) -> None:
    post_del = make("postDel", {**POST_DEL, "deleteRatio": 0.5}, seed=1)
    unanswered = [post_del.build() for _ in range(100)]
    assert {r.method for r in unanswered} == {"POST"}
    succeed(post_del, unanswered[7])
    deletes = []
    for _ in range(200):
        request = post_del.build()
        if request.method == "DELETE":
            deletes.append(request.context)
    assert deletes == [unanswered[7].context]  # the one that was created, once


def test_post_del_failed_delete_puts_the_name_back(make) -> None:
    post_del = make("postDel", {**POST_DEL, "deleteRatio": 0.5}, seed=2)
    post = post_del.build()
    succeed(post_del, post)
    delete = next(r for r in iter(post_del.build, None) if r.method == "DELETE")
    assert delete.context == post.context
    post_del.on_error(delete, "connection/timeout")
    retried = next(r for r in iter(post_del.build, None) if r.method == "DELETE")
    assert retried.context == post.context


def test_post_del_delete_404_is_not_retried(make) -> None:
    post_del = make("postDel", {**POST_DEL, "deleteRatio": 0.5}, seed=2)
    post = post_del.build()
    succeed(post_del, post)
    delete = next(r for r in iter(post_del.build, None) if r.method == "DELETE")
    post_del.on_error(delete, "http/404")
    client = FakeClient()
    post_del.cleanup(client)
    assert post.context not in {path.rsplit("/", 1)[1] for _, path, _, _ in client.calls}


def test_post_del_cleanup_deletes_created_and_maybe_created(make) -> None:
    post_del = make("postDel", {**POST_DEL, "deleteRatio": 0.0}, seed=3)
    created = [post_del.build() for _ in range(3)]
    for request in created:
        succeed(post_del, request)
    unanswered = post_del.build()  # sent, no answer yet: may exist
    timed_out = post_del.build()
    post_del.on_error(timed_out, "connection/timeout")  # may have been created
    refused = post_del.build()
    post_del.on_error(refused, "http/409")  # the server said no: nothing to delete

    client = FakeClient()
    post_del.cleanup(client)
    deleted = [(method, path) for method, path, _, _ in client.calls]
    expected = {r.context for r in [*created, unanswered, timed_out]}
    assert sorted(deleted) == sorted(
        ("DELETE", f"/api/v1/namespaces/bench/pods/{name}") for name in expected
    )
    assert all(json.loads(body) == {"gracePeriodSeconds": 0} for _, _, body, _ in client.calls)

    again = FakeClient()
    post_del.cleanup(again)
    assert again.calls == []


def test_post_del_cleanup_tolerates_404_and_reports_other_failures(make) -> None:
    post_del = make("postDel", POST_DEL, seed=4)
    first, second = post_del.build(), post_del.build()
    succeed(post_del, first)
    succeed(post_del, second)
    gone = FakeClient(
        {
            ("DELETE", f"/api/v1/namespaces/bench/pods/{n}"): (404, b"")
            for n in (first.context, second.context)
        }
    )
    post_del.cleanup(gone)
    assert len(gone.calls) == 2

    third = post_del.build()
    succeed(post_del, third)
    broken = FakeClient({("DELETE", f"/api/v1/namespaces/bench/pods/{third.context}"): (500, b"")})
    with pytest.raises(ClusterError, match=f"deleting {third.context} failed with HTTP 500"):
        post_del.cleanup(broken)


def test_post_del_cleanup_covers_a_delete_in_flight(make) -> None:
    post_del = make("postDel", {**POST_DEL, "deleteRatio": 0.5}, seed=2)
    post = post_del.build()
    succeed(post_del, post)
    delete = next(r for r in iter(post_del.build, None) if r.method == "DELETE")
    assert delete.context == post.context
    # Ctrl-C now: the DELETE is abandoned without an answer
    client = FakeClient()
    post_del.cleanup(client)
    assert ("DELETE", f"/api/v1/namespaces/bench/pods/{post.context}") in [
        (m, p) for m, p, _, _ in client.calls
    ]


# -------------------------------------------------------------------------------------------------
# watchList (upstream) and watch (kperf)
# -------------------------------------------------------------------------------------------------


def event(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def pod(name: str, rv: str, **annotations: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if annotations:
        metadata["annotations"] = annotations
    return {"kind": "Pod", "metadata": metadata}


INITIAL_END = {"kind": "Pod", "metadata": {"resourceVersion": "9",
               "annotations": {"k8s.io/initial-events-end": "true"}}}  # fmt: skip


def test_watch_list_request(make) -> None:
    request = make(
        "watchList",
        {"version": "v1", "resource": "pods", "namespace": "ns", "selector": "app=a"},
    ).build()
    assert request.method == "GET"
    assert request.path == "/api/v1/namespaces/ns/pods"
    assert request.query == (
        "allowWatchBookmarks=true&labelSelector=app%3Da&resourceVersionMatch=NotOlderThan"
        "&sendInitialEvents=true&timeout=1m0s&watch=true"
    )
    assert "resourceVersion=" not in request.query
    assert request.metrics_key == f"WATCHLIST /api/v1/namespaces/ns/pods?{request.query}"
    assert request.response is ResponseHandling.STREAM


def test_watch_list_completes_at_the_initial_events_bookmark(make) -> None:
    lister = make("watchList", {"version": "v1", "resource": "pods"})
    request = lister.build()
    state: dict[str, Any] = {}
    stream = (
        event("ADDED", pod("a", "5"))
        + event("ADDED", pod("b", "6"))
        + event("BOOKMARK", {"kind": "Pod", "metadata": {"resourceVersion": "7"}})
        + event("ADDED", pod("c", "8"))
        + event("BOOKMARK", INITIAL_END)
    )
    # split mid-event: the partial line must wait for the next chunk
    cut = stream.index(b'"b"') + 1
    assert lister.on_chunk(request, state, stream[:cut]) is False
    tail = stream[cut:]
    end_of_plain_bookmark = tail.index(b"\n", tail.index(b"BOOKMARK")) + 1
    assert lister.on_chunk(request, state, tail[:end_of_plain_bookmark]) is False
    assert lister.on_chunk(request, state, tail[end_of_plain_bookmark:]) is True
    assert lister.facts() == {"objects": 3}


def test_watch_list_ending_early_is_an_error(make) -> None:
    lister = make("watchList", {"version": "v1", "resource": "pods"})
    request = lister.build()
    state: dict[str, Any] = {}
    assert lister.on_chunk(request, state, event("ADDED", pod("a", "5"))) is False
    assert lister.on_stream_end(request, state) == (
        "unknown/watch ended before the initial-events bookmark"
    )


def test_watch_list_counts_objects_that_mention_bookmark(make) -> None:
    lister = make("watchList", {"version": "v1", "resource": "configmaps"})
    request = lister.build()
    # serialised as "phase": "BOOKMARK", which the cheap pre-filter mistakes for a bookmark
    cm = {"kind": "ConfigMap", "metadata": {"name": "x", "resourceVersion": "3"},
          "data": {"phase": "BOOKMARK"}}  # fmt: skip
    state: dict[str, Any] = {}
    lister.on_chunk(request, state, event("ADDED", cm) + event("BOOKMARK", INITIAL_END))
    assert lister.facts() == {"objects": 1}


def test_watch_lists_then_watches_from_the_list_resource_version(make) -> None:
    watcher = make("watch", {"version": "v1", "resource": "pods", "timeoutSeconds": 300})
    listing = watcher.build()
    assert listing.method == "GET"
    assert listing.response is ResponseHandling.BUFFER
    assert listing.metrics_key.startswith("LIST /api/v1/pods?")
    assert watcher.on_response(listing, 200, b'{"metadata": {"resourceVersion": "100"}}') is None

    session = watcher.build()
    assert session.path == "/api/v1/pods"
    assert session.response is ResponseHandling.STREAM
    assert session.query == (
        "allowWatchBookmarks=true&resourceVersion=100&timeoutSeconds=300&watch=true"
    )
    # one key for every session, whatever the resourceVersion
    assert session.metrics_key == (
        "WATCH /api/v1/pods?allowWatchBookmarks=true&timeoutSeconds=300&watch=true"
    )
    assert session.latency_to_headers is True
    assert session.timeout is not None and session.timeout > 300

    state: dict[str, Any] = {}
    chunk = (
        event("ADDED", pod("a", "101"))
        + event("MODIFIED", pod("a", "102", **{WRITTEN_AT: f"{time.time() - 0.25:.6f}"}))
        + event("BOOKMARK", {"kind": "Pod", "metadata": {"resourceVersion": "110"}})
    )
    assert watcher.on_chunk(session, state, chunk) is False
    nxt = watcher.build()
    assert dict(parse_qsl(nxt.query))["resourceVersion"] == "110"  # resumes where it ended
    assert nxt.metrics_key == session.metrics_key
    facts = watcher.facts()
    assert facts["events"] == {"ADDED": 1, "MODIFIED": 1, "DELETED": 0}
    assert facts["bookmarks"] == 1
    assert facts["lists"] == 1
    assert facts["eventLag"].count == 1
    assert 0.2 <= facts["eventLag"].max < 5
    assert watcher.on_run_end(nxt, {}) is True


def test_watch_relists_after_410_gone(make) -> None:
    watcher = make("watch", {"version": "v1", "resource": "pods"})
    listing = watcher.build()
    watcher.on_response(listing, 200, b'{"metadata": {"resourceVersion": "5"}}')
    session = watcher.build()
    gone = {"kind": "Status", "code": 410, "reason": "Expired"}
    assert watcher.on_chunk(session, {}, event("ERROR", gone)) is True
    again = watcher.build()
    assert again.response is ResponseHandling.BUFFER
    # the reflector's rule: the first list from the watch cache, the relist from etcd
    assert dict(parse_qsl(listing.query))["resourceVersion"] == "0"
    assert "resourceVersion" not in dict(parse_qsl(again.query))
    assert (watcher.facts()["lists"], watcher.facts()["goneErrors"]) == (2, 1)
