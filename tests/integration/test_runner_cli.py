"""`kperf runner run` as a user meets it: limits, overrides, Ctrl-C, bad input, dead clusters."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import KPERF, by_method, spec

from kperf_core.engine.native_transport import native_installed

# CI runs these against the current release and again against v1.20.2 (scripts/test.sh).
pytestmark = [pytest.mark.integration, pytest.mark.every_kube_version]

UPSTREAM_SPECS = Path(__file__).parents[1] / "data" / "upstream-kperf"
STALE_NAMESPACES = {"staleList": {"version": "v1", "resource": "namespaces"}, "shares": 1}


def test_multi_spec_profile_runs_back_to_back_with_its_own_limits(run_kperf) -> None:
    profile = {
        "version": 1,
        "description": "replay",
        "specs": [
            {"rate": 50, "duration": 1, "conns": 1, "client": 2, "requests": [STALE_NAMESPACES]},
            {"total": 30, "conns": 3, "client": 6, "requests": [STALE_NAMESPACES]},
        ],
    }
    proc, report = run_kperf(profile)
    assert proc.returncode == 0, proc.stderr
    first, second = report["perSpecResults"]
    assert first["load"]["endedBy"] == "duration"
    assert 40 <= first["requests"]["succeeded"] <= 55  # 50 req/s for 1 s
    assert first["total"] == 0  # upstream's meaning: the configured total
    assert second["load"]["endedBy"] == "total"
    assert second["requests"]["succeeded"] == 30
    aggregated = report["aggregated"]
    assert aggregated["requests"]["succeeded"] == (
        first["requests"]["succeeded"] + second["requests"]["succeeded"]
    )
    assert aggregated["durationSeconds"] == pytest.approx(
        first["durationSeconds"] + second["durationSeconds"]
    )
    [key] = aggregated["percentileLatenciesByURL"]
    assert key.startswith("LIST https://127.0.0.1:") and key.endswith(
        "/api/v1/namespaces?resourceVersion=0&timeout=1m0s"
    )


def test_overrides_apply_to_every_spec_and_total_and_duration_both_limit(run_kperf) -> None:
    profile = {
        "version": 1,
        "specs": [
            {"total": 5, "requests": [STALE_NAMESPACES]},
            {"duration": 30, "requests": [STALE_NAMESPACES]},
        ],
    }
    proc, report = run_kperf(profile, "--total", "12", "--duration", "20", "--client", "3")
    assert proc.returncode == 0, proc.stderr
    assert [s["requests"]["succeeded"] for s in report["perSpecResults"]] == [12, 12]
    assert [s["load"]["endedBy"] for s in report["perSpecResults"]] == ["total", "total"]


def test_open_loop_constant_arrivals_hold_the_rate(run_kperf) -> None:
    rate, duration = 200, 2
    proc, report = run_kperf(
        spec([STALE_NAMESPACES], rate=rate, duration=duration, arrival="constant", client=20)
    )
    assert proc.returncode == 0, proc.stderr
    section = report["perSpecResults"][0]
    assert section["load"]["arrival"] == "constant"
    requests = section["requests"]
    # every arrival before the end is sent or counted as not sent (due while every slot was
    # busy, or while the loop slept past the end on a busy machine) …
    assert 0.98 * rate * duration <= requests["sent"] + requests["notSent"] <= rate * duration + 1
    # … and nearly all were sent
    assert requests["notSent"] <= 0.05 * rate * duration


def test_upstream_runner_group_spec_is_accepted_as_config(kperf_control_plane, tmp_path) -> None:
    source = UPSTREAM_SPECS / "runnergroup-specs" / "list_configmaps.yaml"
    config = tmp_path / "list_configmaps.yaml"
    config.write_text(source.read_text())
    proc = subprocess.run(
        [*KPERF, "runner", "run", "--config", str(config), "--total", "20", "--rate", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": str(kperf_control_plane.kubeconfig)},
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    methods = {key.split(" ")[0] for key in report["aggregated"]["requestsByURL"]}
    assert methods == {"LIST"}
    assert report["aggregated"]["requests"]["succeeded"] == 20


@pytest.mark.parametrize("loop", ["auto", "python"])
def test_ctrl_c_still_writes_what_was_measured(kperf_control_plane, tmp_path, loop: str) -> None:
    profile = tmp_path / "long.yaml"
    profile.write_text(
        "version: 1\nspecs:\n- rate: 50\n  duration: 60\n  requests:\n"
        "  - staleList: {version: v1, resource: namespaces}\n    shares: 1\n"
    )
    result = tmp_path / "report.json"
    proc = subprocess.Popen(
        [*KPERF, "runner", "run", "-v", "--config", str(profile), "--result", str(result)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            "KUBECONFIG": str(kperf_control_plane.kubeconfig),
            # the spec fits the native loop where the extension is built: Ctrl-C on both loops
            "KPERF_NATIVE_LOOP": loop,
        },
    )
    # Ctrl-C once the load has run (its progress line says so), not after a fixed sleep:
    # start-up time varies with the machine's load. Off a terminal a line comes every 10 s.
    early, sent = _stderr_until(proc, re.compile(rb"sent (\d+)"), at_least=50, timeout=60)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=30)
    stderr = (early + rest).decode(errors="replace")
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    report = json.loads(result.read_text())
    section = report["perSpecResults"][0]
    assert section["load"]["endedBy"] == "interrupted"
    assert section["connections"]["load"]["loop"] == (
        "native" if loop == "auto" and native_installed() else "python"
    )
    assert report["kperf"]["interrupted"] is True
    # what was sent until the signal (a request in flight may be cut), not the 3,000 of 60 s
    assert sent - 5 <= section["requests"]["succeeded"] <= sent + 250


def _stderr_until(
    proc: subprocess.Popen[bytes], pattern: re.Pattern[bytes], at_least: int, timeout: float
) -> tuple[bytes, int]:
    """Read ``proc``'s stderr until ``pattern``'s number reaches ``at_least``; what was read,
    and that number."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([proc.stderr], [], [], left)[0]:
            continue
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk, f"kperf ended before the load ran: {seen!r}"
        seen += chunk
        counts = [int(m) for m in pattern.findall(seen)]
        if counts and counts[-1] >= at_least:
            return seen, counts[-1]
    proc.kill()
    proc.communicate()
    raise AssertionError(f"no progress to {at_least} within {timeout:g} s: {seen[-300:]!r}")


def _run_stale_list(tmp_path: Path, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "version: 1\nspecs:\n- requests:\n  - staleList: {version: v1, resource: pods}\n"
        "    shares: 1\n"
    )
    return subprocess.run(
        [*KPERF, "runner", "run", "--config", str(profile), "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_cluster_is_one_line(tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    proc = _run_stale_list(tmp_path, kubeconfig)
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("kperf: error: cannot reach the API server")
    assert "Connection refused" in proc.stderr or "connect" in proc.stderr.lower()


def test_rejected_credentials_are_one_line(kperf_control_plane, tmp_path) -> None:
    config = json.loads(Path(kperf_control_plane.kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": "not-a-valid-token"}
    kubeconfig = tmp_path / "bad-token"
    kubeconfig.write_text(json.dumps(config))
    proc = _run_stale_list(tmp_path, kubeconfig)
    assert proc.returncode == 4
    assert "rejected the credentials" in proc.stderr and "HTTP 401" in proc.stderr


def test_bad_profile_names_file_line_path_and_allowed_values(tmp_path) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(
        "version: 1\n"
        "specs:\n"
        "  - conns: 0\n"
        "    contentType: yaml\n"
        "    requests:\n"
        "      - patch: {version: v1, resource: configmaps, name: x, keySpaceSize: 0,\n"
        "               patchType: merge, body: '{}'}\n"
        "        shares: 1\n"
    )
    proc = subprocess.run(
        [*KPERF, "runner", "run", "--config", str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{profile}:3: specs[0].conns: must be > 0 (got 0)" in proc.stderr
    assert f"{profile}:4: specs[0].contentType: must be one of json, protobuf" in proc.stderr
    assert (
        f"{profile}:6: specs[0].requests[0].patch.keySpaceSize: must be > 0 (got 0)" in proc.stderr
    )


def test_missing_config_file_is_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [*KPERF, "runner", "run", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("cannot read: No such file or directory")


def test_verbose_shows_the_effective_profile(run_kperf) -> None:
    proc, report = run_kperf(spec([STALE_NAMESPACES], total=3), "-v", "--rate", "50")
    assert proc.returncode == 0, proc.stderr
    assert "effective profile:" in proc.stderr
    assert "rate: 50.0" in proc.stderr and "total: 3" in proc.stderr
    assert report["perSpecResults"][0]["requests"]["succeeded"] == 3


def test_a_refused_background_watch_is_retried_after_a_pause(run_kperf) -> None:
    # No such resource: each session's list fails at once. Reopened without a pause it would
    # spin thousands of times in the 2.5 s; with the 1 s pause it is tried three times.
    watch = {"watch": {"version": "v1", "resource": "nosuchthings"}}
    proc, report = run_kperf(spec([watch, STALE_NAMESPACES], duration=2.5, rate=20, total=0))
    assert proc.returncode == 0, proc.stderr
    section = report["perSpecResults"][0]
    assert section["errorStats"] == {"http/404": section["requests"]["backgroundSent"]}
    assert 2 <= section["requests"]["backgroundSent"] <= 4
    assert by_method(section)["LIST"]["succeeded"] >= 40  # the load went on beside it


def test_a_spec_of_only_watches_needs_a_duration(run_kperf) -> None:
    watch = {"watch": {"version": "v1", "resource": "configmaps"}}
    proc, report = run_kperf(spec([watch]))
    assert proc.returncode == 2 and report is None
    [line] = proc.stderr.strip().splitlines()  # one line, no traceback
    assert re.fullmatch(
        r"kperf: error: \S+\.yaml:\d+: specs\[0\]\.duration: required: every request of this"
        r" spec runs in the background \(watch\), so only a duration ends it",
        line,
    ), line
