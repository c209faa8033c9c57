"""Durable storage of what the server must not lose when it restarts: the results runners post
(one ConfigMap per runner, written before the server answers 201) and the snapshots of the API
server's figures taken before the runners started and after they finished.

Creating the ConfigMap is the atomic step: a second post for the same runner gets 409 from the
apiserver, whichever server process received it; of two snapshots of the same moment, the first
kept is the one both processes use.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .jobs import APP_LABEL, COMPONENT_LABEL, GROUP_LABEL

RESULT_KEY = "result.json"
RUNNER_ANNOTATION = "runnergroups.kperf.io/runner"
SNAPSHOT_KEY = "snapshot"
UNAVAILABLE_KEY = "unavailable"

#: A snapshot, or why it could not be taken.
Snapshot = bytes | str


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
        labels = {APP_LABEL[0]: APP_LABEL[1], COMPONENT_LABEL: "result", GROUP_LABEL: group}
        content = {"data": {RESULT_KEY: json.dumps(report, separators=(",", ":"))}}
        if not self._create(self.object_name(runner), labels, {RUNNER_ANNOTATION: runner}, content):
            raise AlreadyStored(runner)

    def keep_snapshot(self, moment: str, snapshot: Snapshot) -> Snapshot:
        """Keep the snapshot of ``moment`` (``before``, ``after``) unless one is kept already;
        return the one kept."""
        labels = {APP_LABEL[0]: APP_LABEL[1], COMPONENT_LABEL: "server-view"}
        if isinstance(snapshot, bytes):
            content = {"binaryData": {SNAPSHOT_KEY: base64.b64encode(snapshot).decode()}}
        else:
            content = {"data": {UNAVAILABLE_KEY: snapshot}}
        if self._create(f"server-view-{moment}", labels, {}, content):
            return snapshot
        kept = self.snapshot(moment)
        assert kept is not None  # it was there a moment ago, and kept ones are never deleted
        return kept

    def snapshot(self, moment: str) -> Snapshot | None:
        from kubernetes.client.exceptions import ApiException

        try:
            item = self.core.read_namespaced_config_map(f"server-view-{moment}", self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if SNAPSHOT_KEY in (item.binary_data or {}):
            return base64.b64decode(item.binary_data[SNAPSHOT_KEY])
        return str((item.data or {}).get(UNAVAILABLE_KEY, "the kept snapshot is empty"))

    def _create(
        self,
        name: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        content: dict[str, Any],
    ) -> bool:
        """Create an immutable ConfigMap; False if one of that name exists."""
        from kubernetes.client.exceptions import ApiException

        metadata: dict[str, Any] = {"name": name, "labels": labels, "annotations": annotations}
        if self.owner:
            metadata["ownerReferences"] = [self.owner]
        try:
            self.core.create_namespaced_config_map(
                self.namespace, {"metadata": metadata, "immutable": True, **content}
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

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
