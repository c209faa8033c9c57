"""The native transport against the real apiserver: what its report counts is what the server
counted, over HTTP/1.1 and HTTP/2, with a client certificate and with a bearer token, and its
failures are classified as libcurl's are. Skipped where the extension is not built (scripts/setup.sh
builds it when cargo is present, as in CI)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_configmaps, spec

from kperf_core.engine.native_transport import native_installed

# CI runs these against the current release and again against v1.20.2 (scripts/test.sh).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.every_kube_version,
    pytest.mark.skipif(not native_installed(), reason="kperf_native is not built"),
]

TOKEN_CONTEXT = "kperf-local-token"  # the local plane's kubeconfig; its default is a certificate


def _load(report: dict[str, Any]) -> dict[str, Any]:
    return report["perSpecResults"][0]["connections"]["load"]


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1"])
@pytest.mark.parametrize("context", [None, TOKEN_CONTEXT], ids=["client-cert", "token"])
def test_gets_and_lists_on_the_native_transport_are_what_the_server_counted(
    core_v1, namespace, run_kperf, apiserver_requests, http2: bool, context: str | None
) -> None:
    # 80 objects of 2 KB: the stale list's answer is above the apiserver's 128 KB gzip threshold
    make_configmaps(core_v1, namespace, "cm", 80, size=2000)
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    profile = spec(
        [
            {"staleGet": {**ref, "name": "cm-0"}, "shares": 50},
            {"quorumGet": {**ref, "name": "cm-1"}, "shares": 20},
            {"staleList": {**ref, "selector": "app=kperf-it"}, "shares": 20},
            {"quorumList": {**ref, "limit": 40, "paginate": True}, "shares": 10},
        ],
        total=300,
        disableHTTP2=not http2,
    )
    args = ("--seed", "3", *(("--context", context) if context else ()))
    before = apiserver_requests.scrape()
    proc, report = run_kperf(profile, *args, env={"KPERF_TRANSPORT": "native"})
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    load = _load(report)
    assert load["transport"] == "native"
    assert load["protocol"] == ("h2" if http2 else "http/1.1")
    assert load["opened"] <= load["limit"]
    # every request, the paginated walks' earlier pages included, is the server's count
    apiserver_requests.assert_accounted(report, before, after)
    section = report["perSpecResults"][0]
    assert section["requests"]["succeeded"] == 300
    assert apiserver_requests.delta(before, after, "GET", "configmaps") == {
        "200": sum(v["succeeded"] for k, v in section["requestsByURL"].items() if k[:4] == "GET ")
    }

    # libcurl, same seed: the same requests, the same bytes counted for each
    proc, curl_report = run_kperf(profile, *args, env={"KPERF_TRANSPORT": "curl"})
    assert proc.returncode == 0, proc.stderr
    assert _load(curl_report)["transport"] == "libcurl"
    curl_section = curl_report["perSpecResults"][0]

    def bytes_per_response(section: dict[str, Any]) -> dict[str, float]:
        return {
            key: stats["receivedBytes"] / stats["succeeded"]
            for key, stats in section["requestsByURL"].items()
            if stats["succeeded"]
        }

    # counted decompressed by both (the stale list's answer is gzipped)
    assert bytes_per_response(section) == bytes_per_response(curl_section)
    assert section["requestsByURL"].keys() == curl_section["requestsByURL"].keys()


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1"])
def test_native_failures_are_classified_as_libcurls(
    namespace, run_kperf, apiserver_requests, http2: bool
) -> None:
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    profile = spec(
        [{"staleGet": {**ref, "name": "missing"}, "shares": 1}], total=40, disableHTTP2=not http2
    )
    errors = {}
    for transport in ("native", "curl"):
        before = apiserver_requests.scrape()
        proc, report = run_kperf(profile, env={"KPERF_TRANSPORT": transport})
        after = apiserver_requests.scrape()
        assert proc.returncode == 0, proc.stderr
        apiserver_requests.assert_accounted(report, before, after)
        assert apiserver_requests.delta(before, after, "GET", "configmaps") == {"404": 40}
        errors[transport] = report["perSpecResults"][0]["errorStats"]
    assert errors["native"] == errors["curl"] == {"http/404": 40}


def test_a_request_timeout_on_the_native_transport_is_libcurls_timeout(
    core_v1, namespace, run_kperf
) -> None:
    # a quorum LIST of 200 objects from etcd (and a TLS handshake) take longer than a millisecond
    make_configmaps(core_v1, namespace, "big", 200, size=1000)
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    profile = spec([{"quorumList": ref, "shares": 1}], total=20, client=2, timeout=0.001)
    for transport in ("native", "curl"):
        proc, report = run_kperf(profile, env={"KPERF_TRANSPORT": transport})
        assert proc.returncode == 0, proc.stderr
        section = report["perSpecResults"][0]
        assert section["requests"]["failed"] == 20, transport
        assert set(section["errorStats"]) == {"connection/timeout"}, transport


# -- the fast lane: the closed loop inside the extension ---------------------------------------


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1"])
def test_a_closed_loop_of_gets_and_lists_runs_in_the_native_loop_as_the_server_counted(
    core_v1, namespace, run_kperf, apiserver_requests, http2: bool
) -> None:
    make_configmaps(core_v1, namespace, "cm", 30, size=500)
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    profile = spec(
        [
            {"staleGet": {**ref, "name": "cm-0"}, "shares": 50},
            {"quorumGet": {**ref, "name": "cm-1"}, "shares": 20},
            {"staleList": {**ref, "selector": "app=kperf-it"}, "shares": 30},
        ],
        total=437,
        client=7,
        disableHTTP2=not http2,
    )
    sections = {}
    for loop in ("native", "python"):
        before = apiserver_requests.scrape()
        proc, report = run_kperf(profile, "--seed", "5", env={"KPERF_NATIVE_LOOP": loop})
        after = apiserver_requests.scrape()
        assert proc.returncode == 0, proc.stderr
        apiserver_requests.assert_accounted(report, before, after)
        section = sections[loop] = report["perSpecResults"][0]
        assert section["requests"] == {
            "sent": 437, "backgroundSent": 0, "succeeded": 437, "failed": 0, "notSent": 0
        }  # fmt: skip
        assert section["load"]["endedBy"] == "total"
        assert _load(report)["loop"] == loop
        assert _load(report)["protocol"] == ("h2" if http2 else "http/1.1")
        assert _load(report)["opened"] <= _load(report)["limit"]
        by_key = section["requestsByURL"]
        # every success has its latency in the histogram and the time series
        assert sum(v["succeeded"] for v in by_key.values()) == 437
        series = section["timeSeries"]["byURL"]
        assert sum(sum(one["succeeded"]) for one in series.values()) == 437
    assert "notNativeLoopBecause" not in sections["native"]["connections"]["load"]
    assert sections["python"]["connections"]["load"]["notNativeLoopBecause"] == (
        "KPERF_NATIVE_LOOP=python"
    )
    native, python = (sections[loop]["requestsByURL"] for loop in ("native", "python"))
    assert native.keys() == python.keys()
    # the shares hold on the native loop too (its own seeded generator): within 4 sigma
    for key, stats in native.items():
        share = 0.5 if "GET" in key and "resourceVersion=0" in key else 0.2 if "GET" in key else 0.3
        assert abs(stats["succeeded"] - 437 * share) <= 4 * (437 * share * (1 - share)) ** 0.5, key
        assert stats["receivedBytes"] / stats["succeeded"] == (
            python[key]["receivedBytes"] / python[key]["succeeded"]
        )


def test_the_native_loop_keeps_the_rate_and_ends_at_the_duration(
    namespace, core_v1, run_kperf, apiserver_requests
) -> None:
    make_configmaps(core_v1, namespace, "cm", 1)
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    rate, duration = 40, 2.0
    profile = spec(
        [{"staleGet": {**ref, "name": "cm-0"}, "shares": 1}], rate=rate, duration=duration, client=4
    )
    before = apiserver_requests.scrape()
    proc, report = run_kperf(profile)
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    section = report["perSpecResults"][0]
    assert _load(report)["loop"] == "native"
    assert section["load"]["endedBy"] == "duration"
    # the limiter's rule (pacing.ClosedLoop): evenly spaced from the start, none at the deadline
    assert rate * duration - 2 <= section["requests"]["sent"] <= rate * duration + 1
    assert section["requests"]["succeeded"] == section["requests"]["sent"]
    assert section["load"]["maxSendLagSeconds"] < 0.05
    assert section["load"]["busyFraction"] < 0.5  # 4 slots at 40 req/s are mostly free


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1"])
def test_failures_on_the_native_loop_are_classified_as_on_the_python_loop(
    namespace, run_kperf, apiserver_requests, http2: bool
) -> None:
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    profile = spec(
        [{"staleGet": {**ref, "name": "missing"}, "shares": 1}],
        total=53,
        client=3,
        disableHTTP2=not http2,
    )
    sections = {}
    for loop in ("native", "python"):
        before = apiserver_requests.scrape()
        proc, report = run_kperf(profile, env={"KPERF_NATIVE_LOOP": loop})
        after = apiserver_requests.scrape()
        assert proc.returncode == 0, proc.stderr
        apiserver_requests.assert_accounted(report, before, after)
        assert apiserver_requests.delta(before, after, "GET", "configmaps") == {"404": 53}
        assert _load(report)["loop"] == loop
        sections[loop] = report["perSpecResults"][0]
    native, python = sections["native"], sections["python"]
    assert native["errorStats"] == python["errorStats"] == {"http/404": 53}
    assert native["requests"] == python["requests"]
    assert native["requests"]["failed"] == 53
    for section in (native, python):
        series = section["timeSeries"]["byURL"]
        assert sum(sum(one["failed"]) for one in series.values()) == 53


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"arrival": "constant", "rate": 50}, "arrival constant"),
        ({"maxRetries": 2}, "maxRetries > 0"),
        ({"paginate": True}, "quorumList reads its answers in Python (pagination)"),
    ],
    ids=["open-loop", "retries", "pagination"],
)
def test_specs_the_native_loop_cannot_run_say_why_and_run_in_python(
    namespace, run_kperf, apiserver_requests, change: dict[str, Any], reason: str
) -> None:
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    paginate = {"limit": 5, "paginate": True} if change.pop("paginate", False) else {}
    profile = spec([{"quorumList": {**ref, **paginate}, "shares": 1}], total=20, **change)
    before = apiserver_requests.scrape()
    proc, report = run_kperf(profile)
    after = apiserver_requests.scrape()
    assert proc.returncode == 0, proc.stderr
    apiserver_requests.assert_accounted(report, before, after)
    load = _load(report)
    assert (load["transport"], load["loop"]) == ("native", "python")
    assert reason in load["notNativeLoopBecause"]
    assert report["perSpecResults"][0]["requests"]["succeeded"] == 20
    # forcing the native loop on such a spec is one clear line, no traceback
    proc, _ = run_kperf(profile, env={"KPERF_NATIVE_LOOP": "native"})
    assert proc.returncode != 0
    assert f"KPERF_NATIVE_LOOP=native, but {reason}" in proc.stderr
    assert "Traceback" not in proc.stderr
