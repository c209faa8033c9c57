"""The ``embedded`` node-pool backend: Node objects kept alive by kperf's own simulator.

The simulator runs as one background process per cluster (``kperf virtualcluster simulate``),
started by the first ``nodepool add`` and stopped by the ``delete`` of the last embedded pool. Its
pid file and log live in ``$KPERF_STATE_DIR`` (default ``~/.local/state/kperf``) under
``simulators/<cluster>/`` while it runs.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from kperf_core.backends import NodePoolBackend, NodePoolSpec
from kperf_core.cluster_api import api_client
from kperf_core.processes import PidFile

from .nodes import (
    cluster_state_dir,
    create_nodes,
    delete_nodes,
    list_pools,
    refuse_existing,
    tail,
    wait_ready,
)


class EmbeddedNodePool(NodePoolBackend):
    name = "embedded"

    def __init__(
        self,
        kubeconfig: Path | None,
        context: str | None,
        *,
        stage_delay: float = 1.0,
        stage_jitter: float = 4.0,
        **options: Any,
    ) -> None:
        super().__init__(kubeconfig, context)
        self.stage_delay = stage_delay
        self.stage_jitter = stage_jitter
        self.api = api_client(kubeconfig, context)
        self.state_dir = cluster_state_dir(self.api, context, "simulators")
        self.daemon = PidFile(self.state_dir / "simulator.pid")
        self.log_path = self.state_dir / "simulator.log"

    def add(self, spec: NodePoolSpec, wait: float) -> None:
        refuse_existing(self.api, spec.name)
        try:  # all or nothing, Ctrl-C included
            create_nodes(self.api, spec, self.name)
            self._ensure_simulator()
            if wait:
                wait_ready(self.api, spec, wait, diagnose=self._diagnose)
        except BaseException:
            delete_nodes(self.api, spec.name)
            self._stop_if_unused()
            raise

    def delete(self, name: str) -> None:
        delete_nodes(self.api, name)
        self._stop_if_unused()

    # -- the simulator process ------------------------------------------------------------------

    def _ensure_simulator(self) -> None:
        if self.daemon.live_pid() is not None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-c",
            "from kperf_core.cli import kperf_main; kperf_main()",
            "virtualcluster",
            "simulate",
            f"--stage-delay={self.stage_delay}",
            f"--stage-jitter={self.stage_jitter}",
        ]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig.resolve()}")
        if self.context:
            argv.append(f"--context={self.context}")
        # Its temp files (the pods' directories among them) go with the state directory, which
        # _stop_if_unused removes also after the simulator had to be killed.
        tmp = self.state_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        self.daemon.spawn(argv, self.log_path, env={**os.environ, "TMPDIR": str(tmp)})

    def _stop_if_unused(self) -> None:
        if not any(pool.backend == self.name for pool in list_pools(self.api)):
            self.daemon.stop()
            shutil.rmtree(self.state_dir, ignore_errors=True)  # its log went into any error

    def _diagnose(self) -> str:
        if self.daemon.live_pid() is None:
            return f"the simulator is not running; its log: {self.log_path}\n" + tail(self.log_path)
        return f"the simulator runs (log: {self.log_path})"
