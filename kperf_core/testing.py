"""Opt-in pytest plugin for people writing kperf plugins (and for kperf's own tests).

Enable it with ``pytest_plugins = ["kperf_core.testing"]`` in a conftest. Fixtures:

* ``kperf_plugin_manager`` — a fresh manager with the built-in plugins only (installed third-party
  plugins are not loaded, so tests do not depend on the environment); register your plugin into it.
* ``kperf_request_type`` — ``kperf_request_type(kind, **config)``: an instance of the request type
  registered as ``kind`` (yours once registered), its config structured as a profile's would be.
* ``kperf_cli`` — run ``kperf`` in-process against that manager and get click's ``Result``.
* ``kperf_control_plane`` — a real local control plane (etcd + kube-apiserver + controller-manager
  + scheduler) for the whole session, torn down at the end; its ``kubeconfig`` is a path. Its
  Kubernetes version is ``--kube-version`` (or ``$KPERF_KUBE_VERSION``), as ``kperf local
  provision`` built it; by default the newest provisioned. Run a suite once per version to test
  a plugin against old and current servers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kperf_core.backends import ControlPlaneStatus
from kperf_core.plugin_manager import KperfPluginManager


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kube-version",
        default=os.environ.get("KPERF_KUBE_VERSION") or None,
        metavar="VERSION",
        help="Kubernetes version of the kperf_control_plane fixture, as `kperf local provision` "
        "built it (default: $KPERF_KUBE_VERSION, else the newest provisioned)",
    )


@pytest.fixture
def kperf_plugin_manager() -> KperfPluginManager:
    return KperfPluginManager(autoload=False)


@pytest.fixture
def kperf_request_type(kperf_plugin_manager: KperfPluginManager) -> Callable[..., Any]:
    from kperf_core.profile import make_converter
    from kperf_core.request_types import BuildContext

    registry = kperf_plugin_manager.request_types
    converter = make_converter(registry)

    def make(kind: str, **config: Any) -> Any:
        cls = registry[kind]
        return cls(converter.structure(config, cls.config_type), BuildContext())

    return make


@pytest.fixture
def kperf_cli(kperf_plugin_manager: KperfPluginManager) -> Callable[..., Any]:
    from click.testing import CliRunner

    from kperf_core.cli import CliState, kperf

    def invoke(*args: str, program: Any = kperf, **kwargs: Any) -> Any:
        runner = CliRunner()
        return runner.invoke(program, list(args), obj=CliState(kperf_plugin_manager), **kwargs)

    return invoke


@pytest.fixture(scope="session")
def kperf_control_plane(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[ControlPlaneStatus]:
    backend = KperfPluginManager(autoload=False).backends.control_planes["local"]
    plane = backend(
        Path(tmp_path_factory.mktemp("kperf-control-plane")),
        kube_version=pytestconfig.getoption("kube_version"),
    )
    try:
        yield plane.up()
    finally:
        plane.down()
