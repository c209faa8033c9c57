"""Reports: upstream's keys and meanings, plus kperf's added facts, from hand-made spec results."""

from __future__ import annotations

import collections
import json

import pytest

from kperf_core.engine.spec_runner import SpecResult
from kperf_core.metrics import PERCENTILES, RELATIVE_ACCURACY, KeyStats
from kperf_core.report import full_key, go_duration, runner_report, spec_report, summary_lines

SERVER = "https://10.0.0.1:443"
LIST_KEY = "LIST /api/v1/pods?resourceVersion=0&timeout=1m0s"
PATCH_KEY = "PATCH /api/v1/namespaces/default/configmaps/:name?timeout=1m0s"
GET_KEY = "GET /api/v1/namespaces/default/pods/p?timeout=1m0s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1e-9, "1ns"),
        (999e-9, "999ns"),
        (1.5e-6, "1.5µs"),
        (0.0015, "1.5ms"),
        (0.25, "250ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999999999, "59.999999999s"),
        (61, "1m1s"),
        (100.072897445, "1m40.072897445s"),
        (3600, "1h0m0s"),
        (3725, "1h2m5s"),
        (7200.5, "2h0m0.5s"),
        (-1.5, "-1.5s"),
    ],
)
def test_go_duration_matches_go(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_full_key_inserts_the_server() -> None:
    assert full_key(LIST_KEY, SERVER) == (
        "LIST https://10.0.0.1:443/api/v1/pods?resourceVersion=0&timeout=1m0s"
    )
    assert full_key(PATCH_KEY, SERVER) == (
        "PATCH https://10.0.0.1:443/api/v1/namespaces/default/configmaps/:name?timeout=1m0s"
    )


def stats(
    latencies: list[float], failed: int = 0, received: int = 0, raw: bool = False
) -> KeyStats:
    s = KeyStats(keep_raw=raw)
    for value in latencies:
        s.latencies.record(value)
        if s.raw is not None:
            s.raw.append(value)
    s.succeeded = len(latencies)
    s.failed = failed
    s.bytes = received
    return s


def two_specs(raw: bool = False) -> list[SpecResult]:
    first = SpecResult(
        stats={
            LIST_KEY: stats([0.1, 0.2, 0.4], failed=1, received=1000, raw=raw),
            PATCH_KEY: stats([0.05], received=10, raw=raw),
        },
        error_stats=collections.Counter({"http/429": 1}),
        duration=100.072897445,
        sent=5,
        configured_total=5,
        rate=10.0,
        arrival="closed",
        cpu_seconds=20.0,
        busy_fraction=0.5,
        raw_errors=[
            {"method": "LIST", "url": "/api/v1/pods?resourceVersion=0&timeout=1m0s",
             "type": "http", "code": 429, "message": "", "duration": 0.3}
        ] if raw else None,
        ended_by="total",
    )  # fmt: skip
    second = SpecResult(
        stats={
            LIST_KEY: stats([0.3, 0.8], received=500, raw=raw),
            GET_KEY: stats([], failed=2, raw=raw),
        },
        error_stats=collections.Counter({"connection/EOF": 2}),
        duration=20.0,
        sent=4,
        configured_total=0,
        rate=100.0,
        arrival="poisson",
        cpu_seconds=19.0,
        busy_fraction=0.95,
        raw_errors=[
            {"method": "GET", "url": "/api/v1/namespaces/default/pods/p?timeout=1m0s",
             "type": "connection", "code": 0, "message": "EOF", "duration": 0.1},
            {"method": "GET", "url": "/api/v1/namespaces/default/pods/p?timeout=1m0s",
             "type": "connection", "code": 0, "message": "EOF", "duration": 0.2},
        ] if raw else None,
        ended_by="duration",
    )  # fmt: skip
    return [first, second]


def close_to(value: float, exact: float) -> bool:
    return abs(value - exact) <= RELATIVE_ACCURACY * (1 + 1e-9) * exact


def test_runner_report_has_upstream_keys() -> None:
    report = runner_report(two_specs(), SERVER)
    assert set(report) == {"perSpecResults", "aggregated"}
    assert len(report["perSpecResults"]) == 2
    for section in (*report["perSpecResults"], report["aggregated"]):
        for key in (
            "total",
            "duration",
            "errorStats",
            "totalReceivedBytes",
            "percentileLatencies",
            "percentileLatenciesByURL",
        ):
            assert key in section, key
        assert "latenciesByURL" not in section
        assert "errors" not in section
    # Go's encoder output is plain JSON: the report must serialise.
    json.dumps(report)


def test_per_spec_values() -> None:
    first, second = runner_report(two_specs(), SERVER)["perSpecResults"]
    assert first["total"] == 5
    assert second["total"] == 0  # configured total, 0 in duration mode (upstream meaning)
    assert first["duration"] == "1m40.072897445s"
    assert second["duration"] == "20s"
    assert first["durationSeconds"] == 100.072897445
    assert first["errorStats"] == {"http/429": 1}
    assert second["errorStats"] == {"connection/EOF": 2}
    assert first["totalReceivedBytes"] == 1010
    assert second["totalReceivedBytes"] == 500

    pairs = first["percentileLatencies"]
    assert [p for p, _ in pairs] == list(PERCENTILES)
    exact = {0.0: 0.05, 0.5: 0.1, 0.9: 0.4, 0.95: 0.4, 0.99: 0.4, 1.0: 0.4}
    for p, value in pairs:
        assert close_to(value, exact[p]), (p, value)

    by_url = first["percentileLatenciesByURL"]
    assert set(by_url) == {
        "LIST https://10.0.0.1:443/api/v1/pods?resourceVersion=0&timeout=1m0s",
        "PATCH https://10.0.0.1:443/api/v1/namespaces/default/configmaps/:name?timeout=1m0s",
    }
    patch = by_url[
        "PATCH https://10.0.0.1:443/api/v1/namespaces/default/configmaps/:name?timeout=1m0s"
    ]
    assert patch == [[p, 0.05] for p in PERCENTILES]


def test_key_without_successes_has_no_percentiles_but_is_counted() -> None:
    second = runner_report(two_specs(), SERVER)["perSpecResults"][1]
    get_url = "GET https://10.0.0.1:443/api/v1/namespaces/default/pods/p?timeout=1m0s"
    assert get_url not in second["percentileLatenciesByURL"]
    assert second["requestsByURL"][get_url] == {"succeeded": 0, "failed": 2, "receivedBytes": 0}


def test_aggregated_sums_and_merges_across_specs() -> None:
    aggregated = runner_report(two_specs(), SERVER)["aggregated"]
    assert aggregated["total"] == 5
    assert aggregated["duration"] == "2m0.072897445s"
    assert aggregated["durationSeconds"] == pytest.approx(120.072897445)
    assert aggregated["errorStats"] == {"connection/EOF": 2, "http/429": 1}
    assert aggregated["totalReceivedBytes"] == 1510
    assert aggregated["requests"] == {
        "sent": 9,
        "backgroundSent": 0,
        "succeeded": 6,
        "failed": 3,
        "notSent": 0,
    }

    # percentiles over all successful samples of both specs: 0.05 0.1 0.2 0.3 0.4 0.8
    exact = {0.0: 0.05, 0.5: 0.2, 0.9: 0.8, 0.95: 0.8, 0.99: 0.8, 1.0: 0.8}
    for p, value in aggregated["percentileLatencies"]:
        assert close_to(value, exact[p]), (p, value)

    list_url = "LIST https://10.0.0.1:443/api/v1/pods?resourceVersion=0&timeout=1m0s"
    list_exact = {0.0: 0.1, 0.5: 0.3, 0.9: 0.8, 0.95: 0.8, 0.99: 0.8, 1.0: 0.8}
    for p, value in aggregated["percentileLatenciesByURL"][list_url]:
        assert close_to(value, list_exact[p]), (p, value)
    assert aggregated["requestsByURL"][list_url] == {
        "succeeded": 5,
        "failed": 1,
        "receivedBytes": 1500,
    }
    histogram = aggregated["latencyHistogramsByURL"][list_url]
    assert histogram["count"] == 5
    assert (histogram["min"], histogram["max"]) == (0.1, 0.8)


def test_raw_data_only_with_raw() -> None:
    assert "latenciesByURL" not in runner_report(two_specs(raw=True), SERVER)["aggregated"]

    report = runner_report(two_specs(raw=True), SERVER, raw=True)
    list_url = "LIST https://10.0.0.1:443/api/v1/pods?resourceVersion=0&timeout=1m0s"
    first, second = report["perSpecResults"]
    assert first["latenciesByURL"][list_url] == [0.1, 0.2, 0.4]
    assert second["latenciesByURL"][list_url] == [0.3, 0.8]
    assert report["aggregated"]["latenciesByURL"][list_url] == [0.1, 0.2, 0.4, 0.3, 0.8]
    assert first["errors"] == [
        {"method": "LIST", "url": f"{SERVER}/api/v1/pods?resourceVersion=0&timeout=1m0s",
         "type": "http", "code": 429, "message": "", "duration": 0.3}
    ]  # fmt: skip
    assert len(report["aggregated"]["errors"]) == 3
    assert all(e["url"].startswith(f"{SERVER}/api/v1/") for e in report["aggregated"]["errors"])


def test_error_stats_omitted_when_empty() -> None:
    result = SpecResult(
        stats={LIST_KEY: stats([0.1])},
        error_stats=collections.Counter(),
        duration=1.0,
        sent=1,
        configured_total=1,
        rate=0.0,
        arrival="closed",
    )
    report = runner_report([result], SERVER)
    assert "errorStats" not in report["perSpecResults"][0]
    assert "errorStats" not in report["aggregated"]


def test_percentile_keys_omitted_without_samples() -> None:
    result = SpecResult(
        stats={LIST_KEY: stats([], failed=3)},
        error_stats=collections.Counter({"http/500": 3}),
        duration=1.0,
        sent=3,
        configured_total=3,
        rate=0.0,
        arrival="closed",
    )
    report = runner_report([result], SERVER)
    for section in (report["perSpecResults"][0], report["aggregated"]):
        assert "percentileLatencies" not in section
        assert "percentileLatenciesByURL" not in section
        assert section["errorStats"] == {"http/500": 3}
        assert section["totalReceivedBytes"] == 0
        assert section["requests"]["failed"] == 3
    assert summary_lines(report)[0].endswith("no successful requests")


def test_requests_and_load_added_keys() -> None:
    first, second = runner_report(two_specs(), SERVER)["perSpecResults"]
    assert first["requests"] == {
        "sent": 5,
        "backgroundSent": 0,
        "succeeded": 4,
        "failed": 1,
        "notSent": 0,
    }
    assert second["requests"] == {
        "sent": 4,
        "backgroundSent": 0,
        "succeeded": 2,
        "failed": 2,
        "notSent": 0,
    }
    load = first["load"]
    assert load["arrival"] == "closed"
    assert load["offeredRate"] == 10.0
    assert load["sendRate"] == pytest.approx(5 / 100.072897445)
    assert load["achievedRate"] == pytest.approx(5 / 100.072897445)
    assert load["endedBy"] == "total"
    assert load["clientCpuSeconds"] == 20.0
    assert load["clientCpuUtilization"] == pytest.approx(20.0 / 100.072897445)
    assert load["clientSaturated"] is False
    assert load["concurrencyLimited"] is False  # slots busy only half the time
    # second: 19 s of CPU in 20 s (95 %); every slot busy 95 % while 100/s was wanted, 0.2/s sent
    assert second["load"]["clientSaturated"] is True
    assert second["load"]["concurrencyLimited"] is True
    assert second["load"]["endedBy"] == "duration"


def _load(cpu_seconds: float, busy: float, rate: float, sent: int, duration: float = 10.0):
    result = SpecResult(
        stats={LIST_KEY: stats([0.1] * sent)},
        error_stats=collections.Counter(),
        duration=duration,
        sent=sent,
        configured_total=0,
        rate=rate,
        arrival="closed",
        cpu_seconds=cpu_seconds,
        busy_fraction=busy,
    )
    return spec_report(result, SERVER)["load"]


@pytest.mark.parametrize(
    ("cpu_seconds", "saturated"), [(9.0, True), (10.0, True), (8.99, False), (0.0, False)]
)
def test_client_saturated_threshold(cpu_seconds: float, saturated: bool) -> None:
    assert _load(cpu_seconds, 0.0, 0.0, 10)["clientSaturated"] is saturated


@pytest.mark.parametrize(
    ("busy", "rate", "sent", "limited"),
    [
        (0.95, 100.0, 500, True),  # wanted 100/s, sent 50/s
        (0.9, 100.0, 500, True),  # threshold is inclusive
        (0.89, 100.0, 500, False),  # slots not busy enough
        (0.95, 10.0, 100, False),  # rate reached: the limiter is the limit, not the slots
        (0.95, 10.0, 99, False),  # 9.9/s is within 1 % of 10/s
        (0.95, 10.0, 98, True),  # 9.8/s is not
        # unlimited rate: closed-loop concurrency is the load model itself, not a limit
        (0.95, 0.0, 100, False),
    ],
)
def test_concurrency_limited(busy: float, rate: float, sent: int, limited: bool) -> None:
    assert _load(0.0, busy, rate, sent)["concurrencyLimited"] is limited


def test_zero_duration_does_not_divide_by_zero() -> None:
    load = _load(0.0, 0.0, 0.0, 0, duration=0.0)
    assert (load["sendRate"], load["achievedRate"], load["clientCpuUtilization"]) == (0.0, 0.0, 0.0)


def test_summary_lines_flag_saturation() -> None:
    lines = summary_lines(runner_report(two_specs(), SERVER))
    assert lines[0].startswith("spec 0: 4 ok, 1 failed in 1m40.072897445s")
    assert "  errors: http/429=1" in lines
    assert any("CLIENT SATURATED" in line for line in lines)
    assert any("concurrency-limited" in line for line in lines)


@pytest.mark.parametrize(
    ("sessions", "completed", "busy", "cpu_seconds", "said"),
    [
        (1000, 50, 0.8, 2.0, True),  # 5 of 20 req/s, slots waiting, engine at 20 %
        (0, 50, 0.8, 2.0, False),  # no background sessions: not this line
        (1000, 190, 0.8, 2.0, False),  # the rate (nearly) reached
        (1000, 50, 0.2, 2.0, False),  # the slots were free: not waiting on the server
        (1000, 50, 0.8, 9.5, False),  # the engine saturated: kperf's own limit, said elsewhere
    ],
)
def test_a_load_held_back_beside_background_sessions_is_said_in_one_line(
    sessions: int, completed: int, busy: float, cpu_seconds: float, said: bool
) -> None:
    result = SpecResult(
        stats={GET_KEY: stats([0.5] * completed), LIST_KEY: stats([0.1] * sessions)},
        error_stats=collections.Counter(),
        duration=10.0,
        sent=completed,
        configured_total=0,
        rate=20.0,
        arrival="closed",
        busy_fraction=busy,
        cpu_seconds=cpu_seconds,
        background_sent=sessions,
        connections={"background": {"sessions": sessions}} if sessions else {},
    )
    limits = spec_report(result, SERVER).get("limits", [])
    assert len(limits) == int(said)
    if said:
        assert limits[0].startswith("load: 5.0 of 20 req/s beside 1000 background sessions")
        assert "the server (or the machine it shares) answered no faster" in limits[0]
