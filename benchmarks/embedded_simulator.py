"""How the node-pool backends cope at upstream's scenario sizes: kperf's embedded simulator and the
real kwok controller (run as a local process with the chart's configuration), side by side.

Run it from the repository's virtualenv (it starts a control plane per backend and stops it)::

    .venv/bin/python benchmarks/embedded_simulator.py [--backends embedded,kwok] [--nodes 100]
        [--pods 3000] [--parallelism 100] [--stage-delay 1 --stage-jitter 4] [--kube-version V]

Defaults are upstream's ``node100_job1_pod3k``: 100 virtual nodes and a Job of 3,000 pods run 100
at a time, with kwok's stage timing (1-5 s per transition: the chart's Stage objects for kwok,
``--stage-delay``/``--stage-jitter`` for the embedded simulator). It prints, per backend, the time
until the nodes are Ready and until every pod Succeeded, the controller's CPU time and peak memory,
and the requests it added to the apiserver (from ``apiserver_request_total``: the PATCHes of
pods/status and the lease renewals are the node controller's alone here — no kubelet runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Where each backend's node controller records its pid, under the state directory.
PID_FILES = {"embedded": "simulators/*/simulator.pid", "kwok": "kwok/*/bench/kwok.pid"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="embedded,kwok")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=3000)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--stage-delay", type=float, default=1.0)
    parser.add_argument("--stage-jitter", type=float, default=4.0)
    parser.add_argument("--kube-version", default=None)
    args = parser.parse_args()
    backends = args.backends.split(",")
    unknown = set(backends) - set(PID_FILES)
    if unknown:
        sys.exit(f"--backends: unknown {', '.join(sorted(unknown))} (embedded, kwok)")

    results = {backend: _run(backend, args) for backend in backends}

    version = next(iter(results.values()))["version"]
    print(
        f"# node-pool backends on Kubernetes {version}: {args.nodes} nodes, Job of {args.pods} "
        f"pods (parallelism {args.parallelism}); stages: embedded {args.stage_delay} s + up to "
        f"{args.stage_jitter} s, kwok the chart's Stage objects; {os.cpu_count()} CPUs"
    )
    print(f"{'':32}" + "".join(f"{b:>14}" for b in backends))
    rows = [
        ("nodes Ready after (s)", "nodes_ready", "{:.1f}"),
        ("all pods Succeeded after (s)", "job_done", "{:.1f}"),
        ("pods/s", "pods_per_s", "{:.1f}"),
        ("controller CPU, nodes (s)", "cpu_nodes", "{:.2f}"),
        ("controller CPU, whole Job (s)", "cpu_job", "{:.2f}"),
        ("controller CPU per pod (ms)", "cpu_per_pod_ms", "{:.2f}"),
        ("controller peak memory (MiB)", "peak_rss", "{:.1f}"),
        ("PATCH pods/status per pod", "status_per_pod", "{:.2f}"),
        ("lease renewals per second", "leases_per_s", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        print(f"{label:32}" + "".join(f"{fmt.format(results[b][key]):>14}" for b in backends))


def _run(backend: str, args: argparse.Namespace) -> dict[str, float | str]:
    from kperf_plugins.backends.local_control_plane.control_plane import LocalControlPlane
    from kubernetes import client, config

    from kperf_core.virtual_nodes import job_on_virtual_nodes

    with tempfile.TemporaryDirectory(prefix="kperf-simbench-") as tmp:
        plane = LocalControlPlane(Path(tmp) / "plane", kube_version=args.kube_version)
        env = {**os.environ, "KPERF_STATE_DIR": f"{tmp}/state"}
        try:
            print(f"[{backend}] starting a local control plane …", file=sys.stderr)
            status = plane.up()
            env["KUBECONFIG"] = str(status.kubeconfig)
            api = config.new_client_from_config(config_file=str(status.kubeconfig))
            core, batch = client.CoreV1Api(api), client.BatchV1Api(api)

            before = _requests(api)
            started = time.monotonic()
            _kperf(env, "vc", "nodepool", "add", "bench", "--nodes", str(args.nodes),
                   "--backend", backend,
                   "--stage-delay", str(args.stage_delay), "--stage-jitter", str(args.stage_jitter),
                   "--wait", "600")  # fmt: skip
            nodes_ready = time.monotonic() - started
            pid_file = next(Path(tmp, "state").glob(PID_FILES[backend]))
            pid = json.loads(pid_file.read_text())["pid"]
            cpu_after_nodes = _cpu_seconds(pid)

            print(f"[{backend}] nodes Ready; running the Job …", file=sys.stderr)
            core.create_namespace({"metadata": {"name": "simbench"}})
            started = time.monotonic()
            batch.create_namespaced_job(
                "simbench", job_on_virtual_nodes("job", args.pods, args.parallelism)
            )
            while (batch.read_namespaced_job("job", "simbench").status.succeeded or 0) < args.pods:
                time.sleep(1)
            job_done = time.monotonic() - started
            cpu = _cpu_seconds(pid)
            delta = _requests(api) - before
            elapsed = nodes_ready + job_done
            return {
                "version": status.version or "?",
                "nodes_ready": nodes_ready,
                "job_done": job_done,
                "pods_per_s": args.pods / job_done,
                "cpu_nodes": cpu_after_nodes,
                "cpu_job": cpu - cpu_after_nodes,
                "cpu_per_pod_ms": (cpu - cpu_after_nodes) / args.pods * 1000,
                "peak_rss": _peak_rss_mib(pid),
                "status_per_pod": delta[("PATCH", "pods", "status")] / args.pods,
                # the simulator PATCHes its leases, kwok PUTs them
                "leases_per_s": (delta[("PATCH", "leases", "")] + delta[("PUT", "leases", "")])
                / elapsed,
            }
        finally:
            subprocess.run([*KPERF, "vc", "nodepool", "delete", "bench"], env=env,
                           capture_output=True, timeout=300)  # fmt: skip
            plane.down()


def _kperf(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([*KPERF, *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"kperf {' '.join(args)} failed: {proc.stderr.strip()}")


def _requests(api: object) -> Counter[tuple[str, str, str]]:
    # the client's connection pool carries the kubeconfig's client certificate
    pool = api.rest_client.pool_manager  # type: ignore[attr-defined]
    text = pool.request("GET", api.configuration.host + "/metrics").data.decode()  # type: ignore[attr-defined]
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        counts[(labels["verb"], labels["resource"], labels.get("subresource", ""))] += int(
            float(line.rsplit(" ", 1)[1])
        )
    return counts


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
