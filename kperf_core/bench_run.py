"""One ``runkperf bench`` run: its cluster, labels, cleanup and the building blocks cases share.

Every object a case creates goes through a :class:`BenchRun` helper, which labels it with the run
(``kperf.io/bench-run=<id>``) and registers its removal on the run's cleanup stack. The stack is
unwound on every exit path — success, failure, Ctrl-C and SIGTERM — with further interrupts held
off until it is done. A run first removes what an aborted earlier run left (found by that label).

Backends are reached through the plugin registries (node pools, runner groups), never imported:
a case composes whatever backends are installed.

Progress goes to a :class:`~kperf_core.live_status.LiveStatus` on stderr: :meth:`BenchRun.progress`
for steps (lines that stay), and while the run waits on something long — nodes becoming Ready,
pods running, runners reporting — a counter polled every second (:meth:`BenchRun.watching`),
followed by what background workloads are doing (:meth:`BenchRun.show`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from kperf_core import __version__
from kperf_core.backends import NodePoolSpec, RunnerGroupPlan
from kperf_core.errors import BackendError, ConfigError
from kperf_core.live_status import LiveStatus
from kperf_core.placement import EKS_DAEMONSETS
from kperf_core.report_model import REPORT_FORMAT
from kperf_core.scenarios import BenchReport, BenchSettings, NodeShape, Scenario
from kperf_core.virtual_nodes import EXECUTOR_NODE_LABEL, POOL_LABEL, TAINT_KEY

if TYPE_CHECKING:
    from kperf_core.plugin_manager import KperfPluginManager

log = logging.getLogger(__name__)

#: The label of everything a bench run creates: its run id.
RUN_LABEL = "kperf.io/bench-run"
#: Which node-pool backend keeps a run's pool alive (to remove an aborted run's pool with it).
POOL_BACKEND_LABEL = "kperf.io/bench-node-pool-backend"
#: How long to wait for a runner group's reports: this many times its profile's length (a
#: server that cannot keep up stretches the profile: upstream waited for ever) plus a margin for
#: start-up and posting results.
RESULT_STRETCH = 2.0
RESULT_MARGIN_SECONDS = 300.0
#: Seconds between two polls of a counter shown while the run waits.
WATCH_SECONDS = 1.0


def profile_seconds(spec: Mapping[str, Any]) -> float:
    """How long a runner-group spec's profile runs: durations, or totals at their rates."""
    seconds = 0.0
    for item in spec["loadProfile"]["specs"]:
        if item.get("duration"):
            seconds += float(item["duration"])
        elif item.get("total") and item.get("rate"):
            seconds += float(item["total"]) / float(item["rate"])
    return seconds


class BenchRun:
    """The run a scenario's :meth:`~kperf_core.scenarios.Scenario.run` receives."""

    def __init__(
        self,
        settings: BenchSettings,
        pm: KperfPluginManager,
        case: str,
        status: LiveStatus,
    ) -> None:
        from kperf_core.cluster_api import api_client

        self.settings = settings
        self.pm = pm
        self.case = case
        self.status = status
        #: the status line is written from the watching thread too
        self._status_lock = threading.Lock()
        #: what background workloads are doing, shown after the counter of a wait
        self._shown: list[Callable[[], str]] = []
        self.run_id = uuid.uuid4().hex[:10]
        self.api = api_client(settings.kubeconfig, settings.context)
        self._stack = contextlib.ExitStack()
        self._previous_sigterm: Any = None
        self._runner_placement: tuple[dict[str, tuple[str, ...]], tuple[dict[str, str], ...]] | None
        self._runner_placement = None
        self._namespaces: list[str] = []
        #: the stop events of the background workloads
        self._stops: list[threading.Event] = []
        #: what ``--eks`` did (once, before the first node pool), for the report's ``info``
        self.eks: dict[str, Any] | None = None
        #: seconds from placing runner groups to their every runner's report
        self.runner_seconds = 0.0
        self.started = time.monotonic()

    @property
    def labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id}

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> BenchRun:
        # SIGTERM (a CI job cancelled, `kill`) unwinds like Ctrl-C, so cleanup still runs.
        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self._remove_leftovers()
        except BaseException:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A second Ctrl-C must not leave half the objects behind: hold interrupts until done.
        previous_int = signal.signal(signal.SIGINT, _hold_interrupt)
        signal.signal(signal.SIGTERM, _hold_interrupt)
        try:
            self.progress("cleaning up")
            self._start_removal()
            self._stack.close()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    def _start_removal(self) -> None:
        """Begin the slow part of the cleanup at once: background workloads told to stop, and
        the run's namespaces deleted — the namespace controller empties them while the runner
        group and node pools go; the stack then waits for each as before."""
        for stop in self._stops:
            stop.set()
        try:
            self._delete_namespace_objects(self._namespaces)
        except Exception as exc:
            self.progress(f"runkperf: cleanup: {exc}")

    def on_cleanup(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` when the run ends (last registered, first run); a failing
        callback is logged and the rest still run."""

        def guarded() -> None:
            started = time.monotonic()
            try:
                callback(*args)
            except Exception as exc:
                self.progress(f"runkperf: cleanup: {exc}")
            log.info(
                "cleanup: %s took %.1f s",
                getattr(callback, "__qualname__", callback),
                time.monotonic() - started,
            )

        self._stack.callback(guarded)

    def api_with_connections(self, connections: int) -> Any:
        """A client of the run's cluster with ``connections`` pooled connections, for many
        parallel calls (the shared client's pool of 10 would drop and reopen them); closed when
        the run ends."""
        import copy

        from kubernetes import client

        configuration = copy.copy(self.api.configuration)
        configuration.connection_pool_maxsize = connections
        api = client.ApiClient(configuration)
        self.on_cleanup(api.close)
        return api

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- progress --------------------------------------------------------------------------------

    def progress(self, text: str) -> None:
        """A step of the run: a line on stderr that stays."""
        with self._status_lock:
            self.status.message(text)

    def update(self, text: str) -> None:
        """A counter of a step the caller drives ("120/1000 created"): on the status line, live
        on a terminal, a periodic line otherwise."""
        with self._status_lock:
            self.status.update(text)

    def show(self, describe: Callable[[], str]) -> None:
        """Show ``describe()`` (what a background workload is doing, e.g. a Job's pods) after the
        counter of every wait from now on."""
        self._shown.append(describe)

    @contextlib.contextmanager
    def watching(self, describe: Callable[[], str]) -> Iterator[None]:
        """While the block runs, show ``describe()`` (a counter: "3/10 nodes Ready") polled every
        :data:`WATCH_SECONDS` from a thread: live on a terminal, periodic lines otherwise."""
        ticker = _Ticker(self.status, self._status_lock, (describe, *self._shown))
        ticker.start()
        try:
            yield
        finally:
            ticker.stop()

    def count_pods(self, namespaces: Sequence[str], phase: str) -> int:
        """Pods of the run in ``namespaces`` in ``phase`` (``Running``, ``Succeeded``)."""
        from kubernetes import client

        core: Any = client.CoreV1Api(self.api)
        return sum(
            len(core.list_namespaced_pod(ns, field_selector=f"status.phase={phase}").items)
            for ns in namespaces
        )

    # -- objects ---------------------------------------------------------------------------------

    def namespace(self, name: str) -> str:
        """Create namespace ``name`` for this run; it (and all in it) goes when the run ends."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core: Any = client.CoreV1Api(self.api)
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=self.labels))
        try:
            core.create_namespace(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            raise ConfigError(
                f"namespace {name} exists and is not a bench run's; the case needs it for itself "
                f"(delete it: kubectl delete namespace {name})"
            ) from None
        if not self._namespaces:
            self.on_cleanup(self.delete_namespaces, self._namespaces)
        self._namespaces.append(name)
        return name

    def use_namespace(self, name: str) -> str:
        """Namespace ``name``: an existing one as it is (``default``), else created for this run
        and removed when it ends."""
        from kubernetes import client

        from kperf_core.cluster_api import ignore_missing

        if ignore_missing(client.CoreV1Api(self.api).read_namespace, name) is not None:
            return name
        return self.namespace(name)

    def delete_labelled(self, kind: str, namespace: str) -> None:
        """Delete this run's objects of ``kind`` (``configmaps``, …) in ``namespace``."""
        from kubernetes import client

        delete = getattr(client.CoreV1Api(self.api), f"delete_collection_namespaced_{kind}")
        delete(namespace, label_selector=f"{RUN_LABEL}={self.run_id}")

    def delete_namespaces(self, names: list[str]) -> None:
        """Delete namespaces (their objects with them) and wait until all are gone: together,
        since the namespace controller empties them in parallel."""
        from kubernetes import client

        from kperf_core.cluster_api import ignore_missing

        core = client.CoreV1Api(self.api)
        self._delete_namespace_objects(names)
        deadline = time.monotonic() + self.settings.wait
        for name in names:
            while ignore_missing(core.read_namespace, name) is not None:
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"namespace {name} still terminating after {self.settings.wait:g} s"
                    )
                time.sleep(0.5)

    def _delete_namespace_objects(self, names: list[str]) -> None:
        """Ask for the namespaces' deletion; gone (404) or already terminating (409) is fine."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(self.api)
        for name in names:
            try:
                core.delete_namespace(name)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

    def node_pool(
        self, name: str, nodes: int, shape: NodeShape, labels: Mapping[str, str] | None = None
    ) -> str:
        """Add virtual node pool ``name`` (``nodes`` Ready nodes of ``shape``) with the settings'
        backend; it goes when the run ends."""
        backend_name = self.settings.node_pool_backend
        backend = self._node_pool_backend(backend_name)
        if self.settings.eks and self.eks is None:
            self.eks = self._prepare_eks()
        spec = NodePoolSpec(
            name=name,
            nodes=nodes,
            cpu=shape.cpu,
            memory_gib=shape.memory_gib,
            max_pods=shape.max_pods,
            affinity=self.settings.vc_affinity,
            node_labels={**self.labels, POOL_BACKEND_LABEL: backend_name, **(labels or {})},
            shared_provider_id=self.eks["sharedProviderID"] if self.eks else "",
        )
        problems = spec.problems()
        if problems:
            raise ConfigError(f"node pool {name}: " + "; ".join(problems))
        self.progress(f"node pool {name}: adding {nodes} nodes ({backend_name})")
        self.on_cleanup(backend.delete, name)
        with self.watching(lambda: f"node pool {name}: {self._ready_nodes(name)}/{nodes} Ready"):
            backend.add(spec, self.settings.wait)
        self.progress(f"node pool {name}: {nodes} nodes Ready")
        return name

    def _ready_nodes(self, pool: str) -> int:
        from kubernetes import client

        core: Any = client.CoreV1Api(self.api)
        nodes = core.list_node(label_selector=f"{POOL_LABEL}={pool}").items
        return sum(
            any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or ())
            for n in nodes
        )

    def _prepare_eks(self) -> dict[str, Any]:
        """Upstream's ``--eks``: the virtual nodes will share an ``m4.large`` node's providerID,
        and EKS's DaemonSets that tolerate every taint are kept off them until the run ends."""
        from kubernetes import client

        from kperf_core.placement import EKS_IDLE_NODE_SELECTOR, shared_provider_id

        core: Any = client.CoreV1Api(self.api)
        nodes = core.list_node(label_selector=EKS_IDLE_NODE_SELECTOR).items
        provider_id = shared_provider_id([self.api.sanitize_for_serialization(n) for n in nodes])
        kept_off = [name for name in EKS_DAEMONSETS if self._keep_off_virtual_nodes(name)]
        if kept_off:
            self.progress(f"--eks: kube-system DaemonSets {', '.join(kept_off)} kept off the "
                          "virtual nodes until the run ends")  # fmt: skip
        return {"sharedProviderID": provider_id, "daemonSetsKeptOff": kept_off}

    def _keep_off_virtual_nodes(self, name: str) -> bool:
        """Add :func:`~kperf_core.placement.off_virtual_nodes` to kube-system DaemonSet ``name``
        and put its affinity back when the run ends; False when there is no such DaemonSet."""
        from kubernetes import client

        from kperf_core.cluster_api import ignore_missing
        from kperf_core.placement import off_virtual_nodes

        apps: Any = client.AppsV1Api(self.api)
        found = ignore_missing(apps.read_namespaced_daemon_set, name, "kube-system")
        if found is None:
            return False
        template = self.api.sanitize_for_serialization(found)["spec"]["template"]["spec"]
        original = template.get("affinity")
        path = "/spec/template/spec/affinity"
        # JSON patches: "add" sets the member whether or not it exists; the restore removes
        # what kperf added and nothing else of the DaemonSet
        patch = [{"op": "add", "path": path, "value": off_virtual_nodes(original)}]
        restore = (
            [{"op": "add", "path": path, "value": original}]
            if original is not None
            else [{"op": "remove", "path": path}]
        )
        apps.patch_namespaced_daemon_set(name, "kube-system", patch)
        self.on_cleanup(apps.patch_namespaced_daemon_set, name, "kube-system", restore)
        return True

    def _node_pool_backend(self, name: str) -> Any:
        return self._backend(self.pm.backends.node_pools, "--node-pool-backend", name)

    def _backend(self, registry: Any, flag: str, name: str) -> Any:
        if name not in registry.names():
            raise ConfigError(
                f"{flag} {name!r}: no such backend "
                f"(available: {', '.join(registry.names()) or 'none'})"
            )
        return registry[name](self.settings.kubeconfig, self.settings.context)

    # -- the runner group ------------------------------------------------------------------------

    def runner_placement(self) -> tuple[dict[str, tuple[str, ...]], tuple[dict[str, str], ...]]:
        """Node affinity and tolerations of the runner pods.

        On a cluster: ``--rg-affinity``. On the local control plane: a one-node pool whose kperf
        pods the embedded simulator executes (created once per run).
        """
        if self._runner_placement is None:
            if self.settings.local:
                pool = f"runners-{self.run_id}"
                self.node_pool(
                    pool, 1, NodeShape(), {EXECUTOR_NODE_LABEL[0]: EXECUTOR_NODE_LABEL[1]}
                )
                toleration = {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
                self._runner_placement = ({POOL_LABEL: (pool,)}, (toleration,))
            else:
                self._runner_placement = (dict(self.settings.rg_affinity), ())
        return self._runner_placement

    def run_runner_group(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Run one runner group of ``spec`` (upstream's document) to completion; return its
        merged report. ``spec['nodeAffinity']`` becomes the runners' placement."""
        from ruamel.yaml import YAML

        from kperf_core.profile import parse_runner_group_spec

        affinity, tolerations = self.runner_placement()
        spec["nodeAffinity"] = {key: list(values) for key, values in affinity.items()}
        stream = _StringSink()
        YAML().dump(spec, stream)
        text = stream.text
        parse_runner_group_spec(text, f"{self.case} runner-group spec", self.pm.request_types)
        backend = self._runner_group_backend()
        # Upstream removes any runner group first: one per cluster, and an aborted run's is stale.
        backend.delete()
        plan = RunnerGroupPlan(
            specs=(text,),
            runner_image=self.settings.runner_image,
            priority_level=self.settings.priority_level,
            matching_precedence=self.settings.matching_precedence,
            node_affinity=affinity,
            tolerations=tolerations,
        )
        self.progress(f"runner group: {spec['count']} runners ({backend.name})")
        self.on_cleanup(backend.delete)
        started = time.monotonic()
        backend.run(plan, self.settings.wait)
        self.progress("runner group: running; waiting for every runner's report")
        # a backend of its own: the watching thread polls it while this one waits
        watched = self._runner_group_backend()
        with self.watching(lambda: _runners_finished(watched.status(), int(spec["count"]))):
            result: dict[str, Any] = backend.result(
                True, RESULT_STRETCH * profile_seconds(spec) + RESULT_MARGIN_SECONDS
            )
        if result.get("missing"):
            raise BackendError(
                "runner group: no result from " + ", ".join(map(str, result["missing"]))
            )
        self.runner_seconds += time.monotonic() - started
        self.progress("runner group: every runner reported")
        return result

    def _runner_group_backend(self) -> Any:
        return self._backend(
            self.pm.backends.runner_groups,
            "--runner-group-backend",
            self.settings.runner_group_backend,
        )

    # -- background workloads --------------------------------------------------------------------

    def in_background(self, name: str, work: Callable[[threading.Event], None]) -> None:
        """Run ``work(stop)`` in a thread until the run ends (``stop`` is then set and the thread
        joined). A failing workload is reported on stderr; the measurement stands."""

        stop = threading.Event()
        self._stops.append(stop)

        def guarded() -> None:
            try:
                work(stop)
            except Exception as exc:
                if not stop.is_set():
                    self.progress(f"runkperf: workload {name}: {exc}")

        thread = threading.Thread(target=guarded, name=name, daemon=True)

        def halt() -> None:
            stop.set()
            thread.join()

        self.on_cleanup(halt)
        thread.start()

    # -- leftovers -------------------------------------------------------------------------------

    def _remove_leftovers(self) -> None:
        """Remove what aborted earlier runs left: their namespaces (with what is in them),
        ConfigMaps, node pools and CRDs (with their custom resources)."""
        from kubernetes import client

        from kperf_core.cluster_api import ignore_missing

        core: Any = client.CoreV1Api(self.api)
        extensions: Any = client.ApiextensionsV1Api(self.api)
        namespaces = core.list_namespace(label_selector=RUN_LABEL).items
        configmaps = core.list_config_map_for_all_namespaces(label_selector=RUN_LABEL).items
        nodes = core.list_node(label_selector=RUN_LABEL).items
        crds = extensions.list_custom_resource_definition(label_selector=RUN_LABEL).items
        found = (*namespaces, *configmaps, *nodes, *crds)
        if not found:
            return
        runs = sorted({o.metadata.labels[RUN_LABEL] for o in found})
        pools = {
            node.metadata.labels.get(POOL_LABEL, ""): node.metadata.labels.get(
                POOL_BACKEND_LABEL, "embedded"
            )
            for node in nodes
        }
        self.progress(
            f"removing what aborted run(s) {', '.join(runs)} left: {len(namespaces)} namespaces, "
            f"{len(configmaps)} ConfigMaps, {len(pools)} node pools, {len(crds)} CRDs"
        )
        for crd in crds:
            ignore_missing(extensions.delete_custom_resource_definition, crd.metadata.name)
        for cm in configmaps:
            ignore_missing(
                core.delete_namespaced_config_map, cm.metadata.name, cm.metadata.namespace
            )
        for pool, backend in pools.items():
            self._node_pool_backend(backend).delete(pool)
        self.delete_namespaces([namespace.metadata.name for namespace in namespaces])

    # -- the API server's facts ------------------------------------------------------------------

    def apiserver_facts(self) -> dict[str, Any]:
        """The API server's version and, when its ``/metrics`` exposes it, its GOMAXPROCS, keyed
        by its address as upstream keys them (read through the API: no root, no /etc/hosts)."""
        from kubernetes import client

        version = client.VersionApi(self.api).get_code().git_version
        host = urlsplit(self.api.configuration.host).hostname or ""
        cores = self._gomaxprocs()
        return {"version": version, "cores": {host: cores} if cores is not None else {}}

    def _gomaxprocs(self) -> int | None:
        # The generated client's own request path: its TLS and credentials, whatever they are.
        request = self.api.param_serialize(
            method="GET", resource_path="/metrics", auth_settings=["BearerToken"]
        )
        response = self.api.call_api(*request)
        response.read()
        for line in response.data.decode().splitlines():
            if line.startswith("go_sched_gomaxprocs_threads "):
                return int(float(line.split()[1]))
        return None


def _runners_finished(groups: list[dict[str, Any]], count: int) -> str:
    """``runners finished n/N`` from the runner groups' status (their Jobs' counts)."""
    done = sum(g["status"].get("succeeded", 0) + g["status"].get("failed", 0) for g in groups)
    failed = sum(g["status"].get("failed", 0) for g in groups)
    return f"runners finished {done}/{count}" + (f" ({failed} failed)" if failed else "")


class _Ticker:
    """A thread showing ``parts`` (joined) on ``status`` every :data:`WATCH_SECONDS` until
    stopped. A part that fails (the API server busy) shows as ``?``: progress never fails a run."""

    def __init__(
        self, status: LiveStatus, lock: threading.Lock, parts: Sequence[Callable[[], str]]
    ) -> None:
        self.status = status
        self.lock = lock
        self.parts = parts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            text = " · ".join(map(_describe, self.parts))
            with self.lock:
                self.status.update(text)


def _describe(part: Callable[[], str]) -> str:
    try:
        return part()
    except Exception as exc:
        log.debug("progress: %s", exc)
        return "?"


class _StringSink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, data: str | bytes) -> None:
        self.text += data.decode() if isinstance(data, bytes) else data


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _hold_interrupt(signum: int, frame: FrameType | None) -> None:
    print("runkperf: cleaning up; interrupting now would leave objects behind", file=sys.stderr)


def run_scenario(
    scenario: Scenario,
    settings: BenchSettings,
    options: Mapping[str, Any],
    pm: KperfPluginManager,
    status: LiveStatus,
) -> BenchReport:
    """Run one case and return its report, ``info`` completed with the run's facts: the runner
    group's running time, the scale, the run id, and the API server's version and cores before
    and after the load."""
    with BenchRun(settings, pm, scenario.name, status) as bench:
        before = bench.apiserver_facts()
        report = scenario.run(bench, options)
        after = bench.apiserver_facts()
    info = {
        **report.info,
        "runningTime": round(bench.runner_seconds, 3),
        "scale": settings.scale,
        "runId": bench.run_id,
        **({"eks": bench.eks} if bench.eks is not None else {}),
        "apiserver": {
            "version": after["version"],
            "cores": {"before": before["cores"], "after": after["cores"]},
        },
    }
    # Runner groups merge the runners' measurements; who ran the case and against what is the
    # bench's to say (the same facts `kperf runner run` reports).
    facts = {
        "version": __version__,
        "server": bench.api.configuration.host,
        "serverVersion": after["version"],
        "seed": None,
        "interrupted": False,
        "reportFormat": REPORT_FORMAT,
        **report.result.get("kperf", {}),
    }
    return attrs.evolve(report, result={**report.result, "kperf": facts}, info=info)
