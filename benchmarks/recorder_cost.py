"""What recording costs, outside the engine: ``CompletionRecorder.success`` per request and
``close_period`` (the time series' once-a-second step) per second of run, for two source trees.

The engine A/B (``engine_a_b.py``) judges a change on whole runs, where a few hundred nanoseconds
per request drown in the machine's noise; this isolates the recorder. Each measurement runs in a
fresh interpreter, the two trees interleaved, and the median of the runs is printed::

    .venv/bin/python benchmarks/recorder_cost.py --baseline /path/to/old/checkout [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

#: Run in a child interpreter with the tree first on sys.path: prints ns per success() and, if
#: the tree has a time series, µs per close_period() of each (keys, completions/s) load.
PROBE = r"""
import random, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from kperf_core.engine.recorder import CompletionRecorder

rng = random.Random(1)
n = 100_000
values = [rng.lognormvariate(-5, 1.0) for _ in range(n)]  # ~hundreds of buckets per key
keys = [f"GET /api/v1/namespaces/n/configmaps/k{i % 10}" for i in range(n)]
runs = []
for _ in range(5):
    recorder = CompletionRecorder(False)
    start = time.process_time()
    for key, value in zip(keys, values):
        recorder.success(key, value, 100)
    runs.append((time.process_time() - start) / n * 1e9)
figures = [min(runs)]
for key_count, per_second in ((1, 1000), (10, 1000), (50, 5000)):
    recorder = CompletionRecorder(False)
    if not hasattr(recorder, "close_period"):
        figures.append(float("nan"))
        continue
    recorder.start_series(0.0)
    spent = []
    for second in range(20):
        for i in range(per_second):
            recorder.success(f"k{i % key_count}", rng.lognormvariate(-5, 1.0), 100)
        start = time.process_time()
        recorder.close_period(second + 1.0)
        spent.append(time.process_time() - start)
    figures.append(statistics.median(spent) * 1e6)
print(" ".join(f"{f:.1f}" for f in figures))
"""

LOADS = ("1 key x 1000/s", "10 keys x 1000/s", "50 keys x 5000/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--baseline", required=True, help="the source tree to compare with")
    parser.add_argument("--candidate", default=str(Path(__file__).parents[1]))
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args(argv)
    trees = {"baseline": args.baseline, "candidate": args.candidate}
    figures: dict[str, list[list[float]]] = {who: [] for who in trees}
    for round_ in range(args.repeat):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for who in order:
            out = subprocess.run(
                [sys.executable, "-c", PROBE, trees[who]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            figures[who].append([float(f) for f in out.split()])
    print(f"# recorder cost — {args.repeat} interleaved runs, medians")
    for who, tree in trees.items():
        print(f"# {who:9} {tree}")
    medians = {
        who: [statistics.median(run[i] for run in runs) for i in range(1 + len(LOADS))]
        for who, runs in figures.items()
    }
    for who, values in medians.items():
        ticks = ", ".join(f"{load} {v:.0f} µs" for load, v in zip(LOADS, values[1:], strict=True))
        print(f"{who:9}  success() {values[0]:.0f} ns/request;  close_period(): {ticks}")
    base, cand = medians["baseline"][0], medians["candidate"][0]
    print(f"  candidate/baseline: success() {cand / base:.3f}x ({cand - base:+.0f} ns/request)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
