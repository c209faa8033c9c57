"""Thousands of concurrent ``watch`` sessions in one kperf process beside a load: memory,
events/s, event lag and what the load achieved (issue 11: 10,000 sessions, under 300 MB, the load
unharmed).

Run it from the repository's virtualenv; it starts its own control plane (and stops it again)
unless given ``--kubeconfig``::

    .venv/bin/python benchmarks/watch_sessions.py [--watchers 10000] [--runs 3] [--duration 30]
        [--rate 20] [--writes 1] [--kube-version v1.35.4] [--kubeconfig FILE]

Each run is one ``kperf runner run`` of one spec: ``--watchers`` ``watch`` sessions on one
namespace's ConfigMaps (``timeoutSeconds: 600``, within client-go's 5-10 minutes, so that no
session ends and is re-established inside the run) beside a paced closed-loop load on ``conns: 1,
client: 2``: a ``staleGet`` of one ConfigMap and, as the writer, a ``put`` of another at
``--writes`` of the ``--rate`` requests per second. Each PUT carries the send time in the
``kperf.io/written-at`` annotation and reaches every session as an event, whose lag (arrival -
send, one clock) the watch measures. Runs alternate three configurations: the load alone, the
load beside the watchers, and the load without its writes beside the watchers (sessions open, no
events: what idle sessions cost). Figures are medians over the runs:

* peak RSS of the kperf process (``wait4``'s ``ru_maxrss``), and its CPU seconds;
* events received per second of the load, and the share of the events due (PUTs times sessions);
* event lag p50 / p99;
* the load's achieved rate of the offered one, beside the baseline's;
* seconds until every session was established (listed, watch answered), before the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per run")
    parser.add_argument("--rate", type=int, default=20, help="the load's requests per second")
    parser.add_argument("--writes", type=int, default=1, help="of which PUTs (events) per second")
    parser.add_argument("--kubeconfig", help="use this cluster instead of a local control plane")
    parser.add_argument("--kube-version", help="the local control plane's version")
    args = parser.parse_args()
    if not 0 < args.writes < args.rate:
        parser.error("--writes must be more than 0 and less than --rate")
    if args.watchers < 1:
        parser.error("--watchers must be at least 1")

    with tempfile.TemporaryDirectory(prefix="kperf-watchbench-") as tmp:
        plane = None
        kubeconfig = args.kubeconfig
        if kubeconfig is None:
            from kperf_plugins.backends.local_control_plane.control_plane import LocalControlPlane

            plane = LocalControlPlane(
                Path(tmp) / "plane", controllers=False, kube_version=args.kube_version
            )
            print("starting a local control plane …", file=sys.stderr)
            kubeconfig = str(plane.up().kubeconfig)
        try:
            _bench(args, kubeconfig, Path(tmp))
        finally:
            if plane is not None:
                plane.down()


def _bench(args: argparse.Namespace, kubeconfig: str, tmp: Path) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api)
    version = client.VersionApi(api).get_code().git_version
    namespace = f"kperf-watchbench-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        for name in ("target", "written-0"):
            core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
            )
        print(
            f"# Kubernetes {version}; {os.cpu_count()} cores; load: {args.rate} req/s closed loop "
            f"(staleGet, {args.writes} put/s), conns 1, client 2, {args.duration:g} s; "
            f"{args.runs} runs of each, medians; load average at start "
            f"{os.getloadavg()[0]:.1f}"
        )
        # (watchers, writes per second): the load alone, beside the watchers, and beside them
        # without writes (no events: what the sessions cost when idle)
        rows: dict[tuple[int, int], list[dict[str, float]]] = {
            (0, args.writes): [],
            (args.watchers, args.writes): [],
            (args.watchers, 0): [],
        }
        for run in range(args.runs):
            for watchers, writes in rows:
                figures = _run(args, kubeconfig, tmp, namespace, watchers, writes)
                rows[watchers, writes].append(figures)
                print(
                    f"# run {run + 1}, {watchers} watchers, {writes} writes/s: "
                    f"{json.dumps(figures)}",
                    flush=True,
                )
        _print_table(rows, args)
    finally:
        core.delete_namespace(namespace)
        api.close()


def _profile(
    args: argparse.Namespace, namespace: str, watchers: int, writes: int
) -> dict[str, Any]:
    ref = {"version": "v1", "resource": "configmaps", "namespace": namespace}
    requests: list[dict[str, Any]] = [
        {"staleGet": {**ref, "name": "target"}, "shares": args.rate - writes}
    ]
    if writes:
        requests.append(
            {
                "put": {**ref, "name": "written", "keySpaceSize": 1, "payloadSize": 16},
                "shares": writes,
            }
        )
    if watchers:
        requests.insert(0, {"watch": {**ref, "watchers": watchers, "timeoutSeconds": 600}})
    spec = {
        "rate": args.rate,
        "duration": args.duration,
        "total": 0,
        "conns": 1,
        "client": 2,
        "requests": requests,
    }
    return {"version": 1, "specs": [spec]}


def _run(
    args: argparse.Namespace, kubeconfig: str, tmp: Path, namespace: str, watchers: int, writes: int
) -> dict[str, float]:
    profile = tmp / f"profile-{watchers}-{writes}.json"
    profile.write_text(json.dumps(_profile(args, namespace, watchers, writes)))  # JSON is YAML
    result = tmp / "report.json"
    result.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*KPERF, "runner", "run", "--config", str(profile), "--result", str(result)],
        env={**os.environ, "KUBECONFIG": kubeconfig},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait4 gives this child's own peak RSS and CPU (not the other runs')
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not result.exists():
        raise SystemExit(f"kperf failed ({proc.returncode}): {stderr.strip()}")
    spec = json.loads(result.read_text())["perSpecResults"][0]
    load, by_url = spec["load"], spec["requestsByURL"]
    puts = sum(v["succeeded"] for k, v in by_url.items() if k.startswith("PUT "))
    figures = {
        "peakRssMiB": usage.ru_maxrss / 1024,
        "cpuSeconds": usage.ru_utime + usage.ru_stime,
        "wallSeconds": time.perf_counter() - started,
        "achievedRate": load["achievedRate"],
        "offeredRate": load["offeredRate"],
        "limits": len(spec.get("limits") or ()),
    }
    if watchers:
        [facts] = [f for f in spec["requestTypeFacts"] if f["type"] == "watch"]
        events = sum(facts["events"].values())
        lag = dict((p, s) for p, s in facts["eventLag"].get("percentiles", ()))
        figures |= {
            "establishedSeconds": spec["connections"]["background"]["establishedSeconds"],
            "eventsPerSecond": events / spec["durationSeconds"],
            "eventsDelivered": events / (puts * watchers) if puts else 0.0,
            "lagP50": lag.get(0.5, float("nan")),
            "lagP99": lag.get(0.99, float("nan")),
            "connections": spec["connections"]["background"]["opened"],
        }
    return figures


def _print_table(
    rows: dict[tuple[int, int], list[dict[str, float]]], args: argparse.Namespace
) -> None:
    print(
        "watchers  writes/s  peak RSS  CPU s  load req/s of offered  established s  events/s  "
        "delivered  lag p50  lag p99  limits"
    )
    for (watchers, writes), runs in rows.items():

        def median(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        line = (
            f"{watchers:8d}  {writes:8d}  {median('peakRssMiB'):4.0f} MiB  "
            f"{median('cpuSeconds'):5.1f}  "
            f"{median('achievedRate'):6.2f} of {args.rate:<3d} "
            f"({median('achievedRate') / args.rate:4.0%})"
        )
        if watchers:
            line += f"  {median('establishedSeconds'):13.1f}  {median('eventsPerSecond'):8.0f}"
        else:
            line += " " * 25
        if watchers and writes:
            line += (
                f"  {median('eventsDelivered'):9.1%}  {median('lagP50') * 1000:4.0f} ms"
                f"  {median('lagP99') * 1000:4.0f} ms"
            )
        else:
            line += " " * 29
        print(f"{line}  {max(r['limits'] for r in runs):6.0f}")


if __name__ == "__main__":
    main()
