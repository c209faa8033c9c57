from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]


@pytest.fixture(scope="session")
def kube_api(kperf_control_plane):
    """A kubernetes ApiClient for the session's local control plane (client-certificate user)."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(kperf_control_plane.kubeconfig))
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
    """Delete a namespace and wait until it is gone: the namespace controller deletes what is in
    it asynchronously, and those requests must not land in a later test's counter scrape."""
    from kubernetes.client.exceptions import ApiException

    core_v1.delete_namespace(name)
    deadline = time.monotonic() + 120
    while True:
        try:
            core_v1.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if time.monotonic() > deadline:
            raise AssertionError(f"namespace {name} was not deleted within 120 s")
        time.sleep(0.2)


class ApiserverRequests:
    """The apiserver's own count of requests (``apiserver_request_total``), for deltas."""

    def __init__(self, kube_api) -> None:
        self.kube_api = kube_api

    def scrape(self) -> collections.Counter[tuple[str, str, str]]:
        response = self.kube_api.rest_client.pool_manager.request(
            "GET", self.kube_api.configuration.host + "/metrics"
        )
        counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        for line in response.data.decode().splitlines():
            if line.startswith("apiserver_request_total{"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                key = (labels["verb"], labels.get("resource", ""), labels.get("code", ""))
                counts[key] += int(float(line.rsplit(" ", 1)[1]))
        return counts

    @staticmethod
    def delta(before, after, verb: str | tuple[str, ...], resource: str) -> dict[str, int]:
        """Requests per response code for one verb (or any of several) and resource between two
        scrapes."""
        verbs = (verb,) if isinstance(verb, str) else verb
        codes: dict[str, int] = collections.Counter()
        for (v, r, code), n in after.items():
            if v in verbs and r == resource and n - before.get((v, r, code), 0):
                codes[code] += n - before.get((v, r, code), 0)
        return dict(codes)


@pytest.fixture(scope="session")
def apiserver_requests(kube_api) -> ApiserverRequests:
    return ApiserverRequests(kube_api)


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


def spec(requests: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A one-spec profile."""
    return {"version": 1, "specs": [{"conns": 2, "client": 5, **fields, "requests": requests}]}


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
