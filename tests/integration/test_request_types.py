"""Every built-in request type, run through `kperf runner run` against the real apiserver.

Each test checks what reached the server — the apiserver's own ``apiserver_request_total`` deltas
and the objects themselves — not only what kperf reports.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import POD_LOG_VERBS, by_method, make_configmaps, serves_streaming_lists, spec

from kperf_core.api_calls import classify

# CI runs these against the current release and again against v1.20.2 (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.every_kube_version]


def test_gets_and_lists_reach_the_server_as_reported(
    core_v1, namespace, run_kperf, apiserver_requests
) -> None:
    make_configmaps(core_v1, namespace, "cm", 5)
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    before = apiserver_requests.scrape()
    proc, report = run_kperf(
        spec(
            [
                {"staleGet": {**ref, "name": "cm-0"}, "shares": 40},
                {"quorumGet": {**ref, "name": "cm-1"}, "shares": 30},
                {"staleList": {**ref, "selector": "app=kperf-it"}, "shares": 20},
                {"quorumList": {**ref, "limit": 2}, "shares": 10},
            ],
            total=400,
        ),
        "--seed",
        "7",
    )
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    section = report["perSpecResults"][0]
    assert section["requests"] == {
        "sent": 400,
        "backgroundSent": 0,
        "succeeded": 400,
        "failed": 0,
        "notSent": 0,
    }
    methods = by_method(section)
    assert apiserver_requests.delta(before, after, "GET", "configmaps") == {
        "200": methods["GET"]["succeeded"]
    }
    assert apiserver_requests.delta(before, after, "LIST", "configmaps") == {
        "200": methods["LIST"]["succeeded"]
    }
    server = report["kperf"]["server"]
    keys = set(section["percentileLatenciesByURL"])
    assert keys == {
        f"GET {server}/api/v1/namespaces/{namespace}/configmaps/cm-0"
        "?resourceVersion=0&timeout=1m0s",
        f"GET {server}/api/v1/namespaces/{namespace}/configmaps/cm-1?timeout=1m0s",
        f"LIST {server}/api/v1/namespaces/{namespace}/configmaps?labelSelector=app%3Dkperf-it"
        "&resourceVersion=0&timeout=1m0s",
        f"LIST {server}/api/v1/namespaces/{namespace}/configmaps?limit=2&timeout=1m0s",
    }
    # The weighted choice follows the shares (seeded): 40/30/20/10 % of 400 within sampling noise.
    gets = section["requestsByURL"]
    stale_get = next(v for k, v in gets.items() if "cm-0" in k)["succeeded"]
    assert 120 <= stale_get <= 200
    # A stale list of 5 objects returns all 5: bytes grow with the objects.
    assert section["totalReceivedBytes"] > 400 * 300


def test_quorum_list_paginate_walks_every_page(
    core_v1, namespace, run_kperf, apiserver_requests
) -> None:
    make_configmaps(core_v1, namespace, "page", 7)  # + kube-root-ca.crt = 8 objects
    before = apiserver_requests.scrape()
    proc, report = run_kperf(
        spec(
            [
                {
                    "quorumList": {
                        "version": "v1",
                        "resource": "configmaps",
                        "namespace": namespace,
                        "limit": 3,
                        "paginate": True,
                    },
                    "shares": 1,
                }
            ],
            total=10,
        )
    )
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    objects = len(core_v1.list_namespaced_config_map(namespace).items)
    pages = -(-objects // 3)
    section = report["perSpecResults"][0]
    assert section["requests"]["succeeded"] == 10  # one LIST per walk in the report …
    assert apiserver_requests.delta(before, after, "LIST", "configmaps") == {
        "200": 10 * pages  # … and every page at the server
    }


def test_put_updates_configmaps_and_keeps_their_labels(
    core_v1, namespace, run_kperf, apiserver_requests
) -> None:
    make_configmaps(core_v1, namespace, "put", 4)
    before = apiserver_requests.scrape()
    proc, report = run_kperf(
        spec(
            [
                {
                    "put": {
                        "version": "v1",
                        "resource": "configmaps",
                        "namespace": namespace,
                        "name": "put",
                        "keySpaceSize": 4,
                        "payloadSize": 64,
                    },
                    "shares": 1,
                }
            ],
            total=60,
        )
    )
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    assert report["perSpecResults"][0]["requests"]["succeeded"] == 60
    assert apiserver_requests.delta(before, after, "PUT", "configmaps") == {"200": 60}
    for i in range(4):
        cm = core_v1.read_namespaced_config_map(f"put-{i}", namespace)
        assert cm.metadata.labels == {"app": "kperf-it", "index": str(i)}
        assert len(cm.data["payload"]) == 64 and cm.data["payload"].isalnum()


@pytest.mark.parametrize(
    ("patch_type", "body"),
    [
        ("merge", {"metadata": {"labels": {"patched": "merge"}}}),
        ("strategic-merge", {"metadata": {"labels": {"patched": "strategic"}}}),
        ("json", [{"op": "add", "path": "/metadata/labels/patched", "value": "json"}]),
    ],
)
def test_patch_types_change_the_objects(
    core_v1, namespace, run_kperf, apiserver_requests, patch_type, body
) -> None:
    make_configmaps(core_v1, namespace, "patch", 3)
    before = apiserver_requests.scrape()
    proc, report = run_kperf(
        spec(
            [
                {
                    "patch": {
                        "version": "v1",
                        "resource": "configmaps",
                        "namespace": namespace,
                        "name": "patch",
                        "keySpaceSize": 3,
                        "patchType": patch_type,
                        "body": json.dumps(body),
                    },
                    "shares": 1,
                }
            ],
            total=30,
        )
    )
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    section = report["perSpecResults"][0]
    assert section["requests"]["succeeded"] == 30
    assert list(section["requestsByURL"]) == [
        f"PATCH {report['kperf']['server']}/api/v1/namespaces/{namespace}/configmaps/:name"
        "?timeout=1m0s"
    ]
    assert apiserver_requests.delta(before, after, "PATCH", "configmaps") == {"200": 30}
    expected = body[0]["value"] if patch_type == "json" else body["metadata"]["labels"]["patched"]
    patched = [
        core_v1.read_namespaced_config_map(f"patch-{i}", namespace).metadata.labels.get("patched")
        for i in range(3)
    ]
    assert patched == [expected] * 3


@pytest.mark.parametrize("resource", ["configmaps", "pods"])
def test_post_delete_creates_deletes_and_cleans_up(
    core_v1, namespace, run_kperf, apiserver_requests, resource
) -> None:
    before = apiserver_requests.scrape()
    proc, report = run_kperf(
        spec(
            [
                {
                    "postDel": {
                        "version": "v1",
                        "resource": resource,
                        "namespace": namespace,
                        "deleteRatio": 0.4,
                        "payloadSize": 32,
                    },
                    "shares": 1,
                }
            ],
            total=60,
        ),
        "--seed",
        "3",
    )
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    # The pod garbage collector force-deletes unscheduled pods that terminate (the load's
    # deletes are graceful and no kubelet finishes them): on pods, the server may count more.
    controllers_delete = frozenset({("DELETE", "pods", "")} if resource == "pods" else ())
    apiserver_requests.assert_accounted(report, before, after, at_least=controllers_delete)
    methods = by_method(report["perSpecResults"][0])
    posts, deletes = methods["POST"]["succeeded"], methods["DELETE"]["succeeded"]
    assert posts + deletes == 60 and deletes > 0
    assert apiserver_requests.delta(before, after, "POST", resource) == {"201": posts}
    # The server's view files the creates in the class the client does: the resource scope,
    # though a create's URL names no object (the apiserver's rule).
    rows = {(c["verb"], c["resource"], c["scope"]): c for c in report["server"]["calls"]}
    assert rows["POST", resource, "resource"]["codes"] == {"201": posts}
    client_classes = {classify(key).key for key in report["aggregated"]["requestsByURL"]}
    assert ("POST", resource, "resource") in client_classes
    # The load's deletes plus the cleanup's: every created object is gone afterwards.
    server_deletes = apiserver_requests.delta(before, after, "DELETE", resource)
    if controllers_delete:
        assert server_deletes.get("200", 0) >= posts
    else:
        assert server_deletes == {"200": posts}
    selector = "kperf.io/created-by=postDel"
    if resource == "pods":
        left = core_v1.list_namespaced_pod(namespace, label_selector=selector).items
        # Pods are deleted gracefully; with no kubelet they are gone once the grace period is 0.
        assert [p for p in left if p.metadata.deletion_timestamp is None] == []
    else:
        assert core_v1.list_namespaced_config_map(namespace, label_selector=selector).items == []


def test_get_pod_log_reaches_the_log_subresource(
    core_v1, namespace, run_kperf, apiserver_requests
) -> None:
    from kubernetes import client

    core_v1.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="logger"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="fake")]),
        ),
    )
    before = apiserver_requests.scrape()
    proc, report = run_kperf(
        spec(
            [
                {
                    "getPodLog": {
                        "namespace": namespace,
                        "name": "logger",
                        "container": "c",
                        "tailLines": 10,
                    },
                    "shares": 1,
                }
            ],
            total=5,
        )
    )
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    section = report["perSpecResults"][0]
    assert list(section["requestsByURL"]) == [
        f"POD_LOG {report['kperf']['server']}/api/v1/namespaces/{namespace}/pods/logger/log"
        "?container=c&tailLines=10&timeout=1m0s"
    ]
    # Without a node (no kubelet here) v1.20 answers 204 No Content: an empty log, a success.
    assert section["requests"]["succeeded"] == 5
    assert section["totalReceivedBytes"] == 0
    assert apiserver_requests.delta(before, after, POD_LOG_VERBS, "pods") == {"204": 5}


def test_watch_sees_kperf_writes_and_measures_event_lag(
    core_v1, namespace, run_kperf, apiserver_requests
) -> None:
    make_configmaps(core_v1, namespace, "w", 3)
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    before = apiserver_requests.scrape()
    proc, report = run_kperf(
        spec(
            [
                # two informers beside the load, in one-second sessions
                {"watch": {**ref, "timeoutSeconds": 1, "watchers": 2}},
                {"put": {**ref, "name": "w", "keySpaceSize": 3, "payloadSize": 16}, "shares": 1},
            ],
            rate=40,
            duration=4,
            client=2,
            total=0,
        ),
        "--seed",
        "7",
    )
    time.sleep(1)  # the apiserver counts a watch when it ends: let the last ones close
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    section = report["perSpecResults"][0]
    server = report["kperf"]["server"]
    base = f"{server}/api/v1/namespaces/{namespace}/configmaps"
    watch_key = f"WATCH {base}?allowWatchBookmarks=true&timeoutSeconds=1&watch=true"
    list_key = f"LIST {base}?resourceVersion=0&timeout=1m0s"
    by_url = section["requestsByURL"]
    # each informer lists once, then each session resumes where the last one ended
    assert (by_url[list_key]["succeeded"], by_url[list_key]["failed"]) == (2, 0)
    sessions = by_url[watch_key]["succeeded"]
    assert sessions >= 2 * 3 and by_url[watch_key]["failed"] == 0
    assert section["requests"]["backgroundSent"] == 2 + sessions
    assert sum(apiserver_requests.delta(before, after, "WATCH", "configmaps").values()) >= sessions

    # The watches hold none of the load's slots: the PUTs keep their rate.
    puts = by_method(section)["PUT"]["succeeded"]
    assert puts >= 0.9 * 40 * 4
    assert abs(section["load"]["achievedRate"] - 40) < 4
    [facts] = [f for f in section["requestTypeFacts"] if f["type"] == "watch"]
    # Both informers see every PUT (resumed sessions lose nothing), but for the last moments'.
    assert 0.9 * 2 * puts <= facts["events"]["MODIFIED"] <= 2 * puts
    assert facts["events"]["ADDED"] == 0  # the list saw the configmaps; the watch did not
    lag = facts["eventLag"]
    assert lag["count"] == facts["events"]["MODIFIED"]
    assert all(0 <= seconds < 5 for _, seconds in lag["percentiles"])


def test_watch_list_streams_the_objects_or_is_refused_by_an_old_server(
    namespace, core_v1, kube_minor, run_kperf, apiserver_requests
) -> None:
    make_configmaps(core_v1, namespace, "wl", 7)
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    before = apiserver_requests.scrape()
    proc, report = run_kperf(spec([{"watchList": ref, "shares": 1}], total=3, client=1))
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    section = report["perSpecResults"][0]
    # The controllers' informers watch configmaps too, and their sessions end (and are counted)
    # at random times: with 200, or 0 on v1.20. So the server may count more of those.
    watches = apiserver_requests.delta(before, after, "WATCH", "configmaps")
    controllers = {code: n for code, n in watches.items() if code in ("0", "200")}
    if serves_streaming_lists(kube_minor):
        # Each request ends at the initial-events-end bookmark, having streamed every object
        # (plus the namespace's kube-root-ca.crt) as an ADDED event.
        assert (section["requests"]["succeeded"], section["requests"]["failed"]) == (3, 0)
        assert "errorStats" not in section  # present only when something failed
        [facts] = [f for f in section["requestTypeFacts"] if f["type"] == "watchList"]
        assert facts["objects"] == 3 * 8
        assert watches.get("200", 0) >= 3 and watches == controllers
    else:
        # v1.20 predates WatchList (sendInitialEvents): it refuses resourceVersionMatch on a watch.
        assert section["requests"]["failed"] == 3
        assert section["errorStats"] == {"http/422": 3}
        assert watches == {**controllers, "422": 3}


def test_put_on_missing_objects_says_which_before_the_run(
    core_v1, namespace, run_kperf, apiserver_requests
) -> None:
    make_configmaps(core_v1, namespace, "some", 2)  # some-0, some-1 of 4
    put = {
        "version": "v1",
        "resource": "configmaps",
        "namespace": namespace,
        "name": "some",
        "keySpaceSize": 4,
        "payloadSize": 8,
    }
    before = apiserver_requests.scrape()
    # one engine process: each worker reads the put's objects itself
    proc, report = run_kperf(spec([{"put": put, "shares": 1}], total=20), "--workers", "1")
    after = apiserver_requests.scrape()
    assert proc.returncode == 4 and report is None  # 4: what the cluster holds
    [line] = proc.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("kperf: error: put: 2 of the 4 ConfigMaps")
    assert "(some-2, some-3)" in line
    assert f"kubectl -n {namespace} create configmap some-$i" in line
    # nothing was sent but the preparatory LIST
    assert apiserver_requests.delta(before, after, "PUT", "configmaps") == {}
    assert apiserver_requests.delta(before, after, "LIST", "configmaps") == {"200": 1}
