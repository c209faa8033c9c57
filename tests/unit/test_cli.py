from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from kperf_core import hookimpl
from kperf_core.cli import CliState, kperf, run_program, runkperf, verbosity_as_level
from kperf_core.errors import ConfigError
from kperf_core.plugin_manager import KperfPluginManager


def test_help_lists_builtin_commands(kperf_cli) -> None:
    result = kperf_cli("--help")
    assert result.exit_code == 0
    assert "local" in result.output and "plugins" in result.output


def test_runkperf_only_shows_its_own_commands(kperf_cli) -> None:
    result = kperf_cli("--help", program=runkperf)
    assert result.exit_code == 0
    assert "plugins" in result.output
    assert "local " not in result.output  # `local` is registered for kperf only


def test_plugins_json_lists_builtins_with_what_they_registered(kperf_cli) -> None:
    result = kperf_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["local-control-plane"]["registered"] == {
        "control planes": ["local"],
        "commands": ["local"],
    }
    assert rows["plugin-inventory"]["distribution"] == "kperf"
    assert rows["plugin-inventory"]["builtin"] is True


def test_plugins_table(kperf_cli) -> None:
    result = kperf_cli("plugins")
    lines = result.output.splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERED"]
    assert any(
        line.startswith("local-control-plane") and "commands: local" in line for line in lines
    )


def test_inline_plugin_command_runs(kperf_plugin_manager: KperfPluginManager, kperf_cli) -> None:
    class Greeter:
        @hookimpl
        def kperf_register_commands(self, commands):
            @click.command("greet")
            def greet() -> None:
                click.echo("hi from a plugin")

            commands.add(greet)

    kperf_plugin_manager.register(Greeter(), "greeter")
    result = kperf_cli("greet")
    assert result.exit_code == 0
    assert result.output == "hi from a plugin\n"


def _run(args, pm, capsys):
    with pytest.raises(SystemExit) as excinfo:
        run_program(kperf, "kperf", args, CliState(pm))
    out, err = capsys.readouterr()
    return excinfo.value.code, out, err


def test_kperf_error_is_one_line_with_its_exit_code(capsys) -> None:
    class Failing:
        @hookimpl
        def kperf_register_commands(self, commands):
            @click.command("fail")
            def fail() -> None:
                raise ConfigError("profile.yaml: specs[0].rate: must be >= 0")

            commands.add(fail)

    pm = KperfPluginManager(autoload=False, plugins=[("failing", Failing())])
    code, out, err = _run(["fail"], pm, capsys)
    assert code == 2
    assert out == ""
    assert err == "kperf: error: profile.yaml: specs[0].rate: must be >= 0\n"


def test_unknown_command_is_a_usage_error(capsys) -> None:
    code, _, err = _run(["no-such-command"], KperfPluginManager(autoload=False), capsys)
    assert code == 2
    assert "No such command 'no-such-command'" in err
    assert "Traceback" not in err


def test_console_script_version_and_broken_plugin_module() -> None:
    exe = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "kperf, version" in version.stdout
    broken = subprocess.run(
        [*exe, "-p", "kperf_no_such_module_xyz", "plugins"], capture_output=True, text=True
    )
    assert broken.returncode == 3
    assert broken.stderr.startswith("kperf: error: plugin module 'kperf_no_such_module_xyz'")
    assert "Traceback" not in broken.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-v", "runner", "run"], ["-v", "1", "runner", "run"]),
        (["-v", "3", "plugins"], ["-v", "3", "plugins"]),
        (["--v", "0", "plugins"], ["--v", "0", "plugins"]),
        (["-vv", "plugins"], ["-v", "2", "plugins"]),
        (["-v"], ["-v", "1"]),
        # A sub-command's own -v is left alone, and so is a -p value.
        (["runner", "run", "-v"], ["runner", "run", "-v"]),
        (["-p", "-vv", "plugins"], ["-p", "-vv", "plugins"]),
    ],
)
def test_root_verbosity_takes_upstreams_level_or_a_count(args, expected) -> None:
    assert verbosity_as_level(args) == expected


def _kperf_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    exe = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]
    return subprocess.run([*exe, *args], capture_output=True, text=True)


def test_verbosity_level_is_accepted_and_checked() -> None:
    debug = _kperf_subprocess("-v", "2", "plugins", "--json")
    assert debug.returncode == 0, debug.stderr
    assert json.loads(debug.stdout)  # results stay on stdout whatever the level
    letters = _kperf_subprocess("--v", "x", "plugins")
    assert letters.returncode == 2 and "No such command 'x'" in letters.stderr
    negative = _kperf_subprocess("-v", "-1", "plugins")
    assert negative.returncode == 2 and "Traceback" not in negative.stderr


def test_p_no_name_blocks_a_builtin_from_the_command_line() -> None:
    proc = _kperf_subprocess("-p", "no:request-watch", "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["request-watch"]["blocked"] is True
    assert rows["request-watch"]["registered"] == {}
    assert rows["request-lists"]["blocked"] is False
    typo = _kperf_subprocess("-p", "no:request-wach", "plugins")
    assert typo.returncode == 3
    assert typo.stderr.startswith("kperf: error: cannot block 'request-wach': no such plugin")


def test_a_pool_above_upstreams_size_is_warned_about(kperf_cli) -> None:
    result = kperf_cli("vc", "nodepool", "add", "big", "--nodes", "301", "--backend", "nosuch")
    assert result.output.splitlines()[0] == (
        "warning: node pool big: 301 nodes in one pool, more than the 300 upstream sizes a "
        "pool for; batch-add splits them"
    )
    # The unknown backend is refused after the warning (run_program makes it one line, exit 2).
    assert isinstance(result.exception, ConfigError)
    assert "no such node-pool backend" in str(result.exception)
