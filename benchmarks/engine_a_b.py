"""A/B the engine: two kperf installs, one control plane, alternating runs, medians.

The machine is small and shared, so absolute figures drift from minute to minute; an engine change
is judged against the previous version measured in the same run, interleaved (A B B A …), on the
workloads of ``engine_vs_c_tools.py`` (same server, identity, URLs, 10 in flight, no rate limit)::

    .venv/bin/python benchmarks/engine_a_b.py --baseline /path/to/old/.venv/bin/kperf \\
        [--repeat 7] [--duration 6] [--cases get/h2,list/h1]

The candidate is the kperf next to this interpreter unless ``--candidate`` names another; both run
one engine process unless ``--baseline-args`` / ``--candidate-args`` say otherwise (the same kperf
with ``--workers 1`` and ``--workers 2`` measures what a second engine process brings). Printed
per case: req/s and the engine's CPU per request (the report's ``clientCpuSeconds`` / completed),
median and range for each, and candidate/baseline ratios of the medians.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import engine_vs_c_tools as bench  # a sibling script, not a package


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--baseline", required=True, help="the kperf executable to compare with")
    parser.add_argument(
        "--candidate",
        default=str(Path(sys.executable).parent / "kperf"),
        help="the kperf executable under test (default: next to this interpreter)",
    )
    for who in ("baseline", "candidate"):
        parser.add_argument(
            f"--{who}-args",
            default=None,
            help=f"extra `runner run` flags for the {who} (default: --workers 1 where it has it)",
        )
    parser.add_argument("--repeat", type=int, default=7, help="runs of each (default 7)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per run")
    parser.add_argument(
        "--cases", default="get/h2,list/h1", help="workload/protocol pairs (get|list, h1|h2)"
    )
    return parser.parse_args(argv)


def _one_worker(kperf: str) -> list[str]:
    usage = subprocess.run(
        [kperf, "runner", "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return ["--workers", "1"] if "--workers" in usage else []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    # SIGTERM ends the run like Ctrl-C: the control plane is stopped on the way out.
    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    cases = [tuple(case.split("/")) for case in args.cases.split(",")]
    workloads = {w.name: w for w in bench.workloads()}
    tools = {"baseline": args.baseline, "candidate": args.candidate}
    # one engine process each; a kperf from before --workers has only one
    given = {"baseline": args.baseline_args, "candidate": args.candidate_args}
    args_of = {
        name: given[name].split() if given[name] is not None else _one_worker(path)
        for name, path in tools.items()
    }
    rps: dict[tuple[str, str, str], list[float]] = {}
    cpu: dict[tuple[str, str, str], list[float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="kperf-ab-") as tmp,
        bench.control_plane(Path(tmp)) as cluster,
    ):
        cluster.create_objects()
        try:
            runner = bench.Runner(cluster, Path(tmp), args.duration)
            for repeat in range(args.repeat):
                # alternate which goes first, so that a drift in the machine's load hits both
                order = list(tools) if repeat % 2 == 0 else list(reversed(tools))
                for workload, protocol in cases:
                    for name in order:
                        runner.kperf = tools[name]
                        runner.kperf_args = args_of[name]
                        m = runner.measure(
                            bench.ToolConfig("kperf", protocol), workloads[workload], repeat
                        )
                        key = (workload, protocol, name)
                        rps.setdefault(key, []).append(m.rps)
                        cpu.setdefault(key, []).append(m.per_request_us(m.engine_cpu) or 0.0)
                        print(
                            f"  {repeat + 1}/{args.repeat} {workload}/{protocol} {name:9} "
                            f"{m.rps:7.0f} req/s  engine {cpu[key][-1]:6.1f} µs/req  "
                            f"errors {m.errors}",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            cluster.delete_objects()
    print(f"# engine A/B — {args.repeat} interleaved runs of {args.duration:g} s, medians (range)")
    print(f"# baseline  {args.baseline}\n# candidate {args.candidate}")
    print("case     who        req/s (min-max)          engine µs/req (min-max)")
    for workload, protocol in cases:
        for name in tools:
            r, c = rps[(workload, protocol, name)], cpu[(workload, protocol, name)]
            print(
                f"{workload}/{protocol:3} {name:9} {statistics.median(r):7.0f} "
                f"({min(r):.0f}-{max(r):.0f})   {statistics.median(c):8.1f} "
                f"({min(c):.1f}-{max(c):.1f})"
            )
        base = statistics.median(rps[(workload, protocol, "baseline")])
        cand = statistics.median(rps[(workload, protocol, "candidate")])
        base_cpu = statistics.median(cpu[(workload, protocol, "baseline")])
        cand_cpu = statistics.median(cpu[(workload, protocol, "candidate")])
        print(
            f"  candidate/baseline: throughput {cand / base:.3f}x, "
            f"engine CPU per request {cand_cpu / base_cpu:.3f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
