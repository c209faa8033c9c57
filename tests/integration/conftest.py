from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from ruamel.yaml import YAML

from kperf_core.api_calls import classify, server_call

KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]


def kperf_command(
    args: list[str], *, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``kperf ARGS`` as a user would (``subprocess.run(capture_output=True, text=True)``).
    A command still running after ``timeout`` fails the test with every thread's Python stack:
    faulthandler dumps them on SIGABRT, so a hang says where it hung instead of "timed out"."""
    proc = subprocess.Popen(
        [*KPERF, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONFAULTHANDLER": "1"},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        pytest.fail(f"kperf {' '.join(args)}: still running after {timeout:g} s\n{err[-6000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="session", autouse=True)
def session_tmpdir(tmp_path_factory):
    """A $TMPDIR private to the session for every process the tests start, empty at the end:
    a file left there is one a process wrote and did not remove, often because it was killed
    (the shared /tmp cannot be checked: other people's processes write there).

    This process keeps the system's: what it writes is removed only when it exits, after this
    check."""
    tempfile.gettempdir()  # caches this process's choice before $TMPDIR changes
    directory = tmp_path_factory.mktemp("tmpdir")
    patch = pytest.MonkeyPatch()
    patch.setenv("TMPDIR", str(directory))
    try:
        yield directory
    finally:
        patch.undo()
    left = sorted(path.name for path in directory.iterdir())
    assert left == [], f"temp files left in the session's TMPDIR {directory}: {left}"


@pytest.fixture(scope="session")
def kube_api(kperf_control_plane):
    """A kubernetes ApiClient for the session's local control plane (client-certificate user).

    Through kperf's loader: the ``kubernetes`` one copies the certificates and key to /tmp, where
    they stay if the session is killed (e.g. by ``timeout``)."""
    from kperf_core.cluster_api import api_client as kperf_api_client

    api_client = kperf_api_client(kperf_control_plane.kubeconfig, None)
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def core_v1(kube_api):
    from kubernetes import client

    return client.CoreV1Api(kube_api)


#: The last minor whose token controller gives every service account a token Secret (1.24 stopped;
#: pods get projected tokens from the TokenRequest API instead).
LAST_MINOR_WITH_TOKEN_SECRETS = 23


#: How apiserver_request_total labels a pods/log request: GET on v1.20, CONNECT on current servers.
POD_LOG_VERBS = ("GET", "CONNECT")


def serves_streaming_lists(minor: int) -> bool:
    """Whether a server of this minor answers streaming lists (``sendInitialEvents``) with its
    default feature gates: WatchList was on by default in 1.32, off in 1.33, on since 1.34."""
    return minor == 32 or minor >= 34


@pytest.fixture(scope="session")
def kube_version(pytestconfig) -> str:
    """The Kubernetes version the session's control plane runs, as the suite asked for it."""
    from kperf_plugins.backends.local_control_plane.binaries import provisioned_versions

    return pytestconfig.getoption("kube_version") or provisioned_versions()[0]


@pytest.fixture(scope="session")
def kube_minor(kube_api) -> int:
    """The served Kubernetes minor version: what some tests expect depends on it."""
    from kubernetes import client

    return int(re.match(r"\d+", client.VersionApi(kube_api).get_code().minor)[0])


@pytest.fixture
def namespace(core_v1, kube_minor):
    """A fresh namespace, deleted (with everything in it) after the test."""
    from kubernetes import client

    name = f"kperf-it-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # The controller manager publishes `kube-root-ca.crt` and the default service account (and on
    # old servers its token Secret) into every new namespace. Wait for them: their writes must not
    # land inside a test's before/after scrape of the apiserver's counters, and pods cannot be
    # created without the service account (old servers: without its token).
    wants_secret = kube_minor <= LAST_MINOR_WITH_TOKEN_SECRETS
    deadline = time.monotonic() + 30
    while not (
        core_v1.list_namespaced_config_map(
            name, field_selector="metadata.name=kube-root-ca.crt"
        ).items
        and any(
            sa.secrets or not wants_secret
            for sa in core_v1.list_namespaced_service_account(name).items
        )
    ):
        if time.monotonic() > deadline:
            raise AssertionError(f"namespace {name}: controllers never populated it")
        time.sleep(0.05)
    yield name
    delete_namespace(core_v1, name)


def delete_namespace(core_v1, name: str) -> None:
    """Delete a namespace and wait until it is gone (kperf's own rule): the namespace controller
    deletes what is in it asynchronously, and those requests must not land in a later test's
    counter scrape."""
    from kperf_core.cluster_api import delete_namespace as delete_and_wait

    delete_and_wait(core_v1.api_client, name)


class Series(NamedTuple):
    """One series of ``apiserver_request_total``: the labels the tests tell apart."""

    verb: str
    resource: str
    subresource: str
    code: str
    group: str
    scope: str


class ApiserverRequests:
    """The apiserver's own count of requests (``apiserver_request_total``), for deltas."""

    def __init__(self, kube_api, kube_minor: int) -> None:
        self.kube_api = kube_api
        #: Calls the server may count more of than a run made, on every test. On v1.20 the suite
        #: twice saw 6 namespaced LISTs of configmaps that no test made, inside the windows of
        #: unrelated tests (each passes alone): most likely the control plane's own namespaced
        #: configmap informers (kube-system's authentication configmaps) relisting.
        self.shared: frozenset[tuple[str, str, str]] = (
            frozenset({("LIST", "configmaps", "namespace")}) if kube_minor <= 20 else frozenset()
        )

    def scrape(self) -> collections.Counter[Series]:
        """Requests on resources per series of the counter, once the counts settle:
        the apiserver counts a request after it has answered it, so a client can be done before
        its last requests are counted (on a busy machine, noticeably later).

        First waits until no namespace is terminating: commands such as `vc nodepool delete` delete
        their namespace without waiting, and the namespace controller's cleanup (LIST and DELETE of
        what is in it, the root-CA publisher POSTing `kube-root-ca.crt` back) would otherwise land
        in a later test's window."""
        self._wait_for_no_terminating_namespace()
        counts = self._scrape_once()
        for _ in range(10):  # controllers' own traffic may never stop: a bounded wait
            time.sleep(0.3)
            again = self._scrape_once()
            if again == counts:
                break
            counts = again
        return counts

    def _wait_for_no_terminating_namespace(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.kube_api)
        deadline = time.monotonic() + 120
        while terminating := [
            ns.metadata.name
            for ns in core.list_namespace().items
            if ns.status.phase == "Terminating"
        ]:
            if time.monotonic() > deadline:
                raise AssertionError(f"namespaces still terminating after 120 s: {terminating}")
            time.sleep(0.2)

    def _scrape_once(self) -> collections.Counter[Series]:
        response = self.kube_api.rest_client.pool_manager.request(
            "GET", self.kube_api.configuration.host + "/metrics"
        )
        counts: collections.Counter[Series] = collections.Counter()
        for line in response.data.decode().splitlines():
            if line.startswith("apiserver_request_total{"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                key = Series(
                    labels["verb"],
                    labels.get("resource", ""),
                    labels.get("subresource", ""),
                    labels.get("code", ""),
                    labels.get("group", ""),
                    labels.get("scope", ""),
                )
                if key.resource:  # not /metrics, /version and the like: this scrape is one of them
                    counts[key] += int(float(line.rsplit(" ", 1)[1]))
        return counts

    def assert_accounted(
        self,
        report: dict[str, Any],
        before,
        after,
        at_least: frozenset[tuple[str, str, str]] = frozenset(),
    ) -> None:
        """The report's requests (load, background and ``requestsOutsideLoad``) are what the server
        counted, per API call (verb, resource, scope: kperf's classes, :mod:`kperf_core.api_calls`,
        as the server view reads the server's labels) for every resource the report names —
        exactly, but for WATCH: the controllers' own informers watch every resource, and their
        sessions end (and are counted) at random times, so there the server may count more; and
        for the calls in ``at_least``, which controllers make too. Scopes keep the controllers'
        cluster-wide lists and relists apart from a run's requests in its namespace."""
        reported = reported_requests(report)
        resources = {resource for _, resource, _ in reported}
        server: collections.Counter[tuple[str, str, str]] = collections.Counter()
        for series, n in after.items():
            call = server_call(
                series.verb, series.group, series.resource, series.subresource, series.scope
            )
            if call.resource in resources:
                server[call.key] += n - before.get(series, 0)
        server = +server  # only what changed
        at_least |= self.shared
        for key in [k for k in server if k[0] == "WATCH" or k in at_least]:
            assert server.pop(key) >= reported.get(key, 0), key
            reported.pop(key, None)
        assert dict(server) == {k: v for k, v in reported.items() if k[0] != "WATCH"}

    @staticmethod
    def delta(before, after, verb: str | tuple[str, ...], resource: str) -> dict[str, int]:
        """Requests per response code for one verb (or any of several) and resource between two
        scrapes."""
        verbs = (verb,) if isinstance(verb, str) else verb
        codes: dict[str, int] = collections.Counter()
        for series, n in after.items():
            if series.verb in verbs and series.resource == resource:
                if change := n - before.get(series, 0):
                    codes[series.code] += change
        return dict(codes)


@pytest.fixture(scope="session")
def apiserver_requests(kube_api, kube_minor) -> ApiserverRequests:
    return ApiserverRequests(kube_api, kube_minor)


class ApiserverMetrics:
    """Any counter of the apiserver's ``/metrics``, summed by one label."""

    def __init__(self, kube_api) -> None:
        self.kube_api = kube_api

    def total(self, name: str, by: str = "priority_level", **match: str) -> dict[str, float]:
        response = self.kube_api.rest_client.pool_manager.request(
            "GET", self.kube_api.configuration.host + "/metrics"
        )
        totals: dict[str, float] = collections.defaultdict(float)
        for line in response.data.decode().splitlines():
            if line.startswith(name + "{"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                if all(labels.get(k) == v for k, v in match.items()):
                    totals[labels.get(by, "")] += float(line.rsplit(" ", 1)[1])
        return totals


@pytest.fixture(scope="session")
def apiserver_metrics(kube_api) -> ApiserverMetrics:
    return ApiserverMetrics(kube_api)


@pytest.fixture(scope="session")
def flowcontrol_version(kube_api) -> str:
    """The newest ``flowcontrol.apiserver.k8s.io`` version served (v1 since 1.29; v1beta1 on
    1.20), as the charts discover it."""
    from kubernetes import client

    group = next(
        g
        for g in client.ApisApi(kube_api).get_api_versions().groups
        if g.name == "flowcontrol.apiserver.k8s.io"
    )
    return group.preferred_version.version


@pytest.fixture
def run_kperf(kperf_control_plane, tmp_path):
    """Run ``kperf runner run`` as a user would: a profile file, the CLI, a JSON report."""

    def run(profile: dict[str, Any], *args: str, env: dict[str, str] | None = None):
        profile_path = tmp_path / f"profile-{uuid.uuid4().hex[:6]}.yaml"
        with profile_path.open("w") as f:
            YAML().dump(profile, f)
        result_path = tmp_path / "report.json"
        result_path.unlink(missing_ok=True)
        proc = subprocess.run(
            [
                *KPERF,
                "runner",
                "run",
                "--config",
                str(profile_path),
                "--result",
                str(result_path),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "KUBECONFIG": str(kperf_control_plane.kubeconfig), **(env or {})},
        )
        report = json.loads(result_path.read_text()) if result_path.exists() else None
        return proc, report

    return run


def make_configmaps(core_v1, namespace: str, prefix: str, count: int, size: int = 100) -> None:
    from kubernetes import client

    for i in range(count):
        core_v1.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name=f"{prefix}-{i}", labels={"app": "kperf-it", "index": str(i)}
                ),
                data={"payload": "x" * size},
            ),
        )


def spec(requests: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A one-spec profile."""
    return {"version": 1, "specs": [{"conns": 2, "client": 5, **fields, "requests": requests}]}


def reported_requests(report: dict[str, Any]) -> collections.Counter[tuple[str, str, str]]:
    """Every request the report accounts for, per API call (verb, resource, scope)."""
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def add(key: str, n: int) -> None:
        call = classify(key)
        if call.resource != "(other)":
            # the server counts a watch-list as a WATCH (kperf's key says which kind it was)
            verb = "WATCH" if call.verb == "WATCHLIST" else call.verb
            counts[(verb, call.resource, call.scope)] += n

    aggregated = report["aggregated"]
    for key, stats in aggregated["requestsByURL"].items():
        add(key, stats["succeeded"] + stats["failed"])
    for keys in aggregated["requestsOutsideLoad"].values():
        for key, statuses in keys.items():
            add(key, sum(statuses.values()))
    return counts


def by_method(report_section: dict[str, Any]) -> dict[str, dict[str, int]]:
    """requestsByURL summed per method label (GET, LIST, PUT, …)."""
    totals: dict[str, dict[str, int]] = {}
    for key, counts in report_section["requestsByURL"].items():
        method = key.split(" ", 1)[0]
        slot = totals.setdefault(method, {"succeeded": 0, "failed": 0})
        slot["succeeded"] += counts["succeeded"]
        slot["failed"] += counts["failed"]
    return totals


KPERF_PATH = Path(sys.executable).parent / "kperf"
