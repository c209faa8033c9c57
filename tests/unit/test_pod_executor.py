"""The embedded simulator's executor of kperf's pods and its port-forward framing, without a
cluster."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from kperf_plugins.backends.node_pools.kubelet_portforward import accept_key, frame, read_frame
from kperf_plugins.backends.node_pools.pod_executor import (
    PodRefused,
    _expand,
    _field,
    _remap,
    executes,
    terminate,
)


def _pod(labels: dict[str, str], command: list[str], containers: int = 1) -> SimpleNamespace:
    container = SimpleNamespace(command=command)
    return SimpleNamespace(
        metadata=SimpleNamespace(labels=labels),
        spec=SimpleNamespace(containers=[container] * containers),
    )


def test_only_kperfs_pods_on_executing_nodes_are_executed() -> None:
    kperf_pod = {"app.kubernetes.io/name": "kperf-runnergroup"}
    node = {"kperf.io/executes-kperf-pods": "true"}
    assert executes(_pod(kperf_pod, ["kperf", "runnergroup", "server"]), node)
    assert not executes(_pod(kperf_pod, ["kperf", "runnergroup", "server"]), {})
    assert not executes(_pod({}, ["kperf", "runner", "run"]), node)
    assert not executes(_pod(kperf_pod, ["sh", "-c", "kperf"]), node)
    assert not executes(_pod(kperf_pod, ["kperf"], containers=2), node)


def test_references_expand_and_mount_paths_move_to_the_pods_directory() -> None:
    env = {"POD_NAME": "p-0", "POD_IP": "127.96.0.9"}
    assert _expand("--address=$(POD_IP):8080", env) == "--address=127.96.0.9:8080"
    assert _expand("$(UNKNOWN)/$(POD_NAME)", env) == "$(UNKNOWN)/p-0"
    mounts = [("/config/deeper", Path("/tmp/x/deeper")), ("/config", Path("/tmp/x/config"))]
    assert _remap("--config=/config/load_profile.yaml", mounts) == (
        "--config=/tmp/x/config/load_profile.yaml"
    )
    assert _remap("/config/deeper/a", mounts) == "/tmp/x/deeper/a"
    assert _remap("/configuration/a", mounts) == "/configuration/a"
    assert _remap("--name=/config", mounts) == "--name=/tmp/x/config"
    assert _remap("name=/config", mounts) == "name=/config"  # not a flag: left alone


def test_downward_api_fields_include_annotations_and_labels() -> None:
    # what the Job controller (v1.21+) adds to an Indexed Job's pods: JOB_COMPLETION_INDEX
    pod = SimpleNamespace(
        metadata=SimpleNamespace(
            name="job-1-abcde",
            namespace="ns",
            uid="u",
            annotations={"batch.kubernetes.io/job-completion-index": "1"},
            labels={"batch.kubernetes.io/job-completion-index": "1"},
        ),
        spec=SimpleNamespace(node_name="n", service_account_name=None),
    )
    for where in ("annotations", "labels"):  # v1.21-1.27, v1.28+
        index = f"metadata.{where}['batch.kubernetes.io/job-completion-index']"
        assert _field(pod, index, "127.96.0.2") == "1"
    assert _field(pod, "metadata.labels['absent']", "127.96.0.2") == ""
    assert _field(pod, "status.podIP", "127.96.0.2") == "127.96.0.2"
    with pytest.raises(PodRefused):
        _field(pod, "spec.schedulerName", "127.96.0.2")


def test_websocket_frames_round_trip_masked_and_long() -> None:
    # RFC 6455's own example of the accept key
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    for size in (0, 5, 125, 126, 70_000):
        payload = os.urandom(size)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        unmasked = frame(0x2, payload)
        # a client's frame: the mask bit set and the key before the payload
        header = bytearray(unmasked[: len(unmasked) - size])
        header[1] |= 0x80
        assert read_frame(io.BytesIO(bytes(header) + mask + masked)) == (0x2, payload)
    assert read_frame(io.BytesIO(frame(0x8, struct.pack("!H", 1000))[:3])) is None


def test_terminate_stops_every_pod_within_one_grace_period() -> None:
    """Pods that ignore SIGTERM are killed after one shared grace period, not one each: the
    simulator's own stop must fit in the grace its pid file gives it."""
    stubborn = [
        subprocess.Popen(
            ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"], start_new_session=True
        )
        for _ in range(3)
    ]
    polite = subprocess.Popen(["sleep", "30"], start_new_session=True)
    time.sleep(0.3)  # the traps are set
    started = time.monotonic()
    terminate([*stubborn, polite], grace=1.0)
    took = time.monotonic() - started
    assert [p.returncode for p in stubborn] == [-9, -9, -9]
    assert polite.returncode == -15
    assert took < 2.5  # one after another: at least 3 s
