"""Sessions beside the load (informers' watches) on connections of their own, against the real
apiserver: they must never take capacity from the load, and the report says what each part used."""

from __future__ import annotations

import math

import pytest
from conftest import spec

pytestmark = [pytest.mark.integration, pytest.mark.every_kube_version]

RATE = 20
DURATION = 10
#: More watchers than one HTTP/2 connection carries (the server's stream limit): on the load's
#: connection they used to take every stream (0.4 req/s of 20 achieved).
WATCHERS = 1000


def advertised_streams(minor: int) -> int:
    """SETTINGS_MAX_CONCURRENT_STREAMS of a kube-apiserver with default flags: Go's 250 until
    kubernetes/kubernetes#121120 (1.29, the HTTP/2 rapid-reset fix) made it 100. (That fix also
    reached late 1.25-1.28 patch releases, which the suite does not run.)"""
    return 100 if minor >= 29 else 250


def test_a_thousand_watchers_leave_the_load_its_rate(
    core_v1, namespace, run_kperf, kube_minor
) -> None:
    from kubernetes import client

    core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="target"))
    )
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    proc, report = run_kperf(
        spec(
            [
                {"watch": {**ref, "watchers": WATCHERS}},
                {"staleGet": {**ref, "name": "target"}, "shares": 1},
            ],
            rate=RATE,
            duration=DURATION,
            conns=1,
            client=2,
            total=0,
        )
    )
    assert proc.returncode == 0, proc.stderr
    section = report["perSpecResults"][0]
    assert section.get("limits") is None, section["limits"]
    # the load kept its one connection; the watchers got theirs, one per the stream limit the
    # server advertises (planning with more streams than it allows left sessions waiting in the
    # client for a minute: 220 of 1,000 on v1.35, which allows 100)
    connections = section["connections"]
    load = connections["load"]
    # watches run on libcurl (the native transport carries plain requests only)
    assert (load["opened"], load["limit"], load["transport"]) == (1, 1, "libcurl")
    background = connections["background"]
    assert background["sessions"] == WATCHERS
    streams = advertised_streams(kube_minor)
    assert (background["streamsPerConnection"], background["streamLimitFrom"]) == (
        streams,
        "server",
    )
    assert background["opened"] == background["planned"] == math.ceil(WATCHERS / streams)
    # every watcher listed once and holds its watch open until the end
    by_url = section["requestsByURL"]
    [watch_key] = [k for k in by_url if k.startswith("WATCH ")]
    assert by_url[watch_key] == {
        "succeeded": WATCHERS,
        "failed": 0,
        "receivedBytes": by_url[watch_key]["receivedBytes"],
    }
    # the load: its rate, and (nearly) every request it was due to send
    load = section["load"]
    assert load["achievedRate"] >= 0.9 * RATE, load
    [get_key] = [k for k in by_url if k.startswith("GET ")]
    assert by_url[get_key]["succeeded"] >= 0.95 * RATE * DURATION
    assert by_url[get_key]["failed"] == 0
    assert "connections: load 1" in proc.stderr


def test_background_sessions_over_http1_take_a_connection_each(namespace, run_kperf) -> None:
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    watchers = 5
    proc, report = run_kperf(
        spec(
            [
                {"watch": {**ref, "watchers": watchers}},
                {"staleList": ref, "shares": 1},
            ],
            rate=RATE,
            duration=2,
            conns=1,
            client=2,
            total=0,
            disableHTTP2=True,
        )
    )
    assert proc.returncode == 0, proc.stderr
    connections = report["perSpecResults"][0]["connections"]
    assert connections["background"]["opened"] == connections["background"]["planned"] == watchers
    assert connections["load"]["opened"] <= connections["load"]["limit"] == 2


@pytest.mark.parametrize("transport", ["curl", "native"])
def test_a_load_wider_than_the_servers_stream_limit_gets_more_connections(
    core_v1, namespace, run_kperf, kube_minor, transport
) -> None:
    """250 clients over conns 1: a v1.35 server allows 100 streams per connection, so the load
    opens 3 (as upstream's Go transport does when a connection is full) instead of keeping 150
    requests waiting in the client; a v1.20 server allows all 250 on one."""
    from kubernetes import client

    from kperf_core.engine.native_transport import native_installed

    if transport == "native" and not native_installed():
        pytest.skip("kperf_native is not built")
    core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="target"))
    )
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    proc, report = run_kperf(
        spec(
            [{"staleGet": {**ref, "name": "target"}, "shares": 1}], conns=1, client=250, total=1500
        ),
        env={"KPERF_TRANSPORT": transport},
    )
    assert proc.returncode == 0, proc.stderr
    section = report["perSpecResults"][0]
    assert section["requests"]["succeeded"] == 1500
    load = section["connections"]["load"]
    wanted = math.ceil(250 / advertised_streams(kube_minor))
    assert (load["opened"], load["limit"]) == (wanted, wanted)
