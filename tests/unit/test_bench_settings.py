"""`runkperf bench` without a cluster: the commands generated from the scenario registry, the
settings and their one-line refusals, upstream's spec tweaks under --scale, the report shape."""

from __future__ import annotations

import click
import pytest
from kperf_plugins.scenarios.case_specs import load_spec, tweak_spec

from kperf_core import hookimpl
from kperf_core.bench_run import profile_seconds
from kperf_core.cli import CliState, run_program, runkperf
from kperf_core.errors import ConfigError
from kperf_core.kube import is_loopback
from kperf_core.scenarios import BenchReport, BenchSettings, Scenario

UPSTREAM_CASES = {
    "node10_job1_pod100", "node10_job1_pod1k", "node100_job1_pod3k", "node100_job10_pod10k",
    "node100_pod10k", "list_configmaps", "read_update", "timeseries_replay", "cilium_cr_list",
}  # fmt: skip


class Tiny(Scenario):
    """A case of a third-party package."""

    name = "tiny_case"
    summary = "a case registered by a test"
    options = (click.Option(["--widgets"], type=int, default=3, help="How many widgets."),)

    def run(self, bench, options):  # pragma: no cover - never run here
        raise AssertionError


class TinyPlugin:
    @hookimpl
    def kperf_register_scenarios(self, registry):
        registry.add(Tiny)


def kubeconfig_for(tmp_path, server: str):
    """A kubeconfig of ``server``; the refusals under test come before it is ever contacted."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    return path


def settings(**fields) -> BenchSettings:
    return BenchSettings(kubeconfig=None, context=None, runner_image="img", **fields)


def test_bench_help_lists_every_case_with_its_summary(kperf_plugin_manager, kperf_cli) -> None:
    kperf_plugin_manager.register(TinyPlugin(), "tiny")
    result = kperf_cli("bench", "--help", program=runkperf)
    assert result.exit_code == 0, result.output
    commands = result.output.split("Commands:")[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.startswith("  ")}
    assert listed >= UPSTREAM_CASES | {"tiny_case"}
    (line,) = [line for line in commands.splitlines() if line.startswith("  tiny_case ")]
    assert line.split(None, 1)[1] == "a case registered by a test"


def test_a_case_help_shows_its_own_flags(kperf_plugin_manager, kperf_cli) -> None:
    kperf_plugin_manager.register(TinyPlugin(), "tiny")
    result = kperf_cli("bench", "tiny_case", "--help", program=runkperf)
    assert result.exit_code == 0, result.output
    assert "--widgets INTEGER  How many widgets." in result.output
    pod100 = kperf_cli("bench", "node10_job1_pod100", "--help", program=runkperf).output
    for flag in ("--total", "--cpu", "--memory", "--max-pods", "--content-type"):
        assert flag in pod100


def refused_bench(args, kperf_plugin_manager, capsys, tmp_path) -> tuple[object, str, str]:
    """``runkperf bench ARGS`` against an unreachable server, expected to exit before any
    request: its exit code, stdout and stderr."""
    kubeconfig = kubeconfig_for(tmp_path, "https://127.0.0.1:1")
    with pytest.raises(SystemExit) as exc:
        run_program(
            runkperf,
            "runkperf",
            ["bench", "--kubeconfig", str(kubeconfig), *args],
            CliState(kperf_plugin_manager),
        )
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["read_update", "--read-update-configmap-size", "2000"],
            "bench read_update: --read-update-configmap-size must be <= 1024 bytes",
        ),
        (
            ["node100_pod10k", "--max-pods", "10"],
            "10500 pods (with a rolling restart's surge) do not fit on 100 nodes of 10 pods",
        ),
        (["list_configmaps", "--size", "2000000"], "--size must be <= 1044480 bytes"),
    ],
)
def test_a_cases_bad_options_are_one_line_before_anything_runs(
    args, message, kperf_plugin_manager, capsys, tmp_path
) -> None:
    code, out, err = refused_bench(args, kperf_plugin_manager, capsys, tmp_path)
    assert code == 2
    assert out == ""
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "0"], "Invalid value for '--scale'"),
        (["--scale", "1.5"], "Invalid value for '--scale'"),
        (["--runner-flowcontrol", "nocolon"], "--runner-flowcontrol 'nocolon': expected"),
        (["--rg-affinity", "=x"], "--rg-affinity '=x': expected KEY=VALUE1"),
        (["--vc-affinity", "key"], "--vc-affinity 'key': expected KEY=VALUE1"),
        (["--sink", "nosuch"], "--sink nosuch: unknown sink"),
    ],
)
def test_bad_flags_are_one_line_and_nothing_runs(
    args, message, kperf_plugin_manager, capsys, tmp_path
) -> None:
    code, out, err = refused_bench(
        [*args, "node10_job1_pod100"], kperf_plugin_manager, capsys, tmp_path
    )
    assert code != 0
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["node100_pod10k", "--interval", "10 s"],
            "Invalid value for '--interval': '10 s' is not a duration (seconds, or Go's form",
        ),
        (
            ["timeseries_replay", "--duration", "-1m"],
            "Invalid value for '--duration': '-1m' is negative",
        ),
        (
            ["--wait", "5mins", "list_configmaps"],
            "Invalid value for '--wait': '5mins' is not a duration",
        ),
        (["node100_pod10k", "--interval", "0s"], "'--interval': '0s' must be > 0"),
    ],
)
def test_a_bad_duration_is_one_error_line_naming_the_flag(
    args, message, kperf_plugin_manager, capsys, tmp_path
) -> None:
    code, out, err = refused_bench(args, kperf_plugin_manager, capsys, tmp_path)
    assert code == 2
    assert out == ""
    # click's usage hint, then the one line that says what is wrong
    (error,) = [line for line in err.splitlines() if line.startswith("Error:")]
    assert message in error, err
    assert "Traceback" not in err


def test_runner_image_is_required_off_the_local_plane(kperf_plugin_manager, capsys, tmp_path):
    kubeconfig = kubeconfig_for(tmp_path, "https://10.9.8.7:443")
    with pytest.raises(SystemExit) as exc:
        run_program(
            runkperf,
            "runkperf",
            ["bench", "--kubeconfig", str(kubeconfig), "node10_job1_pod100"],
            CliState(kperf_plugin_manager),
        )
    assert exc.value.code != 0
    assert capsys.readouterr().err == (
        "runkperf: error: --runner-image is required on a cluster (a kperf image)\n"
    )


def test_scale_shrinks_counts_rounding_up_to_at_least_one() -> None:
    assert settings(scale=0.1).scaled(100) == 10
    assert settings(scale=0.01).scaled(10) == 1
    assert settings(scale=0.25).scaled(3) == 1
    assert settings(scale=1.0).scaled(36000) == 36000
    with pytest.raises(ConfigError, match="--scale 0: must be in"):
        settings(scale=0)


def test_tweak_applies_upstreams_total_then_the_scale() -> None:
    spec = tweak_spec(
        load_spec("node100_job1_pod3k"), settings(scale=0.1), total=500, content_type="protobuf"
    )
    assert spec["count"] == 1  # 10 runners at a tenth
    (phase,) = spec["loadProfile"]["specs"]
    assert phase["total"] == 50
    assert phase["contentType"] == "protobuf"
    assert phase["rate"] == 10  # a smaller run is shorter, not gentler


def test_tweak_duration_replaces_total_and_every_phase_is_scaled() -> None:
    spec = tweak_spec(load_spec("timeseries_replay"), settings(scale=0.5), duration=12)
    assert [p["duration"] for p in spec["loadProfile"]["specs"]] == [6, 10, 15]
    assert profile_seconds(spec) == 31
    assert spec["count"] == 5


def test_loopback_servers_are_the_local_plane() -> None:
    assert is_loopback("https://127.0.0.1:6443")
    assert is_loopback("https://localhost:6443")
    assert is_loopback("https://[::1]:6443")
    assert not is_loopback("https://10.0.0.1:443")
    assert not is_loopback("https://api.example.com")


def test_report_document_has_upstreams_keys_and_kperfs() -> None:
    result = {"perSpecResults": [], "aggregated": {"total": 3}, "runnerGroups": []}
    report = BenchReport(description="d", load_spec={"count": 1}, result=result, info={"a": 1})
    document = report.document()
    assert document["result"] == {"total": 3}
    assert document["aggregated"] == {"total": 3}
    assert (document["description"], document["loadSpec"], document["info"]) == (
        "d",
        {"count": 1},
        {"a": 1},
    )


def test_warmup_readiness_is_upstreams_count_and_unknown_without_cores() -> None:
    from kperf_plugins.scenarios.warmup import ready

    assert ready({"10.0.0.1": 8}, 8, eks=False) is True
    assert ready({"10.0.0.1": 4}, 8, eks=False) is False
    assert ready({"10.0.0.1": 8, "10.0.0.2": 4}, 8, eks=True) is False  # EKS wants two
    assert ready({"10.0.0.1": 16, "10.0.0.2": 8}, 8, eks=True) is True
    assert ready({}, 8, eks=False) is None


def test_a_wait_shows_its_counter_and_the_background_work_and_survives_a_failing_part() -> None:
    import io
    import threading

    from kperf_plugins.scenarios.job_workload import JobChurn

    from kperf_core.bench_run import _runners_finished, _Ticker
    from kperf_core.live_status import LiveStatus

    out = io.StringIO()
    churn = JobChurn(created=2, job_pods=10, active=3, succeeded=4)
    groups = [{"status": {"succeeded": 1, "failed": 0}}, {"status": {"succeeded": 0, "failed": 1}}]

    def broken() -> str:
        raise OSError("connection refused")

    ticker = _Ticker(
        LiveStatus(out, live=False, plain_interval=3600),
        threading.Lock(),
        (lambda: _runners_finished(groups, 4), churn.describe, broken),
    )
    ticker.start()
    while not out.getvalue():
        threading.Event().wait(0.05)
    ticker.stop()
    # one plain line within the hour's interval, however many ticks
    (line,) = out.getvalue().splitlines()
    assert line.endswith(
        "] runners finished 2/4 (1 failed) · Job run 2: 3 pods running, 4/10 succeeded · ?"
    )
    assert JobChurn().describe() == "Job: not created yet"


# -- upstream's --eks -----------------------------------------------------------------------------

#: aws-node's affinity as EKS ships it (no Fargate, Linux, two architectures): its pods tolerate
#: every taint, so only this affinity decides where they go
AWS_NODE_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    {"key": "eks.amazonaws.com/compute-type", "operator": "NotIn",
                     "values": ["fargate"]},
                ]},
                {"matchExpressions": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]},
                ]},
            ]
        },
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
            ]}}
        ],
    },
    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []},
}  # fmt: skip
OFF_VIRTUAL = {"key": "type", "operator": "NotIn", "values": ["kperf-virtualnodes"]}


def test_eks_daemonsets_are_kept_off_virtual_nodes_and_nothing_else_changes() -> None:
    import copy

    from kperf_core.placement import off_virtual_nodes

    original = copy.deepcopy(AWS_NODE_AFFINITY)
    changed = off_virtual_nodes(AWS_NODE_AFFINITY)
    assert AWS_NODE_AFFINITY == original  # the DaemonSet's own document is not touched
    terms = changed["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    # terms are ORed: every one of them must exclude the virtual nodes, else a virtual node
    # matching one term (an arm64 label, say) would still get a pod
    assert [term["matchExpressions"][-1] for term in terms] == [OFF_VIRTUAL, OFF_VIRTUAL]
    assert [term["matchExpressions"][:-1] for term in terms] == [
        t["matchExpressions"]
        for t in original["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ]
    ]
    for key in ("podAntiAffinity",):
        assert changed[key] == original[key]
    assert (
        changed["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        == original["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    )
    assert off_virtual_nodes(changed) == changed  # applying it twice adds nothing
    # kube-proxy may have no affinity at all: one term of the exclusion alone
    assert off_virtual_nodes(None) == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [OFF_VIRTUAL]}]
            }
        }
    }


def test_eks_virtual_nodes_carry_the_idle_nodes_provider_id() -> None:
    from kperf_plugins.backends.node_pools.nodes import node_manifest

    from kperf_core.backends import NodePoolSpec
    from kperf_core.placement import shared_provider_id

    nodes = [
        {"metadata": {"name": "no-id"}, "spec": {}},
        {"metadata": {"name": "idle"}, "spec": {"providerID": "aws:///us-west-2a/i-0abc"}},
    ]
    provider_id = shared_provider_id(nodes)
    assert provider_id == "aws:///us-west-2a/i-0abc"
    spec = NodePoolSpec(name="pool", nodes=2, shared_provider_id=provider_id)
    assert node_manifest(spec, 1, "kwok")["spec"]["providerID"] == provider_id
    assert "providerID" not in node_manifest(NodePoolSpec(name="pool"), 0, "kwok")["spec"]
    with pytest.raises(ConfigError, match=r"--eks: no node labelled .*m4\.large has a providerID"):
        shared_provider_id(nodes[:1])


def test_pods_succeeded_counts_the_job_still_running_at_the_end() -> None:
    from kperf_plugins.scenarios.job_workload import JobChurn

    # run 1 completed with 10 pods; run 2 had 4 of its pods succeeded when the measurement ended
    running = JobChurn(created=2, completed=1, pods_succeeded=10, job_pods=10, succeeded=4)
    assert running.as_info()["podsSucceeded"] == 14
    # run 2 completed too: its pods are counted once
    done = JobChurn(created=2, completed=2, pods_succeeded=20, job_pods=10, succeeded=10)
    assert done.as_info()["podsSucceeded"] == 20
