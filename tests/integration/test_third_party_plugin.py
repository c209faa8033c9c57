"""A real third-party plugin package, installed with pip, used through the kperf CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_SOURCE = Path(__file__).parent.parent / "third_party_plugin"
KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the plugin into a directory of its own; the test environment stays as it was."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PLUGIN_SOURCE),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(build)},
    )
    return target


def run_kperf(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("KPERF_DISABLE_PLUGIN_AUTOLOAD", None)
    return subprocess.run([*KPERF, *args], capture_output=True, text=True, env=env, timeout=120)


def test_installed_plugin_is_listed_with_its_distribution(plugin_site: Path) -> None:
    result = run_kperf(plugin_site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["hello"] == {
        "name": "hello",
        "distribution": "kperf-hello",
        "version": "1.2.3",
        "module": "kperf_hello",
        "builtin": False,
        "blocked": False,
        "registered": {"request types": ["discoveryGet"], "commands": ["hello"]},
    }
    assert rows["local-control-plane"]["builtin"] is True


def test_installed_plugin_command_runs(plugin_site: Path) -> None:
    result = run_kperf(plugin_site, "hello", "sre")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hello sre from a third-party plugin; loaded plugins: ")
    assert "hello" in result.stdout and "local-control-plane" in result.stdout


def test_autoload_switch_keeps_third_party_out(plugin_site: Path) -> None:
    flag = run_kperf(plugin_site, "--disable-plugin-autoload", "hello")
    assert flag.returncode == 2 and "No such command 'hello'" in flag.stderr
    env_switch = subprocess.run(
        [*KPERF, "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(plugin_site), "KPERF_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    names = {row["name"] for row in json.loads(env_switch.stdout)}
    assert "hello" not in names and "local-control-plane" in names


@pytest.mark.integration
def test_profile_with_a_third_party_request_type_runs(
    plugin_site: Path, kperf_control_plane, tmp_path: Path
) -> None:
    profile = tmp_path / "discovery.yaml"
    profile.write_text(
        "version: 1\nspecs:\n- total: 40\n  client: 4\n  requests:\n"
        "  - discoveryGet: {path: /version}\n    shares: 3\n"
        "  - discoveryGet: {path: /apis}\n    shares: 1\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(plugin_site),
        "KUBECONFIG": str(kperf_control_plane.kubeconfig),
    }
    result = subprocess.run(
        [*KPERF, "runner", "run", "--config", str(profile)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_url = report["aggregated"]["requestsByURL"]
    server = report["kperf"]["server"]
    assert set(by_url) == {f"DISCOVERY {server}/version", f"DISCOVERY {server}/apis"}
    assert sum(v["succeeded"] for v in by_url.values()) == 40
    assert 20 <= by_url[f"DISCOVERY {server}/version"]["succeeded"] <= 38  # shares 3:1


def test_third_party_request_type_validates_through_its_own_config(
    plugin_site: Path, tmp_path: Path
) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(
        "version: 1\nspecs:\n- requests:\n  - discoveryGet: {path: version}\n    shares: 1\n"
    )
    result = run_kperf(plugin_site, "runner", "run", "--config", str(profile))
    assert result.returncode == 2
    assert result.stderr == (
        f"kperf: error: {profile}:4: specs[0].requests[0].discoveryGet.path: "
        "must start with / (got 'version')\n"
    )
