"""Throughput of 1, 2 and 4 runners of one runner group on the local control plane.

Run it from the repository's virtualenv (it starts its own control plane and stops it again)::

    .venv/bin/python benchmarks/runner_groups.py [--runners 1 2 4] [--duration 10]

Each round is a whole ``kperf rg run`` → ``rg result`` → ``rg delete`` with runners executed by
the embedded simulator. The profile is client-bound on purpose: unlimited rate, closed loop,
``staleGet`` of one small ConfigMap (served from the watch cache). It prints per round the merged
throughput, the ratio to one runner, the runners' client CPU (from their reports) and the peak
resident memory of each runner process (sampled from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]
EXECUTOR_LABEL = "kperf.io/executes-kperf-pods=true"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()

    from kperf_plugins.backends.local_control_plane.control_plane import LocalControlPlane

    with tempfile.TemporaryDirectory(prefix="kperf-rgbench-") as tmp:
        plane = LocalControlPlane(Path(tmp) / "plane")
        env = {**os.environ, "KPERF_STATE_DIR": f"{tmp}/state"}
        try:
            print("starting a local control plane …", file=sys.stderr)
            env["KUBECONFIG"] = str(plane.up().kubeconfig)
            _kperf(env, "vc", "nodepool", "add", "runners", "--nodes", "4",
                   "--node-labels", EXECUTOR_LABEL, "--stage-delay", "0.1",
                   "--stage-jitter", "0.1")  # fmt: skip
            print(f"cores: {os.cpu_count()}; profile: staleGet, rate unlimited, conns 2, "
                  f"client 8, {args.duration:.0f} s per runner")  # fmt: skip
            print("runners  req/s    ratio  client CPU/runner  peak RSS/runner")
            baseline = None
            for count in args.runners:
                rate, cpu, rss = _round(env, Path(tmp), count, args.duration)
                baseline = baseline or rate
                print(f"{count:7d}  {rate:7.0f}  {rate / baseline:5.2f}  "
                      f"{cpu:12.0%} of a core  {rss / 2**20:9.0f} MiB   "
                      f"(load average {os.getloadavg()[0]:.1f})")  # fmt: skip
        finally:
            plane.down()


def _round(env: dict[str, str], tmp: Path, count: int, duration: float) -> tuple[float, float, int]:
    spec = tmp / f"spec-{count}.yaml"
    spec.write_text(
        f"count: {count}\nloadProfile:\n  version: 1\n  specs:\n"
        f"    - rate: 0\n      duration: {duration}\n      conns: 2\n      client: 8\n"
        "      requests:\n        - staleGet: {version: v1, resource: configmaps, "
        "namespace: default, name: kube-root-ca.crt}\n          shares: 1\n"
    )
    peak: dict[int, int] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(peak, stop), daemon=True)
    sampler.start()
    try:
        _kperf(env, "rg", "run", "--runnergroup", f"file://{spec}", "--runner-image", "bench",
               "--affinity", EXECUTOR_LABEL,
               "--toleration", "kperf.io/nodepool=fake:NoSchedule")  # fmt: skip
        report = json.loads(_kperf(env, "rg", "result", "--timeout", "600"))
    finally:
        stop.set()
        sampler.join()
        _kperf(env, "rg", "delete")
    if report["missing"] or not report["perSpecResults"]:
        groups = [
            (g["name"], g["state"], g["succeeded"], g["failed"]) for g in report["runnerGroups"]
        ]
        raise SystemExit(f"runners without a result: {report['missing']} (groups: {groups})")
    spec = report["perSpecResults"][0]
    seconds = spec["durationSeconds"]  # the longest runner's
    cpu = spec["load"]["clientCpuSeconds"] / count / seconds
    # Requests of all runners over the longest runner's time: runners start a little apart, so
    # this is a lower bound of the group's rate (the sum of the runners' rates an upper one).
    return spec["requests"]["succeeded"] / seconds, cpu, max(peak.values(), default=0)


def _sample_rss(peak: dict[int, int], stop: threading.Event) -> None:
    """Peak VmRSS of every ``kperf runner run`` process (the runners' load generators)."""
    while not stop.wait(0.2):
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                words = (proc / "cmdline").read_bytes().split(b"\0")
                if b"runner" not in words or b"run" not in words or b"runnergroup" in words:
                    continue
                status = (proc / "status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    peak[int(proc.name)] = max(peak.get(int(proc.name), 0), rss)


def _kperf(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([*KPERF, *args], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"kperf {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


if __name__ == "__main__":
    main()
