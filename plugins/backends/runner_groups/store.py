"""Durable storage of the results runners post: one ConfigMap per runner, written before the
server answers 201, so a restarted server (or a new one) loses nothing.

Creating the ConfigMap is the atomic step: a second post for the same runner gets 409 from the
apiserver, whichever server process received it.
"""

from __future__ import annotations

import json
from typing import Any

from .jobs import APP_LABEL, COMPONENT_LABEL, GROUP_LABEL

RESULT_KEY = "result.json"
RUNNER_ANNOTATION = "runnergroups.kperf.io/runner"


class AlreadyStored(Exception):
    """The runner posted its result before."""


class ResultStore:
    def __init__(self, core_v1: Any, namespace: str, owner: dict[str, Any] | None) -> None:
        self.core = core_v1
        self.namespace = namespace
        self.owner = owner

    @staticmethod
    def object_name(runner: str) -> str:
        # Pod names are DNS subdomains of at most 253 characters; "result-" keeps it one.
        return f"result-{runner}"[:253]

    def put(self, group: str, runner: str, report: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        metadata: dict[str, Any] = {
            "name": self.object_name(runner),
            "labels": {APP_LABEL[0]: APP_LABEL[1], COMPONENT_LABEL: "result", GROUP_LABEL: group},
            "annotations": {RUNNER_ANNOTATION: runner},
        }
        if self.owner:
            metadata["ownerReferences"] = [self.owner]
        body = {
            "metadata": metadata,
            "immutable": True,
            "data": {RESULT_KEY: json.dumps(report, separators=(",", ":"))},
        }
        try:
            self.core.create_namespaced_config_map(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise AlreadyStored(runner) from None
            raise

    def results(self, group: str) -> dict[str, dict[str, Any]]:
        """runner pod name → its report, for one group."""
        listed = self.core.list_namespaced_config_map(
            self.namespace,
            label_selector=f"{GROUP_LABEL}={group},{COMPONENT_LABEL}=result",
        )
        found = {}
        for item in listed.items:
            runner = (item.metadata.annotations or {}).get(RUNNER_ANNOTATION)
            if runner and RESULT_KEY in (item.data or {}):
                found[runner] = json.loads(item.data[RESULT_KEY])
        return found
