"""``runkperf bench`` cases at upstream's size on the local control plane: what a run costs.

Run it from the repository's virtualenv (it starts a control plane per case and stops it)::

    .venv/bin/python benchmarks/bench_cases.py [--case node10_job1_pod100=1]
        [--case node100_job1_pod3k=1,total=3600] [--out benchmarks/results/FILE.txt]

Each ``--case NAME=SCALE[,total=N]`` is one whole ``runkperf bench --scale SCALE [--total N] NAME``
(defaults: upstream's ``node10_job1_pod100`` and ``node100_job1_pod3k`` at full size; ``total`` is
upstream's own flag, requests per runner) on a fresh local control plane,
with the defaults there: embedded virtual nodes and runners executed by the simulator. It prints
per case the wall time, the CPU time and peak resident memory of the kperf client (the bench
command and the runner processes), of the embedded simulator and of the control plane (etcd,
apiserver, controllers) — sampled from /proc — and the requests and their latency from the report.
Progress of the runs goes to stderr; the figures to stdout and, with ``--out``, to that file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RUNKPERF = [sys.executable, "-c", "from kperf_core.cli import runkperf_main; runkperf_main()"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
DEFAULT_CASES = ("node10_job1_pod100=1", "node100_job1_pod3k=1")
#: process groups of a run, in the order the table shows them
GROUPS = ("client", "runners", "simulator", "control plane")
SAMPLE_SECONDS = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append", metavar="NAME=SCALE", default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reports", type=Path, default=None, help="keep each report here")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per case")
    args = parser.parse_args()
    cases = []
    for item in args.case or DEFAULT_CASES:
        name, _, rest = item.partition("=")
        scale, _, total = rest.partition(",total=")
        try:
            cases.append((name, float(scale or 1), int(total) if total else None))
        except ValueError:
            sys.exit(f"--case {item}: SCALE and N must be numbers (NAME=SCALE[,total=N])")

    lines = [
        f"# benchmarks/bench_cases.py, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the start)",
    ]
    _emit(lines, args.out)
    for name, scale, total in cases:
        figures = _run_case(name, scale, total, args.timeout)
        if args.reports:
            args.reports.mkdir(parents=True, exist_ok=True)
            (args.reports / f"{name}-{scale:g}.json").write_text(json.dumps(figures["report"]))
        lines += _describe(name, scale, figures)
        _emit(lines, args.out)


def _emit(lines: list[str], out: Path | None) -> None:
    """Print the new lines; rewrite ``out`` whole (a long run keeps what is done so far)."""
    print("\n".join(lines[_emit.shown :]), flush=True)  # type: ignore[attr-defined]
    _emit.shown = len(lines)  # type: ignore[attr-defined]
    if out is not None:
        out.write_text("\n".join(lines) + "\n")


_emit.shown = 0  # type: ignore[attr-defined]


def _run_case(name: str, scale: float, total: int | None, timeout: float) -> dict[str, Any]:
    from kperf_plugins.backends.local_control_plane.control_plane import LocalControlPlane

    with tempfile.TemporaryDirectory(prefix="kperf-benchcases-") as tmp:
        plane = LocalControlPlane(Path(tmp) / "plane")
        env = {**os.environ, "KPERF_STATE_DIR": f"{tmp}/state"}
        try:
            print(f"[{name}] starting a local control plane …", file=sys.stderr, flush=True)
            status = plane.up()
            env["KUBECONFIG"] = str(status.kubeconfig)
            command = ["bench", "--scale", str(scale), name]
            if total:
                command += ["--total", str(total)]
            print(f"[{name}] runkperf {' '.join(command)}", file=sys.stderr, flush=True)
            started = time.monotonic()
            proc = subprocess.Popen(
                [*RUNKPERF, *command],
                stdout=subprocess.PIPE,
                stderr=None,  # its progress lines go to ours
                env=env,
            )
            sampler = Sampler(proc.pid, Path(tmp, "state"))
            sampler.start()
            try:
                stdout, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                # the bench removes what it created on SIGTERM as on Ctrl-C (SIGINT may be ignored
                # when this script runs in the background)
                proc.send_signal(signal.SIGTERM)
                proc.wait()
                sys.exit(f"[{name}] did not finish in {timeout:g} s; interrupted")
            finally:
                sampler.stop()
            wall = time.monotonic() - started
            if proc.returncode:
                sys.exit(f"[{name}] runkperf bench exited with {proc.returncode}")
            return {
                "version": status.version or "?",
                "wall": wall,
                "report": json.loads(stdout),
                "cpu": sampler.cpu(),
                "rss": sampler.peak_rss,
                "load": os.getloadavg()[0],
            }
        finally:
            plane.down()


class Sampler:
    """CPU seconds and peak resident memory of a run's processes, by group, from /proc.

    Groups by ancestry: the simulator (found by its pid file), the processes it executes (runner
    pods: ``runners``), the bench command and its other children (``client``), and everything
    else this benchmark started (the control plane). A process's CPU is its last sampled
    utime+stime, so one that exits loses at most one sampling interval.
    """

    def __init__(self, bench_pid: int, state_dir: Path) -> None:
        self.bench_pid = bench_pid
        self.state_dir = state_dir
        self.cpu_by_pid: dict[tuple[int, int], tuple[str, float]] = {}
        #: every simulator seen: its pid file goes before it exits
        self.simulators: set[int] = set()
        self.peak_rss = dict.fromkeys(GROUPS, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu(self) -> dict[str, float]:
        totals = dict.fromkeys(GROUPS, 0.0)
        for group, seconds in self.cpu_by_pid.values():
            totals[group] += seconds
        return totals

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()
        self._sample()

    def _simulators(self) -> set[int]:
        for pid_file in self.state_dir.glob("simulators/*/simulator.pid"):
            try:
                self.simulators.add(int(json.loads(pid_file.read_text())["pid"]))
            except (OSError, ValueError, KeyError):
                continue
        return self.simulators

    def _sample(self) -> None:
        stats = {}
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields from the state on: ppid 1, utime 11, stime 12, starttime 19, rss 21
            stats[int(entry.name)] = fields
        simulators = self._simulators()
        rss = dict.fromkeys(GROUPS, 0)
        for pid, fields in stats.items():
            group = self._group(pid, stats, simulators)
            if group is None:
                continue
            key = (pid, int(fields[19]))  # pids are reused; the start time tells them apart
            # a process keeps its first group (a runner whose simulator went is still a runner)
            group = self.cpu_by_pid.get(key, (group, 0.0))[0]
            self.cpu_by_pid[key] = (group, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
            rss[group] += int(fields[21]) * PAGE_SIZE
        for group, total in rss.items():
            self.peak_rss[group] = max(self.peak_rss[group], total)

    def _group(self, pid: int, stats: dict[int, list[str]], simulators: set[int]) -> str | None:
        if pid in simulators:
            return "simulator"
        me = os.getpid()
        seen = pid
        while seen in stats and seen > 1:
            parent = int(stats[seen][1])
            if parent in simulators:
                return "runners"
            if seen == self.bench_pid:
                return "client"
            if parent == me:
                return "control plane"
            seen = parent
        return None


def _describe(name: str, scale: float, figures: dict[str, Any]) -> list[str]:
    report = figures["report"]
    result, info, spec = report["result"], report["info"], report["loadSpec"]
    requests = report.get("aggregated", {}).get("requests", {})
    latencies = {float(p): s for p, s in result.get("percentileLatencies", [])}
    wall = figures["wall"]
    runners = info.get("runningTime") or 0.0
    succeeded = requests.get("succeeded", 0)
    lines = [
        "",
        f"## {name} at --scale {scale:g} on Kubernetes {figures['version']} "
        f"(load average {figures['load']:.1f} at the end)",
        f"workload: {info.get('nodes')} virtual nodes, Job of {info.get('jobPods')} pods "
        f"(parallelism {info.get('jobParallelism')}): {info.get('jobsCreated')} Jobs created, "
        f"{info.get('jobsCompleted')} completed, {info.get('podsSucceeded')} pods Succeeded",
        f"runners: {spec['count']} x {spec['loadProfile']['specs'][0].get('total')} requests "
        f"at {spec['loadProfile']['specs'][0]['rate']}/s each",
        f"wall time            {wall:9.1f} s   (runner group placed -> every report: "
        f"{runners:.1f} s)",
        f"requests             {requests.get('sent', 0):9d} sent: {succeeded} succeeded, "
        f"{requests.get('failed', 0)} failed ({succeeded / runners if runners else 0:.1f} "
        "successes/s over the runner group's time)",
        "latency (s)          "
        + "  ".join(f"p{p * 100:g} {latencies[p]:.4f}" for p in (0.5, 0.9, 0.99) if p in latencies),
        f"{'':20} {'CPU (s)':>9} {'% of a core':>12} {'peak RSS (MiB)':>15}",
    ]
    for group in GROUPS:
        cpu = figures["cpu"][group]
        lines.append(
            f"{group:20} {cpu:9.1f} {cpu / wall:12.0%} {figures['rss'][group] / 2**20:15.0f}"
        )
    lists = [c for c in (report.get("server") or {}).get("calls", ()) if c["verb"] == "LIST"]
    if lists:
        lines.append(
            "the API server counted (its view, runner group placed -> last runner done): "
            + "; ".join(
                f"LIST {c['resource']} ({c['scope']}) "
                + ", ".join(f"{n} x {code}" for code, n in sorted(c["codes"].items()))
                for c in lists
            )
        )
    load = report["perSpecResults"][0]["load"]
    lines.append(
        "(client: the bench command; runners: the runner processes the simulator executes, whose "
        f"reports say, summed over them: {load['clientCpuSeconds']:.1f} s of engine CPU, "
        f"{load['achievedRate']:.1f}/s achieved of {load['offeredRate']:g}/s offered)"
    )
    return lines


if __name__ == "__main__":
    main()
