"""The objects the runner-group server creates for each group: the profile ConfigMap and the
Indexed Job of runner pods, both owned by the server pod so that deleting it removes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from kperf_core.errors import ConfigError
from kperf_core.virtual_nodes import KPERF_POD_LABEL

#: Label on every pod kperf's runner image runs (server and runners); the embedded node
#: simulator executes only such pods.
APP_LABEL = KPERF_POD_LABEL
COMPONENT_LABEL = "app.kubernetes.io/component"
GROUP_LABEL = "runnergroups.kperf.io/group"
PROFILE_KEY = "load_profile.yaml"
#: Where the runner container sees its profile.
PROFILE_DIR = "/config"


@attrs.frozen
class Owner:
    """``APIVersion:Kind:Name:UID`` (upstream's ``--runner-owner``)."""

    api_version: str
    kind: str
    name: str
    uid: str

    @classmethod
    def parse(cls, value: str) -> Owner:
        parts = value.split(":")
        if len(parts) != 4 or not all(parts):
            raise ConfigError(f"--runner-owner {value!r}: expected APIVersion:Kind:Name:UID")
        return cls(*parts)

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
        }


@attrs.frozen(kw_only=True)
class RunnerSettings:
    """What every group's runner pods share."""

    image: str
    service_account: str
    verbosity: int
    #: ``http://<server pod IP>:<port>`` — runners post to ``…/v1/runnergroups/<pod>/result``
    server_url: str
    token_secret: str
    tolerations: Sequence[Mapping[str, Any]] = ()
    owner: Owner | None = None


def _metadata(name: str, namespace: str, settings: RunnerSettings) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {APP_LABEL[0]: APP_LABEL[1], GROUP_LABEL: name},
    }
    if settings.owner is not None:
        metadata["ownerReferences"] = [settings.owner.reference()]
    return metadata


def profile_configmap(
    name: str, namespace: str, profile_yaml: str, settings: RunnerSettings
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(name, namespace, settings),
        "immutable": True,
        "data": {PROFILE_KEY: profile_yaml},
    }


def node_affinity(selectors: Mapping[str, Sequence[str]] | None) -> dict[str, Any] | None:
    """Required node affinity: one term, every key ``In`` its values (upstream's)."""
    if not selectors:
        return None
    expressions = [
        {"key": key, "operator": "In", "values": list(values)}
        for key, values in sorted(selectors.items())
    ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def runner_job(
    name: str,
    namespace: str,
    count: int,
    selectors: Mapping[str, Sequence[str]] | None,
    service_account: str | None,
    settings: RunnerSettings,
) -> dict[str, Any]:
    """An Indexed Job of ``count`` runner pods, spread over nodes, never retried (a failed
    runner is reported as missing, not re-run into a second result)."""
    labels = {APP_LABEL[0]: APP_LABEL[1], COMPONENT_LABEL: "runner", GROUP_LABEL: name}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account or settings.service_account,
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {GROUP_LABEL: name}},
            }
        ],
        "containers": [_runner_container(settings)],
        "volumes": [{"name": "config", "configMap": {"name": name}}],
    }
    affinity = node_affinity(selectors)
    if affinity:
        pod_spec["affinity"] = affinity
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(name, namespace, settings),
        "spec": {
            "completions": count,
            "parallelism": count,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _runner_container(settings: RunnerSettings) -> dict[str, Any]:
    """The runner: ``kperf runnergroup runner`` with the group's profile, posting to the server."""
    return {
        "name": "runner",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "kperf",
            "runnergroup",
            "runner",
            f"--config={PROFILE_DIR}/{PROFILE_KEY}",
            "--target-url=$(TARGET_URL)",
            f"--runner-verbosity={settings.verbosity}",
        ],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("POD_UID", "metadata.uid"),
            {
                "name": "TARGET_URL",
                "value": f"{settings.server_url}/v1/runnergroups/$(POD_NAME)/result",
            },
            {
                "name": "RUNNERGROUP_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": settings.token_secret, "key": "token"}},
            },
        ],
        "volumeMounts": [{"name": "config", "mountPath": PROFILE_DIR, "readOnly": True}],
    }


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def job_state(job: Any) -> dict[str, Any]:
    """Upstream's group status from a Job: finished when every pod ended, running once started."""
    status = job.status
    succeeded = (status and status.succeeded) or 0
    failed = (status and status.failed) or 0
    completions = job.spec.completions or 0
    if succeeded + failed >= completions:
        state = "finished"
    elif status and status.start_time:
        state = "running"
    else:
        state = "unknown"
    start = (
        status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ") if status and status.start_time else None
    )
    return {"state": state, "startTime": start, "succeeded": succeeded, "failed": failed}
