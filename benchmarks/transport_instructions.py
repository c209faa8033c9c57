"""Instructions per request (callgrind) of ``kperf runner run`` on its two transports: libcurl and
the native one (``KPERF_TRANSPORT=curl|native``), on the workloads of engine_vs_c_tools.py; on the
native transport with its closed loop in the extension (``native``) or in Python (``nat-py``,
``KPERF_NATIVE_LOOP=python``).

    .venv/bin/python benchmarks/transport_instructions.py [--workloads get,list] [--protocols h1,h2]
        [--transports native,nat-py,curl]

Needs valgrind and the kperf_native extension (scripts/setup.sh builds it when cargo is present).
Starts its own local control plane (no controllers) and stops it again.

Each figure is (Ir(long run) - Ir(short run)) / (requests(long) - requests(short)): Python's
start-up, plugin loading and the TLS handshakes cancel out, leaving what a request costs in user
space (callgrind does not count the kernel's share, the same for every client). Instruction counts
are the steady figure on a shared machine, where CPU times move with the neighbours' load. The C
tools' and the native prototype's figures to compare with are in
benchmarks/results/2026-11-29-native-prototype.txt (wrk 21,714 / h2load 33,646 per GET).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from engine_vs_c_tools import (
    CLIENT,
    H2_CONNS,
    KPERF_TOOLS,
    TOKEN_CONTEXT,
    Cluster,
    Workload,
    control_plane,
    workloads,
)

#: requests of the short and the long run per workload
COUNTS = {"get": (1000, 3000), "list": (200, 600)}
#: glibc copies large blocks with `rep movsb`, which callgrind counts as one instruction per byte,
#: and whether a copy crosses that threshold depends on how much a read() found: off, so every
#: copy is counted the same way in every run
TUNABLES = (
    "glibc.cpu.x86_rep_movsb_threshold=4294967295:glibc.cpu.x86_rep_stosb_threshold=4294967295"
)


def instructions(argv: list[str], env: dict[str, str], out: Path) -> int:
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"{argv[0]} under callgrind: {proc.stderr[-2000:]}")
    return int(match.group(1))


def per_request(
    cluster: Cluster, workdir: Path, workload: Workload, protocol: str, transport: str
) -> float:
    """Instructions per request of one workload, protocol and transport."""
    kperf = str(Path(sys.executable).parent / "kperf")
    runs = []
    for total in COUNTS[workload.name]:
        spec = {
            "contentType": "json",
            "rate": 0,
            "total": total,
            "client": CLIENT,
            "conns": CLIENT if protocol == "h1" else H2_CONNS,
            "disableHTTP2": protocol == "h1",
            "requests": [workload.kperf_request],
        }
        name = f"{workload.name}-{protocol}-{transport}-{total}"
        profile = workdir / f"{name}.json"
        profile.write_text(json.dumps({"version": 1, "specs": [spec]}))  # JSON is YAML
        result = workdir / f"{name}-report.json"
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            **KPERF_TOOLS["kperf" if transport == "curl" else transport],
            "GLIBC_TUNABLES": TUNABLES,
        }
        argv = [kperf, "runner", "run", "--config", str(profile), "--context", TOKEN_CONTEXT]
        # the server-metrics reads (TLS through the kubernetes client) are not the transport's
        argv += ["--workers", "1", "--no-server-metrics", "--result", str(result)]
        ir = instructions(argv, env, workdir / f"{name}.cg")
        report = json.loads(result.read_text())["perSpecResults"][0]
        if report["requests"]["succeeded"] != total:
            raise RuntimeError(f"{name}: {report['requests']}")
        print(f"raw {name} {ir}", flush=True)
        runs.append((total, ir))
    (n1, ir1), (n2, ir2) = runs
    return (ir2 - ir1) / (n2 - n1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--workloads", default="get,list")
    parser.add_argument("--protocols", default="h1,h2")
    parser.add_argument("--transports", default="native,curl")
    args = parser.parse_args()
    chosen = [w for w in workloads() if w.name in args.workloads.split(",")]
    with tempfile.TemporaryDirectory(prefix="kperf-instructions-") as tmp:
        workdir = Path(tmp)
        with control_plane(workdir) as cluster:
            cluster.create_objects()
            try:
                for workload in chosen:
                    for protocol in args.protocols.split(","):
                        for transport in args.transports.split(","):
                            ir = per_request(cluster, workdir, workload, protocol, transport)
                            print(f"{workload.name:4} {protocol} {transport:6} {ir:10,.0f}")
            finally:
                cluster.delete_objects()
    return 0


if __name__ == "__main__":
    sys.exit(main())
