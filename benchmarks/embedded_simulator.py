"""How the embedded node simulator copes at upstream's scenario sizes.

Run it from the repository's virtualenv (it starts its own control plane and stops it again)::

    .venv/bin/python benchmarks/embedded_simulator.py [--nodes 100] [--pods 3000]
        [--parallelism 100] [--stage-delay 1 --stage-jitter 4]

Defaults are upstream's ``node100_job1_pod3k``: 100 virtual nodes and a Job of 3,000 pods run 100
at a time, with kwok's stage timing (1-5 s per transition). It prints the time until the nodes are
Ready and until every pod Succeeded, the simulator's CPU time and peak memory, and the requests it
added to the apiserver (from ``apiserver_request_total``: the PATCHes of pods/status and of leases
are the simulator's alone here — no kubelet runs).
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

REPO = Path(__file__).resolve().parents[1]
KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=3000)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--stage-delay", type=float, default=1.0)
    parser.add_argument("--stage-jitter", type=float, default=4.0)
    args = parser.parse_args()

    from kperf_plugins.backends.local_control_plane.control_plane import LocalControlPlane
    from kubernetes import client, config

    from kperf_core.virtual_nodes import job_on_virtual_nodes

    with tempfile.TemporaryDirectory(prefix="kperf-simbench-") as tmp:
        plane = LocalControlPlane(Path(tmp) / "plane")
        env = {**os.environ, "KPERF_STATE_DIR": f"{tmp}/state"}
        try:
            print("starting a local control plane …", file=sys.stderr)
            status = plane.up()
            env["KUBECONFIG"] = str(status.kubeconfig)
            api = config.new_client_from_config(config_file=str(status.kubeconfig))
            core, batch = client.CoreV1Api(api), client.BatchV1Api(api)

            before = _requests(api)
            started = time.monotonic()
            _kperf(env, "vc", "nodepool", "add", "bench", "--nodes", str(args.nodes),
                   "--stage-delay", str(args.stage_delay), "--stage-jitter", str(args.stage_jitter),
                   "--wait", "600")  # fmt: skip
            nodes_ready = time.monotonic() - started
            pid = json.loads(
                next(Path(tmp, "state").glob("simulators/*/simulator.pid")).read_text()
            )["pid"]
            cpu_after_nodes = _cpu_seconds(pid)

            core.create_namespace({"metadata": {"name": "simbench"}})
            started = time.monotonic()
            batch.create_namespaced_job(
                "simbench", job_on_virtual_nodes("job", args.pods, args.parallelism)
            )
            while (batch.read_namespaced_job("job", "simbench").status.succeeded or 0) < args.pods:
                time.sleep(1)
            job_done = time.monotonic() - started
            cpu = _cpu_seconds(pid)
            peak_rss = _peak_rss_mib(pid)
            after = _requests(api)
            delta = after - before

            print(f"# embedded simulator: {args.nodes} nodes, Job of {args.pods} pods "
                  f"(parallelism {args.parallelism}), stage delay {args.stage_delay} s + up to "
                  f"{args.stage_jitter} s, {os.cpu_count()} CPUs")  # fmt: skip
            print(f"nodes Ready after            {nodes_ready:8.1f} s")
            print(f"all pods Succeeded after     {job_done:8.1f} s "
                  f"({args.pods / job_done:.1f} pods/s)")  # fmt: skip
            print(f"simulator CPU, nodes         {cpu_after_nodes:8.2f} s")
            print(f"simulator CPU, whole Job     {cpu - cpu_after_nodes:8.2f} s "
                  f"({(cpu - cpu_after_nodes) / args.pods * 1000:.2f} ms per pod)")  # fmt: skip
            print(f"simulator peak memory        {peak_rss:8.1f} MiB")
            status_patches = delta[("PATCH", "pods", "status")]
            lease_patches = delta[("PATCH", "leases", "")]
            elapsed = nodes_ready + job_done
            print(f"PATCH pods/status            {status_patches:8d} "
                  f"({status_patches / args.pods:.2f} per pod)")  # fmt: skip
            print(f"PATCH leases                 {lease_patches:8d} "
                  f"({lease_patches / elapsed:.1f}/s for {args.nodes} nodes)")  # fmt: skip
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
