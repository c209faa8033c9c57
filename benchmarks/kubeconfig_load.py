"""CPU a fresh process spends reading a kubeconfig into the engine's endpoint, A/B.

Reading the kubeconfig with the ``kubernetes`` package's loader (issue 11: one reader) imports
that package; a ``kperf runner run`` pays it once, before the load starts, and
``engine_vs_c_tools.py`` counts it in the client's CPU per request (whole-process CPU). This
script measures it in fresh interpreters, interleaved A B B A …, medians::

    .venv/bin/python benchmarks/kubeconfig_load.py [--baseline SRC] [--repeat 9] [--out FILE]

``SRC`` is a directory holding another ``kperf_core`` (e.g. ``git archive main kperf_core | tar
-x -C SRC``), put first on ``PYTHONPATH``. Printed: user+sys CPU of ``load_endpoint`` on a token
kubeconfig after what ``kperf runner run`` imports anyway (``kperf_core.profile``), per version,
and the candidate - baseline difference.
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
from pathlib import Path

PROBE = """
import resource, sys
import kperf_core.profile  # imported by every `kperf runner run` before the kubeconfig
before = resource.getrusage(resource.RUSAGE_SELF)
from kperf_core.kube import load_endpoint
load_endpoint(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF)
print((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime))
"""

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
}


def cpu_seconds(kubeconfig: Path, source: Path | None) -> float:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(kubeconfig)],
        capture_output=True,
        text=True,
        env=env,
        cwd=kubeconfig.parent,  # not a checkout: `-c` puts the working directory first
        check=True,
    )
    return float(done.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--baseline", type=Path, default=None, help="directory with kperf_core")
    parser.add_argument("--repeat", type=int, default=9, help="runs per version (default 9)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)

    versions: dict[str, Path | None] = {"candidate": None}
    if args.baseline is not None:
        versions = {"baseline": args.baseline, **versions}
    samples: dict[str, list[float]] = {name: [] for name in versions}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kperf-kubeconfig-bench-") as tmp:
        kubeconfig = Path(tmp) / "config"
        kubeconfig.write_text(json.dumps(KUBECONFIG))
        order = list(versions)
        for i in range(args.repeat):
            for name in order if i % 2 == 0 else reversed(order):  # A B, B A, …
                samples[name].append(cpu_seconds(kubeconfig, versions[name]))

    lines = [
        f"# kubeconfig load CPU — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs, "
        f"load average at start {load:.2f}, {args.repeat} runs each, interleaved",
        "",
        f"{'version':<11} {'CPU ms median (min-max)':<26} source",
    ]
    for name, values in samples.items():
        source = versions[name] or "this checkout"
        spread = f"({min(values) * 1e3:.0f}-{max(values) * 1e3:.0f})"
        cpu = f"{statistics.median(values) * 1e3:.0f} {spread}"
        lines.append(f"{name:<11} {cpu:<26} {source}")
    if "baseline" in samples:
        delta = statistics.median(samples["candidate"]) - statistics.median(samples["baseline"])
        lines.append(f"candidate - baseline: {delta * 1e3:+.0f} ms CPU per process")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
