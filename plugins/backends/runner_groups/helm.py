"""The ``helm`` runner-group backend: upstream's design — the ``runnergroup`` chart installed with
Helm (helm-python-sdk, no helm binary) as release ``runnergroup-server`` in namespace
``runnergroups-kperf-io``; the server pod it starts creates the runners' Jobs.
"""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from kperf_core.backends import RunnerGroupBackend, RunnerGroupPlan
from kperf_core.cluster_api import await_namespace_usable, delete_namespace
from kperf_core.errors import BackendError, ConfigError
from kperf_core.helm import helm_call, helm_config

from .client import ServerClient, ServerUnavailable
from .specs import load_document, runner_rules

NAMESPACE = "runnergroups-kperf-io"
RELEASE = "runnergroup-server"
SERVER_PORT = 8080
TOKEN_SECRET = f"{RELEASE}-token"
#: Newest first: the chart's FlowSchema uses the newest version the server serves.
FLOWCONTROL_VERSIONS = ("v1", "v1beta3", "v1beta2", "v1beta1")
FLOWCONTROL_GROUP = "flowcontrol.apiserver.k8s.io"
RESULT_POLL_SECONDS = 2.0


def chart() -> Path:
    return Path(str(files("kperf_charts") / "runnergroup"))


class HelmRunnerGroups(RunnerGroupBackend):
    name = "helm"

    def __init__(self, kubeconfig: Path | None, context: str | None, **options: Any) -> None:
        super().__init__(kubeconfig, context)
        from kperf_core.cluster_api import api_client

        self.api = api_client(kubeconfig, context)
        self.helm = helm_config(kubeconfig, context, NAMESPACE)
        self.server = ServerClient(self.api, NAMESPACE, RELEASE, SERVER_PORT, TOKEN_SECRET)

    # -- run -------------------------------------------------------------------------------------

    def run(self, plan: RunnerGroupPlan, wait: float) -> None:
        if self._installed():
            raise ConfigError(
                f"runner groups are placed already (release {RELEASE} in {NAMESPACE}); "
                "`kperf runnergroup delete` first"
            )
        values = self.values(plan)
        await_namespace_usable(self.api, NAMESPACE)  # an interrupted delete may still be going
        try:  # all or nothing, Ctrl-C included
            self._helm(
                "install",
                chart(),
                RELEASE,
                values,
                create_namespace=True,
                wait="watcher" if wait else None,
                timeout=int(wait) if wait else None,
                labels={"runnergroups.kperf.io/managed": "true"},
            )
        except BaseException:
            self.delete()
            raise

    def values(self, plan: RunnerGroupPlan) -> dict[str, Any]:
        """The chart's values for ``plan``, with what the cluster must provide checked first."""
        rules: list[dict[str, Any]] = []
        for text in plan.specs:
            for rule in runner_rules(load_document(text).get("loadProfile") or {}):
                if rule not in rules:
                    rules.append(rule)
        version = self.flowcontrol_version()
        self._require_priority_level(version, plan.priority_level)
        return {
            "name": RELEASE,
            "image": plan.runner_image,
            "groups": list(plan.specs),
            "runnerVerbosity": str(plan.runner_verbosity),
            "port": SERVER_PORT,
            "nodeSelectors": {k: list(v) for k, v in plan.node_affinity.items()},
            "tolerations": [dict(t) for t in plan.tolerations],
            "flowcontrol": {
                "apiVersion": f"{FLOWCONTROL_GROUP}/{version}",
                "priorityLevelConfiguration": plan.priority_level,
                "matchingPrecedence": plan.matching_precedence,
            },
            "runnerRules": rules,
        }

    def flowcontrol_version(self) -> str:
        """The newest flowcontrol API version the server serves (v1 on ≥ 1.29, v1beta1 on
        1.20); an error when API Priority and Fairness is off."""
        from kubernetes import client

        groups = client.ApisApi(self.api).get_api_versions().groups
        served = {v.version for g in groups if g.name == FLOWCONTROL_GROUP for v in g.versions}
        for version in FLOWCONTROL_VERSIONS:
            if version in served:
                return version
        raise ConfigError(
            f"the API server serves no {FLOWCONTROL_GROUP} version kperf knows "
            f"(served: {', '.join(sorted(served)) or 'none'}); is API Priority and Fairness off?"
        )

    def _require_priority_level(self, version: str, name: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        objects = client.CustomObjectsApi(self.api)
        try:
            objects.get_cluster_custom_object(
                FLOWCONTROL_GROUP, version, "prioritylevelconfigurations", name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            listed = objects.list_cluster_custom_object(
                FLOWCONTROL_GROUP, version, "prioritylevelconfigurations"
            )
            names = sorted(item["metadata"]["name"] for item in listed["items"])
            raise ConfigError(
                f"--runner-flowcontrol: no priority level {name!r} "
                f"(the cluster has: {', '.join(names)})"
            ) from None

    # -- status, result --------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        self._require_installed()
        status, body = self.server.get("/v1/runnergroups")
        return list(self._ok(status, body, 200))

    def result(self, wait: bool, timeout: float) -> dict[str, Any]:
        from kperf_core.live_status import LiveStatus

        self._require_installed()
        status = LiveStatus()
        try:
            return self._poll_result(wait, timeout, status)
        finally:
            status.close()

    def _poll_result(self, wait: bool, timeout: float, status: Any) -> dict[str, Any]:
        """The merged report once every runner posted, saying on ``status`` (stderr) who is
        still missing while it waits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                code, body = self.server.get("/v1/runnergroups/summary")
            except ServerUnavailable:
                if not wait or time.monotonic() > deadline:
                    raise
                # a restarting server (its pod restarts in place): its results are stored
                status.update("waiting for the runner-group server (restarting)")
                time.sleep(RESULT_POLL_SECONDS)
                continue
            if code == 200:
                return dict(body)
            if code != 404 or not isinstance(body, dict) or "missing" not in body:
                self._ok(code, body, 200)
            missing: list[str] = body["missing"]
            if not wait:
                raise BackendError("the runner groups are still running (use --wait)")
            if time.monotonic() > deadline:
                raise BackendError(
                    f"the runner groups did not finish within {timeout:.0f} s; "
                    f"runners without a result: {', '.join(missing) or 'none'}"
                )
            shown = ", ".join(missing[:4]) + (", …" if len(missing) > 4 else "")
            status.update(
                f"waiting for runners: {len(missing)} without a result yet ({shown}); "
                f"{max(0.0, deadline - time.monotonic()):.0f}s left of --timeout"
            )
            time.sleep(RESULT_POLL_SECONDS)

    @staticmethod
    def _ok(status: int, body: Any, expected: int) -> Any:
        if status != expected:
            message = body.get("error") if isinstance(body, dict) else body
            raise BackendError(f"runner-group server answered HTTP {status}: {message}")
        return body

    # -- delete ----------------------------------------------------------------------------------

    def delete(self) -> None:
        """Uninstall the release, then remove the namespace (Jobs, pods, stored results) and wait
        until it is gone, so that no runner outlives the command."""
        self._helm("uninstall", RELEASE, ignore_not_found=True)
        delete_namespace(self.api, NAMESPACE)

    # -- helm ------------------------------------------------------------------------------------

    def _installed(self) -> bool:
        return any(release["name"] == RELEASE for release in self._helm("list"))

    def _require_installed(self) -> None:
        if not self._installed():
            raise ConfigError(
                f"no runner groups are placed (no release {RELEASE} in {NAMESPACE}); "
                "`kperf runnergroup run` first"
            )

    def _helm(self, action: str, *args: Any, **kwargs: Any) -> Any:
        return helm_call(self.helm, action, *args, **kwargs)
