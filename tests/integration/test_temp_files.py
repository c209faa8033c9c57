"""What kperf processes killed hard (SIGKILL; SIGTERM's default action and the OOM killer end a
process the same way) leave in $TMPDIR: nothing.

Each test points $TMPDIR at a directory of its own. Where a file lands there, it is removed only
by a clean exit (the ``kubernetes`` loader's copies of a kubeconfig's ``*-data`` fields, Helm's
copy of an inline kubeconfig) or by a cleanup that never runs (the simulator's pod directories).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import KPERF

pytestmark = [pytest.mark.integration]


@pytest.fixture
def tmpdir_env(kperf_control_plane, tmp_path):
    """The environment of the commands under test: the control plane's kubeconfig, a state
    directory and a $TMPDIR of this test's own."""
    (tmp_path / "tmpdir").mkdir()
    return {
        **os.environ,
        "KUBECONFIG": str(kperf_control_plane.kubeconfig),
        "KPERF_STATE_DIR": str(tmp_path / "state"),
        "TMPDIR": str(tmp_path / "tmpdir"),
    }


def left_in(env: dict[str, str]) -> list[str]:
    return sorted(path.name for path in Path(env["TMPDIR"]).iterdir())


def start_and_kill(argv: list[str], env: dict[str, str], ready: str) -> str:
    """Start ``argv`` in a process group of its own, wait for ``ready`` on its stderr, kill the
    group with SIGKILL; what it wrote to stderr."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):  # gone already if it failed early
            os.killpg(proc.pid, signal.SIGKILL)

    seen = []
    deadline = threading.Timer(120, kill)  # never ready: the loop below ends all the same
    deadline.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if ready in line:
                time.sleep(1)  # e.g. the engine workers forked and running
                break
    finally:
        deadline.cancel()
        kill()
        _, rest = proc.communicate()
    stderr = "".join(seen) + rest
    assert ready in stderr and proc.returncode == -signal.SIGKILL, stderr
    return stderr


def test_a_killed_runner_run(tmpdir_env, tmp_path) -> None:
    """The kubeconfig's CA, client certificate and key are not copied to $TMPDIR."""
    profile = tmp_path / "long.yaml"
    profile.write_text(
        "version: 1\nspecs:\n- rate: 50\n  duration: 60\n  requests:\n"
        "  - staleList: {version: v1, resource: namespaces}\n    shares: 1\n"
    )
    start_and_kill(
        [*KPERF, "runner", "run", "-v", "--config", str(profile)],
        tmpdir_env,
        ready="effective profile:",  # the kubeconfig is loaded, the cluster reached
    )
    assert left_in(tmpdir_env) == []


def test_a_killed_helm_client_with_an_inline_kubeconfig(tmpdir_env, tmp_path) -> None:
    """Two $KUBECONFIG files reach Helm as one resolved kubeconfig: not copied to $TMPDIR
    either, and Helm still reaches the cluster with it."""
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("")
    env = {**tmpdir_env, "KUBECONFIG": f"{tmpdir_env['KUBECONFIG']}:{empty}"}
    script = (
        "import sys, time\n"
        "from kperf_core.helm import helm_call, helm_config\n"
        "config = helm_config(None, None, 'default')\n"  # alive (closed, it removes its file)
        "releases = helm_call(config, 'list')\n"
        "print(f'helm: {len(releases)} releases', file=sys.stderr, flush=True)\n"
        "time.sleep(60)\n"
    )
    # ready only once Helm has listed the releases: it reached the cluster
    start_and_kill([sys.executable, "-c", script], env, ready="helm: ")
    assert left_in(env) == []


def test_a_killed_simulator(tmpdir_env, tmp_path) -> None:
    """Neither the node-pool commands nor the embedded simulator copy the kubeconfig to $TMPDIR,
    and the simulator's own temp files (its pods' directories) live in its state directory:
    with the simulator killed between add and delete, nothing is left."""

    def vc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*KPERF, "vc", "nodepool", *args],
            capture_output=True,
            text=True,
            env=tmpdir_env,
            timeout=180,
        )

    pool = f"tmp{uuid.uuid4().hex[:6]}"
    added = vc("add", pool, "--nodes", "1", "--stage-delay", "0.1", "--stage-jitter", "0.2")
    try:
        assert added.returncode == 0, added.stderr
        # it made the node Ready: it has loaded the kubeconfig and made its pods' directory
        [pid_file] = (tmp_path / "state").glob("simulators/*/simulator.pid")
        os.kill(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
    finally:
        deleted = vc("delete", pool)
    assert deleted.returncode == 0, deleted.stderr
    assert left_in(tmpdir_env) == []
    assert list((tmp_path / "state").glob("simulators/*")) == []
