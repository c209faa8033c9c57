"""Compare ``kperf runner run`` with the C load generators wrk (HTTP/1.1) and h2load (HTTP/2).

Run it from the repository's virtualenv (it starts its own control plane and stops it again)::

    .venv/bin/python benchmarks/engine_vs_c_tools.py [--repeat 3] [--quick] [--json FILE]

Needs ``wrk`` and ``h2load`` on PATH (Debian: ``apt-get install -y wrk nghttp2-client``) and the
control-plane binaries ``kperf local provision`` installs.

What it measures
================

One run starts one local control plane (etcd + kube-apiserver on loopback, no controllers) and
points every tool at the same server with the same identity (the admin bearer token: kperf uses the
kubeconfig's ``kperf-local-token`` context, wrk and h2load send ``Authorization: Bearer``), the
same URL and the same ``Accept`` / ``Accept-Encoding`` headers kperf sends.

Throughput and client CPU, two workloads at 10 requests in flight, closed loop, no rate limit:

* ``get``  — GET of one small ConfigMap from the watch cache
  (``/api/v1/namespaces/default/configmaps/<name>?resourceVersion=0&timeout=1m0s``);
* ``list`` — LIST of 50 ConfigMaps of ~1.5 KB each in a namespace of their own,
  ``resourceVersion=0``.

Each workload is run over HTTP/1.1 (wrk ``-t1 -c10`` vs kperf ``--disable-http2`` client=10: ten
connections) and over HTTP/2 (h2load ``-c2 -m5`` vs kperf conns=2 client=10: two connections of five
streams). Every tool is single-threaded here. A run lasts ``--duration`` seconds; the four tool
configurations of a workload are interleaved within each repeat (their order rotates from repeat to
repeat) and the tables show medians over ``--repeat`` repeats.

* **req/s** — successful requests / the tool's own measurement window (wrk: its ``done()`` summary;
  h2load: ``finished in``; kperf: ``requests.succeeded / durationSeconds`` of the report).
* **client CPU µs/req** — user+sys CPU of the whole client process (``getrusage(RUSAGE_CHILDREN)``
  deltas around ``subprocess.run``; runs are sequential) / completed requests. For kperf this
  includes interpreter start-up, plugin loading and profile parsing (a fixed cost, amortised over
  the run); the **engine** column is the report's ``clientCpuSeconds`` (the measured window only).
* **server CPU µs/req** — kube-apiserver + etcd CPU (``/proc/<pid>/stat``) / completed requests:
  shows whether the tools asked the server for the same work.
* **B/resp** — bytes per response as each tool counts them (kperf: the body; wrk: status line,
  headers and body; h2load: every frame, HPACK-compressed headers included): a check that every tool
  got the same response (a 50-object LIST is ~95 KB, below the apiserver's 128 KB gzip threshold).
* **other cores** — CPU the rest of the machine used during the run (``/proc/stat`` busy time minus
  client and server), a noise indicator.

Ratios are kperf's median over the C tool's median; the per-repeat (paired) ratios are shown as a
range. Targets (issue 11): throughput ≥ 0.9x the C tool's, client CPU per request ≤ 2x. Because
client and server share the CPUs, throughput is roughly ``cores / (client + server CPU per
request)``; the script also prints the client CPU per request that would reach the throughput
target on this box (assuming kperf cost the server what the C tool does), which can be tighter than
2x.

Where the ``kperf_native`` extension is installed, kperf is measured three times per repeat: on
libcurl (``kperf``, ``KPERF_TRANSPORT=curl``), on its native transport with the closed loop inside
the extension (``native``, ``KPERF_NATIVE_LOOP=native``: the fast lane) and on its native transport
with the engine's Python loop (``nat-py``, ``KPERF_NATIVE_LOOP=python``), each against the C tool
(``--no-native``: libcurl only).

Also:

* **rate accuracy** — kperf at ``rate: 100`` and ``rate: 1000`` (client 10), closed loop and
  ``arrival: constant`` (open loop): achieved = ``succeeded / durationSeconds``;
* **fidelity** — ``apiserver_request_total`` deltas (scraped from ``/metrics`` before and after one
  kperf run of a staleGet + staleList + quorumList mix) compared per verb and scope with the
  report's per-URL succeeded+failed counts. The quorumList is cluster-wide so that each request
  type lands in its own (verb, scope) series: GET/resource, LIST/namespace, LIST/cluster.

Caveats
=======

* The machine is small (2 cores) and shared: other work on it shows up as noise (see the "other
  cores" column and the min-max ranges); repeat and interleave rather than trust one figure.
* Client and server share the box. The apiserver needs most of the CPU, so whatever the client
  burns is taken from the server: a client that costs more CPU per request lowers the throughput it
  can measure. This is a comparison of load generators on one box, not of the apiserver's capacity.
* HTTP/1.1 and HTTP/2 cost the server different amounts of CPU; compare tools within a protocol.
* h2load and wrk do not verify the server's certificate (kperf does); TLS setup is per connection
  and the connections live for the whole run, so this does not matter for the figures.
* kperf's process CPU includes Python start-up (a few hundred ms); with short runs (``--quick``)
  that fixed cost weighs more per request — see the engine column.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kperf_core.engine.native_transport import native_installed

INSTALL_HINT = "apt-get install -y wrk nghttp2-client"
TOKEN_CONTEXT = "kperf-local-token"
# What kperf sends for contentType json (client-go's Accept) and its Accept-Encoding; the C tools
# send the same so that the server does the same work for every tool.
ACCEPT = "application/json, */*"
ACCEPT_ENCODING = "gzip"

SMALL_NAMESPACE = "default"
SMALL_NAME = "kperf-bench-small"
LIST_NAMESPACE = "kperf-bench"
LIST_COUNT = 50
LIST_PAYLOAD_BYTES = 1536
QUERY = "resourceVersion=0&timeout=1m0s"  # kperf's encoding (keys sorted, as Go's url.Values)

CLIENT = 10  # requests in flight, every tool
H2_CONNS = 2  # HTTP/2: connections (h2load -c); streams per connection = CLIENT / H2_CONNS
THROUGHPUT_TARGET = 0.9  # kperf req/s ≥ 0.9 x the C tool's
CPU_TARGET = 2.0  # kperf CPU/request ≤ 2 x the C tool's

# wrk prints nothing machine-readable by itself; this done() hook does.
WRK_LUA = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"duration_us\\": %d, \\"requests\\": %d, \\"bytes\\": %d, \\"connect\\": %d, "
    .. "\\"read\\": %d, \\"write\\": %d, \\"status\\": %d, \\"timeout\\": %d}\\n",
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


# -------------------------------------------------------------------------------------------------
# Data
# -------------------------------------------------------------------------------------------------


@dataclass
class Workload:
    name: str
    path: str  # path?query, identical for every tool
    kperf_request: dict[str, Any]  # one `requests:` item of a kperf profile

    @property
    def bare_path(self) -> str:
        return self.path.split("?", 1)[0]


@dataclass
class ToolConfig:
    tool: str  # kperf | wrk | h2load
    protocol: str  # h1 | h2

    @property
    def label(self) -> str:
        return f"{self.tool}/{self.protocol}"


TOOL_CONFIGS = (
    ToolConfig("kperf", "h1"),
    ToolConfig("wrk", "h1"),
    ToolConfig("kperf", "h2"),
    ToolConfig("h2load", "h2"),
)
#: kperf on its native transport (KPERF_TRANSPORT=native), its loop in the extension (native) or
#: in Python (nat-py), measured beside the above when the kperf_native extension is installed;
#: "kperf" is then forced onto libcurl
NATIVE_CONFIGS = tuple(
    ToolConfig(tool, protocol) for tool in ("native", "nat-py") for protocol in ("h1", "h2")
)
#: the environment of each kperf tool (KPERF_TRANSPORT, KPERF_NATIVE_LOOP)
KPERF_TOOLS: dict[str, dict[str, str]] = {
    "kperf": {"KPERF_TRANSPORT": "curl"},
    "native": {"KPERF_TRANSPORT": "native", "KPERF_NATIVE_LOOP": "native"},
    "nat-py": {"KPERF_TRANSPORT": "native", "KPERF_NATIVE_LOOP": "python"},
}
C_TOOL = {"h1": "wrk", "h2": "h2load"}


def tool_configs(native: bool) -> tuple[ToolConfig, ...]:
    return TOOL_CONFIGS + NATIVE_CONFIGS if native else TOOL_CONFIGS


@dataclass
class Measurement:
    tool: str
    protocol: str
    workload: str
    repeat: int
    succeeded: int
    completed: int
    seconds: float  # the tool's own measurement window
    client_cpu: float  # whole client process, user+sys seconds
    server_cpu: float  # kube-apiserver + etcd
    machine_busy: float  # every CPU of the machine, busy seconds
    wall: float  # wall-clock time of the whole subprocess
    engine_cpu: float | None = None  # kperf only: the report's clientCpuSeconds
    bytes_per_response: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.succeeded / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.completed - self.succeeded

    def per_request_us(self, cpu: float | None) -> float | None:
        if cpu is None or self.completed == 0:
            return None
        return cpu / self.completed * 1e6

    @property
    def other_cores(self) -> float:
        other = self.machine_busy - self.client_cpu - self.server_cpu
        return max(0.0, other) / self.wall if self.wall > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            rps=self.rps,
            client_cpu_us_per_request=self.per_request_us(self.client_cpu),
            engine_cpu_us_per_request=self.per_request_us(self.engine_cpu),
            server_cpu_us_per_request=self.per_request_us(self.server_cpu),
            other_cores=self.other_cores,
        )
        return data


# -------------------------------------------------------------------------------------------------
# CPU accounting
# -------------------------------------------------------------------------------------------------

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """user+sys seconds of a running process (fields 14 and 15 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (all CPUs)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (not guest: in user)
    return (total - idle) / CLOCK_TICK


@dataclass
class CpuSample:
    children: float
    server: float
    machine: float
    wall: float


def sample_cpu(server_pids: list[int]) -> CpuSample:
    return CpuSample(
        children=children_cpu(),
        server=sum(process_cpu(pid) for pid in server_pids),
        machine=machine_busy(),
        wall=time.perf_counter(),
    )


# -------------------------------------------------------------------------------------------------
# The cluster
# -------------------------------------------------------------------------------------------------


class Cluster:
    """Plain HTTPS to the local plane with the admin bearer token (setup, cleanup, /metrics)."""

    def __init__(self, state_dir: Path, kubeconfig: Path, server_pids: list[int]) -> None:
        state = json.loads((state_dir / "state.json").read_text())
        self.server: str = state["server"].rstrip("/")
        self.token: str = state["token"]
        self.kubeconfig = kubeconfig
        self.server_pids = server_pids
        self._ssl = ssl.create_default_context(cafile=str(state_dir / "pki" / "ca.crt"))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def must(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()) -> bytes:
        status, data = self.request(method, path, body)
        if not (200 <= status < 300 or status in ok):
            raise RuntimeError(f"{method} {path}: HTTP {status}: {data[:300]!r}")
        return data

    def create_objects(self) -> None:
        def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
            return {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name},
                "data": data,
            }

        self.must(
            "POST",
            f"/api/v1/namespaces/{SMALL_NAMESPACE}/configmaps",
            configmap(SMALL_NAME, {"key": "value"}),
            ok=(409,),
        )
        self.must(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LIST_NAMESPACE}},
            ok=(409,),
        )
        for i in range(LIST_COUNT):
            payload = (f"{i:02d}" + "abcdefghijklmnopqrstuvwxyz" * 60)[:LIST_PAYLOAD_BYTES]
            self.must(
                "POST",
                f"/api/v1/namespaces/{LIST_NAMESPACE}/configmaps",
                configmap(f"cm-{i:02d}", {"payload": payload}),
                ok=(409,),
            )

    def delete_objects(self) -> None:
        # Without controllers the namespace stays Terminating (no namespace controller): the
        # ConfigMaps are deleted explicitly, the namespace deletion is best effort.
        self.request("DELETE", f"/api/v1/namespaces/{SMALL_NAMESPACE}/configmaps/{SMALL_NAME}")
        self.request("DELETE", f"/api/v1/namespaces/{LIST_NAMESPACE}/configmaps")
        self.request("DELETE", f"/api/v1/namespaces/{LIST_NAMESPACE}")

    def request_totals(self) -> dict[tuple[str, str, str], float]:
        """``apiserver_request_total`` summed per (verb, resource, scope)."""
        text = self.must("GET", "/metrics").decode()
        totals: dict[tuple[str, str, str], float] = defaultdict(float)
        for match in _REQUEST_TOTAL.finditer(text):
            labels = dict(_LABEL.findall(match.group(1)))
            key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("scope", ""))
            totals[key] += float(match.group(2))
        return dict(totals)


_REQUEST_TOTAL = re.compile(r"^apiserver_request_total\{(.*)\} (\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@contextlib.contextmanager
def control_plane(workdir: Path) -> Iterator[Cluster]:
    """Start a local control plane without controllers; always stop it (Ctrl-C included)."""
    try:
        from kperf_plugins.backends.local_control_plane.control_plane import LocalControlPlane
    except ImportError:
        sys.exit("cannot import kperf_plugins: run this with the repository's .venv/bin/python")
    state_dir = workdir / "plane"
    plane = LocalControlPlane(state_dir, controllers=False)
    try:
        status = plane.up()
        if not status.running or status.kubeconfig is None:
            raise RuntimeError(f"the control plane did not come up: {status}")
        pids = [
            status.components[name]["pid"]
            for name in ("kube-apiserver", "etcd")
            if status.components.get(name, {}).get("pid")
        ]
        yield Cluster(state_dir, status.kubeconfig, pids)
    finally:
        plane.down()


# -------------------------------------------------------------------------------------------------
# Running the tools
# -------------------------------------------------------------------------------------------------


class Runner:
    def __init__(
        self, cluster: Cluster, workdir: Path, duration: float, native: bool = False
    ) -> None:
        self.cluster = cluster
        #: measure kperf on both transports and both loops (see KPERF_TOOLS)
        self.native = native
        self.workdir = workdir
        self.duration = duration
        self.kperf = str(Path(sys.executable).parent / "kperf")
        # one engine process, as every tool here runs one thread (kperf's default is a worker
        # per core)
        self.kperf_args = ["--workers", "1"]
        self.wrk_script = workdir / "report.lua"
        self.wrk_script.write_text(WRK_LUA)
        self._profiles = 0

    # -- generic -------------------------------------------------------------------------------

    def _run(self, argv: list[str], env: dict[str, str] | None = None) -> tuple[str, CpuSample]:
        """Run argv to completion; return its stdout+stderr and the CPU deltas it caused."""
        before = sample_cpu(self.cluster.server_pids)
        proc = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.duration + 120,
            check=False,
        )
        after = sample_cpu(self.cluster.server_pids)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}:\n{output[-2000:]}")
        delta = CpuSample(
            children=after.children - before.children,
            server=after.server - before.server,
            machine=after.machine - before.machine,
            wall=after.wall - before.wall,
        )
        return output, delta

    def measure(self, config: ToolConfig, workload: Workload, repeat: int) -> Measurement:
        run = {
            "kperf": self._kperf_throughput,
            "native": self._kperf_throughput,
            "nat-py": self._kperf_throughput,
            "wrk": self._wrk,
            "h2load": self._h2load,
        }
        return run[config.tool](config, workload, repeat)

    def _headers(self) -> list[str]:
        return [
            f"Authorization: Bearer {self.cluster.token}",
            f"Accept: {ACCEPT}",
            f"Accept-Encoding: {ACCEPT_ENCODING}",
        ]

    # -- wrk -----------------------------------------------------------------------------------

    def _wrk(self, config: ToolConfig, workload: Workload, repeat: int) -> Measurement:
        argv = ["wrk", "-t1", f"-c{CLIENT}", f"-d{self.duration:g}s", "--timeout", "60s"]
        argv += ["-s", str(self.wrk_script)]
        for header in self._headers():
            argv += ["-H", header]
        argv.append(self.cluster.server + workload.path)
        output, cpu = self._run(argv)
        match = re.search(r"^WRKJSON (\{.*\})$", output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"wrk printed no summary:\n{output[-2000:]}")
        s = json.loads(match.group(1))
        completed = s["requests"]
        return Measurement(
            tool="wrk",
            protocol="h1",
            workload=workload.name,
            repeat=repeat,
            succeeded=completed - s["status"],
            completed=completed,
            seconds=s["duration_us"] / 1e6,
            client_cpu=cpu.children,
            server_cpu=cpu.server,
            machine_busy=cpu.machine,
            wall=cpu.wall,
            bytes_per_response=s["bytes"] / completed if completed else None,
            extra={"socket_errors": {k: s[k] for k in ("connect", "read", "write", "timeout")}},
        )

    # -- h2load --------------------------------------------------------------------------------

    def _h2load(self, config: ToolConfig, workload: Workload, repeat: int) -> Measurement:
        streams = CLIENT // H2_CONNS
        argv = ["h2load", "-t1", f"-c{H2_CONNS}", f"-m{streams}", "-D", f"{self.duration:g}"]
        for header in self._headers():
            argv += ["-H", header]
        argv.append(self.cluster.server + workload.path)
        output, cpu = self._run(argv)
        finished = re.search(r"finished in ([\d.]+)(s|ms|us),", output)
        counts = re.search(
            r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed",
            output,
        )
        traffic = re.search(r"traffic: .*?\((\d+)\) total", output)
        if finished is None or counts is None:
            raise RuntimeError(f"cannot parse h2load's output:\n{output[-2000:]}")
        scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6}[finished.group(2)]
        done, succeeded = int(counts.group(3)), int(counts.group(4))
        return Measurement(
            tool="h2load",
            protocol="h2",
            workload=workload.name,
            repeat=repeat,
            succeeded=succeeded,
            completed=done,
            seconds=float(finished.group(1)) * scale,
            client_cpu=cpu.children,
            server_cpu=cpu.server,
            machine_busy=cpu.machine,
            wall=cpu.wall,
            bytes_per_response=int(traffic.group(1)) / done if traffic and done else None,
        )

    # -- kperf ---------------------------------------------------------------------------------

    def run_kperf(
        self, requests: list[dict[str, Any]], choice: Mapping[str, str] | None = None, **spec: Any
    ) -> tuple[dict[str, Any], CpuSample]:
        """Run one single-spec profile (``choice``: KPERF_TRANSPORT and KPERF_NATIVE_LOOP, None
        to let kperf choose); return its report and the CPU deltas."""
        self._profiles += 1
        profile_path = self.workdir / f"profile-{self._profiles}.yaml"
        result_path = self.workdir / f"result-{self._profiles}.json"
        profile = {
            "version": 1,
            "description": "benchmarks/engine_vs_c_tools.py",
            "specs": [{"contentType": "json", **spec, "requests": requests}],
        }
        profile_path.write_text(json.dumps(profile, indent=2))  # JSON is YAML
        argv = [self.kperf, "runner", "run", "--config", str(profile_path)]
        argv += ["--context", TOKEN_CONTEXT, "--result", str(result_path), *self.kperf_args]
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig), **(choice or {})}
        _, cpu = self._run(argv, env)
        report = json.loads(result_path.read_text())
        return report, cpu

    def _kperf_throughput(self, config: ToolConfig, workload: Workload, repeat: int) -> Measurement:
        spec: dict[str, Any] = {"rate": 0, "duration": self.duration, "client": CLIENT}
        if config.protocol == "h1":
            spec.update(conns=CLIENT, disableHTTP2=True)
        else:
            spec.update(conns=H2_CONNS, disableHTTP2=False)
        choice = KPERF_TOOLS[config.tool] if self.native else None
        report, cpu = self.run_kperf([workload.kperf_request], choice, **spec)
        result = report["perSpecResults"][0]
        requests = result["requests"]
        completed = requests["succeeded"] + requests["failed"]
        keys = list(result.get("requestsByURL", {}))
        expected = (
            f"{'LIST' if workload.name == 'list' else 'GET'} {self.cluster.server}{workload.path}"
        )
        if keys and keys != [expected]:
            print(f"  warning: kperf requested {keys}, the C tools {expected!r}", file=sys.stderr)
        return Measurement(
            tool=config.tool,
            protocol=config.protocol,
            workload=workload.name,
            repeat=repeat,
            succeeded=requests["succeeded"],
            completed=completed,
            seconds=result["durationSeconds"],
            client_cpu=cpu.children,
            server_cpu=cpu.server,
            machine_busy=cpu.machine,
            wall=cpu.wall,
            engine_cpu=result["load"]["clientCpuSeconds"],
            bytes_per_response=result["totalReceivedBytes"] / completed if completed else None,
            extra={
                "errorStats": result.get("errorStats", {}),
                "load": result["load"],
                "connections": result["connections"]["load"],
            },
        )


# -------------------------------------------------------------------------------------------------
# The experiments
# -------------------------------------------------------------------------------------------------


def workloads() -> list[Workload]:
    return [
        Workload(
            "get",
            f"/api/v1/namespaces/{SMALL_NAMESPACE}/configmaps/{SMALL_NAME}?{QUERY}",
            {
                "shares": 1,
                "staleGet": {
                    "version": "v1",
                    "resource": "configmaps",
                    "namespace": SMALL_NAMESPACE,
                    "name": SMALL_NAME,
                },
            },
        ),
        Workload(
            "list",
            f"/api/v1/namespaces/{LIST_NAMESPACE}/configmaps?{QUERY}",
            {
                "shares": 1,
                "staleList": {
                    "version": "v1",
                    "resource": "configmaps",
                    "namespace": LIST_NAMESPACE,
                },
            },
        ),
    ]


def throughput(runner: Runner, repeats: int, log: Callable[[str], None]) -> list[Measurement]:
    # Warm-up (discarded): connections, the apiserver's caches and Python's bytecode cache.
    configs = tool_configs(runner.native)
    warm = Runner(runner.cluster, runner.workdir, duration=1, native=runner.native)
    warm._profiles = 1000
    for config in configs:
        warm.measure(config, workloads()[0], repeat=-1)
    results: list[Measurement] = []
    for repeat in range(repeats):
        for workload in workloads():
            shift = repeat % len(configs)
            order = configs[shift:] + configs[:shift]
            for config in order:
                m = runner.measure(config, workload, repeat)
                results.append(m)
                log(
                    f"  repeat {repeat + 1}/{repeats} {workload.name:4} {config.label:9} "
                    f"{m.rps:8.0f} req/s  client {m.per_request_us(m.client_cpu) or 0:6.1f} µs/req"
                    f"  errors {m.errors}"
                )
    return results


def rate_accuracy(
    runner: Runner, duration: float, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    get = workloads()[0]
    rows = []
    for arrival in ("closed", "constant"):
        for rate in (100, 1000):
            report, cpu = runner.run_kperf(
                [get.kperf_request],
                rate=rate,
                duration=duration,
                client=CLIENT,
                conns=H2_CONNS,
                arrival=arrival,
            )
            result = report["perSpecResults"][0]
            requests = result["requests"]
            completed = requests["succeeded"] + requests["failed"]
            achieved = requests["succeeded"] / result["durationSeconds"]
            percentiles = dict((q, v) for q, v in result.get("percentileLatencies", []))
            row = {
                "arrival": arrival,
                "offered": rate,
                "achieved": achieved,
                "achieved_over_offered": achieved / rate,
                "error_pct": 100.0 * requests["failed"] / completed if completed else 0.0,
                "sent": requests["sent"],
                "not_sent": requests["notSent"],
                "duration_s": result["durationSeconds"],
                "p50_ms": percentiles.get(0.5, 0.0) * 1000,
                "p99_ms": percentiles.get(0.99, 0.0) * 1000,
                "max_send_lag_ms": result["load"]["maxSendLagSeconds"] * 1000,
                "client_cpu_s": cpu.children,
            }
            rows.append(row)
            log(f"  rate {arrival:8} {rate:5}/s → {achieved:8.1f}/s")
    return rows


def fidelity(runner: Runner, total: int) -> dict[str, Any]:
    """Server-side request counts vs the report's, per (verb, scope) of configmaps."""
    get, stale_list = workloads()
    requests = [
        get.kperf_request,
        stale_list.kperf_request,
        {"shares": 1, "quorumList": {"version": "v1", "resource": "configmaps"}},  # cluster-wide
    ]
    before = runner.cluster.request_totals()
    report, _ = runner.run_kperf(requests, rate=0, total=total, client=CLIENT, conns=H2_CONNS)
    time.sleep(0.5)  # the apiserver counts a request after it has written the response
    after = runner.cluster.request_totals()
    result = report["perSpecResults"][0]

    from_report: dict[tuple[str, str], int] = defaultdict(int)
    for key, counts in result["requestsByURL"].items():
        verb, url = key.split(" ", 1)
        from_report[(verb, _scope(url))] += counts["succeeded"] + counts["failed"]
    from_server: dict[tuple[str, str], int] = {}
    for (verb, res, scope), value in after.items():
        delta = value - before.get((verb, res, scope), 0.0)
        if res == "configmaps" and delta:
            from_server[(verb, scope)] = round(delta)
    rows = []
    for verb, scope in sorted(set(from_report) | set(from_server)):
        rows.append(
            {
                "verb": verb,
                "resource": "configmaps",
                "scope": scope,
                "kperf_report": from_report.get((verb, scope), 0),
                "apiserver_metric": from_server.get((verb, scope), 0),
            }
        )
    return {
        "total": total,
        "sent": result["requests"]["sent"],
        "rows": rows,
        "match": all(r["kperf_report"] == r["apiserver_metric"] for r in rows),
    }


def _scope(url: str) -> str:
    """apiserver_request_total's scope of a configmaps URL."""
    path = url.split("://", 1)[-1].split("?", 1)[0]
    parts = path.split("/")[1:]  # drop host: api, v1, [namespaces, ns,] configmaps[, name]
    if "namespaces" not in parts:
        return "cluster"
    return "resource" if parts[-1] != "configmaps" else "namespace"


# -------------------------------------------------------------------------------------------------
# Summaries and printing
# -------------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(results: list[Measurement]) -> dict[str, Any]:
    groups: dict[tuple[str, str, str], list[Measurement]] = defaultdict(list)
    for m in results:
        groups[(m.workload, m.protocol, m.tool)].append(m)
    rows = []
    for (workload, protocol, tool), ms in groups.items():
        rps = [m.rps for m in ms]
        rows.append(
            {
                "workload": workload,
                "protocol": protocol,
                "tool": tool,
                "rps_median": _median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "client_cpu_us_median": _median([m.per_request_us(m.client_cpu) or 0 for m in ms]),
                "engine_cpu_us_median": (
                    _median([m.per_request_us(m.engine_cpu) or 0 for m in ms])
                    if tool in KPERF_TOOLS
                    else None
                ),
                "server_cpu_us_median": _median([m.per_request_us(m.server_cpu) or 0 for m in ms]),
                "other_cores_median": _median([m.other_cores for m in ms]),
                "errors": sum(m.errors for m in ms),
                "bytes_per_response": _median([m.bytes_per_response or 0 for m in ms]),
            }
        )
    order = {"get": 0, "list": 1}
    rank = {"kperf": 0, "native": 1, "nat-py": 2}
    rows.sort(key=lambda r: (order.get(r["workload"], 9), r["protocol"], rank.get(r["tool"], 3)))

    by_key = {(r["workload"], r["protocol"], r["tool"]): r for r in rows}
    ratios = []
    for (workload, protocol, tool), ms in sorted(groups.items(), key=lambda kv: order[kv[0][0]]):
        if tool not in KPERF_TOOLS:
            continue
        c_tool = C_TOOL[protocol]
        other = groups.get((workload, protocol, c_tool))
        if not other:
            continue
        k_row, c_row = by_key[(workload, protocol, tool)], by_key[(workload, protocol, c_tool)]
        paired = {m.repeat: m for m in other}
        pair_rps = [m.rps / paired[m.repeat].rps for m in ms if m.repeat in paired]
        pair_cpu = [
            (m.per_request_us(m.client_cpu) or 0)
            / (paired[m.repeat].per_request_us(paired[m.repeat].client_cpu) or float("nan"))
            for m in ms
            if m.repeat in paired
        ]
        rps_ratio = k_row["rps_median"] / c_row["rps_median"]
        cpu_ratio = k_row["client_cpu_us_median"] / c_row["client_cpu_us_median"]
        c_total = c_row["client_cpu_us_median"] + c_row["server_cpu_us_median"]
        budget = c_total / THROUGHPUT_TARGET - c_row["server_cpu_us_median"]
        engine_ratio = (k_row["engine_cpu_us_median"] or 0) / c_row["client_cpu_us_median"]
        ratios.append(
            {
                "workload": workload,
                "protocol": protocol,
                "tool": tool,
                "versus": c_tool,
                "throughput_ratio": rps_ratio,
                "throughput_ratio_paired_min": min(pair_rps),
                "throughput_ratio_paired_max": max(pair_rps),
                "throughput_ok": rps_ratio >= THROUGHPUT_TARGET,
                "cpu_ratio": cpu_ratio,
                "cpu_ratio_paired_min": min(pair_cpu),
                "cpu_ratio_paired_max": max(pair_cpu),
                "cpu_ok": cpu_ratio <= CPU_TARGET,
                "engine_cpu_ratio": engine_ratio,
                "server_cpu_ratio": k_row["server_cpu_us_median"] / c_row["server_cpu_us_median"],
                # Client and server share the CPUs, so throughput ~ cores / (client + server CPU
                # per request): the client CPU that would leave kperf at the throughput target
                # if it cost the server what the C tool does.
                "client_cpu_budget_us": budget,
                "client_cpu_budget_ratio": budget / c_row["client_cpu_us_median"],
            }
        )
    return {"rows": rows, "ratios": ratios}


def print_report(
    summary: dict[str, Any],
    rates: list[dict[str, Any]],
    fid: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    _print_throughput(summary, args)
    _print_rates(rates, args)
    _print_fidelity(fid)


def _print_throughput(summary: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        f"Throughput and client CPU — {CLIENT} in flight, closed loop, {args.duration:g} s runs, "
        f"medians of {args.repeat}"
    )
    header = (
        f"{'workload':8} {'proto':5} {'tool':7} {'req/s median (min-max)':>26} "
        f"{'client µs/req':>13} {'engine':>7} {'server µs/req':>13} {'B/resp':>7} "
        f"{'other cores':>11} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in summary["rows"]:
        spread = f"{r['rps_median']:.0f} ({r['rps_min']:.0f}-{r['rps_max']:.0f})"
        engine = (
            f"{r['engine_cpu_us_median']:.1f}" if r["engine_cpu_us_median"] is not None else "-"
        )
        print(
            f"{r['workload']:8} {r['protocol']:5} {r['tool']:7} {spread:>26} "
            f"{r['client_cpu_us_median']:13.1f} {engine:>7} {r['server_cpu_us_median']:13.1f} "
            f"{r['bytes_per_response']:7.0f} {r['other_cores_median']:11.2f} {r['errors']:6d}"
        )
    print()
    print(
        f"kperf / C tool (ratio of medians; paired per-repeat range) — targets: throughput "
        f"≥ {THROUGHPUT_TARGET}x, CPU/request ≤ {CPU_TARGET}x"
    )
    for q in summary["ratios"]:
        print(
            f"  {q['workload']:4} {q['protocol']} {q['tool']:6} vs {q['versus']:6}  "
            f"throughput {q['throughput_ratio']:.2f}x "
            f"({q['throughput_ratio_paired_min']:.2f}-{q['throughput_ratio_paired_max']:.2f}) "
            f"{'ok' if q['throughput_ok'] else 'MISS':4}  "
            f"CPU/request {q['cpu_ratio']:.2f}x "
            f"({q['cpu_ratio_paired_min']:.2f}-{q['cpu_ratio_paired_max']:.2f}) "
            f"{'ok' if q['cpu_ok'] else 'MISS':4}  "
            f"[engine only {q['engine_cpu_ratio']:.2f}x]"
        )
    print("  Client and server share the CPUs: throughput ~ cores / (client + server CPU/request).")
    for q in summary["ratios"]:
        print(
            f"  {q['workload']:4} {q['protocol']} {q['tool']:6}: server CPU/request "
            f"kperf/{q['versus']} "
            f"{q['server_cpu_ratio']:.2f}x; {THROUGHPUT_TARGET}x throughput here needs client CPU "
            f"<= {q['client_cpu_budget_us']:.0f} µs/req ({q['client_cpu_budget_ratio']:.2f}x "
            f"{q['versus']}), at equal server cost"
        )


def _print_rates(rates: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(
        f"Rate accuracy — kperf staleGet, client {CLIENT}, HTTP/2 conns {H2_CONNS}, "
        f"{args.rate_duration:g} s per run"
    )
    print(
        f"  {'arrival':8} {'offered/s':>9} {'achieved/s':>10} {'achieved %':>10} {'errors %':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max lag ms':>10}"
    )
    for r in rates:
        print(
            f"  {r['arrival']:8} {r['offered']:9d} {r['achieved']:10.1f} "
            f"{100 * r['achieved_over_offered']:9.1f}% {r['error_pct']:8.2f} "
            f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['max_send_lag_ms']:10.2f}"
        )


def _print_fidelity(fid: dict[str, Any]) -> None:
    print()
    print(
        f"Fidelity — apiserver_request_total deltas vs kperf's report, one run of {fid['total']} "
        "requests (staleGet + staleList + cluster-wide quorumList, configmaps)"
    )
    print(f"  {'verb':5} {'scope':9} {'kperf report':>12} {'apiserver':>10}")
    for r in fid["rows"]:
        mark = "" if r["kperf_report"] == r["apiserver_metric"] else "  ≠"
        print(
            f"  {r['verb']:5} {r['scope']:9} {r['kperf_report']:12d} "
            f"{r['apiserver_metric']:10d}{mark}"
        )
    print(f"  match: {'yes' if fid['match'] else 'NO'}")


# -------------------------------------------------------------------------------------------------
# Main
# -------------------------------------------------------------------------------------------------


def tool_versions() -> dict[str, str]:
    versions = {}
    for argv in (["wrk", "--version"], ["h2load", "--version"]):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        versions[argv[0]] = (proc.stdout + proc.stderr).strip().splitlines()[0]
    return versions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="repeats per measurement (default 3)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per throughput run")
    parser.add_argument("--rate-duration", type=float, default=10.0, help="seconds per rate run")
    parser.add_argument(
        "--fidelity-total", type=int, default=3000, help="requests in the fidelity run"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 4 s durations")
    parser.add_argument(
        "--no-native",
        action="store_true",
        help="do not measure the native transport beside libcurl (measured when it is installed)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.duration, args.rate_duration = 1, 4.0, 4.0
    if args.repeat < 1:
        parser.error("--repeat must be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [tool for tool in ("wrk", "h2load") if shutil.which(tool) is None]
    if missing:
        print(f"missing on PATH: {', '.join(missing)}; install them with:", file=sys.stderr)
        print(f"  {INSTALL_HINT}", file=sys.stderr)
        return 2
    if not (Path(sys.executable).parent / "kperf").exists():
        print(
            "no kperf next to this interpreter: run with the repository's .venv/bin/python",
            file=sys.stderr,
        )
        return 2

    # SIGTERM ends the run like Ctrl-C: the control plane is stopped on the way out.
    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.time()
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kperf-bench-") as tmp:
        workdir = Path(tmp)
        log(f"starting a local control plane in {workdir / 'plane'} …")
        try:
            with control_plane(workdir) as cluster:
                cluster.create_objects()
                try:
                    native = not args.no_native and native_installed()
                    runner = Runner(cluster, workdir, args.duration, native=native)
                    log(f"kperf's transports: {'libcurl and native' if native else 'default'}")
                    log(f"server {cluster.server}; throughput runs ({args.repeat} repeats) …")
                    results = throughput(runner, args.repeat, log)
                    log("rate accuracy …")
                    rates = rate_accuracy(runner, args.rate_duration, log)
                    log("fidelity …")
                    fid = fidelity(runner, args.fidelity_total)
                finally:
                    cluster.delete_objects()
                log("stopping the control plane …")
        except KeyboardInterrupt:
            log("interrupted: the control plane was stopped")
            return 130

    summary = summarise(results)
    print(
        f"# kperf vs wrk/h2load — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs, "
        f"load average at start {load_at_start:.2f}, took {time.time() - started:.0f} s"
    )
    print_report(summary, rates, fid, args)
    if args.json is not None:
        document = {
            "settings": {
                "repeat": args.repeat,
                "duration": args.duration,
                "rate_duration": args.rate_duration,
                "client": CLIENT,
                "h2_conns": H2_CONNS,
                "native": not args.no_native and native_installed(),
                "targets": {"throughput_ratio_min": THROUGHPUT_TARGET, "cpu_ratio_max": CPU_TARGET},
            },
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "tools": tool_versions(),
            },
            "throughput": summary,
            "measurements": [m.to_dict() for m in results],
            "rate_accuracy": rates,
            "fidelity": fid,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
