"""`kperf runnergroup run`'s flags and the objects the server creates, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from kperf_plugins.backends.runner_groups.jobs import Owner, RunnerSettings, runner_job
from kperf_plugins.backends.runner_groups.specs import (
    ConfigMapSource,
    FileSource,
    FlowControl,
    parse_affinity,
    parse_flowcontrol,
    parse_spec_uri,
    parse_toleration,
    runner_rules,
)

from kperf_core.errors import ConfigError


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("file:///abs/spec.yaml", FileSource(Path("/abs/spec.yaml"))),
        ("file://localhost/abs/spec.yaml", FileSource(Path("/abs/spec.yaml"))),
        ("configmap://rg", ConfigMapSource("rg", "default", "spec")),
        ("configmap://rg?namespace=ns&specName=k", ConfigMapSource("rg", "ns", "k")),
        ("configmap://rg?namespace=", ConfigMapSource("rg", "default", "spec")),
    ],
)
def test_spec_uris_are_upstreams(uri: str, source: object) -> None:
    assert parse_spec_uri(uri) == source


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("file://relative.yaml", "needs an absolute path"),
        ("/abs/spec.yaml", "unsupported URI"),
        ("http://x/spec.yaml", "unsupported URI"),
        ("configmap://rg?ns=x", "unknown parameter 'ns'"),
        ("configmap://Bad_Name", "invalid ConfigMap name"),
        ("configmap://rg?namespace=Bad_NS", "invalid ConfigMap namespace"),
    ],
)
def test_bad_uris_say_what_is_wrong(uri: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_spec_uri(uri)


def test_flowcontrol_is_level_and_precedence() -> None:
    assert parse_flowcontrol("workload-low:1000") == FlowControl("workload-low", 1000)
    for bad in ("workload-low", "workload-low:", ":10", "x:high", "Bad:1"):
        with pytest.raises(ConfigError, match="expected PriorityLevelName:MatchingPrecedence"):
            parse_flowcontrol(bad)
    with pytest.raises(ConfigError, match=r"in \[1, 10000\]"):
        parse_flowcontrol("workload-low:10001")


def test_affinity_and_tolerations() -> None:
    assert parse_affinity(("zone=a,b", "kind=x", "zone=c")) == {
        "zone": ("a", "b", "c"),
        "kind": ("x",),
    }
    for bad in ("zone", "zone=", "=a", "bad key=a"):
        with pytest.raises(ConfigError, match="expected KEY=VALUE1"):
            parse_affinity((bad,))
    assert parse_toleration("kperf.io/nodepool=fake:NoSchedule") == {
        "key": "kperf.io/nodepool", "operator": "Equal", "value": "fake", "effect": "NoSchedule"
    }  # fmt: skip
    assert parse_toleration("dedicated:NoExecute")["operator"] == "Exists"
    with pytest.raises(ConfigError, match="EFFECT one of"):
        parse_toleration("dedicated:Never")


def test_runner_rules_grant_what_the_requests_do_and_no_more() -> None:
    profile = {
        "specs": [
            {"requests": [
                {"staleList": {"version": "v1", "resource": "pods"}, "shares": 1},
                {"quorumGet": {"version": "v1", "resource": "pods", "name": "p"}, "shares": 1},
                {"patch": {"group": "apps", "version": "v1", "resource": "deployments"}},
            ]},
            {"requests": [{"getPodLog": {"namespace": "n", "name": "p"}},
                          {"staleList": {"group": "core", "version": "v1", "resource": "nodes"}}]},
        ]
    }  # fmt: skip
    assert runner_rules(profile) == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"],
         "verbs": ["create", "get", "list", "patch"]},
    ]  # fmt: skip


def test_runner_job_is_indexed_owned_and_placed() -> None:
    settings = RunnerSettings(
        image="example.com/kperf:1",
        service_account="runner-sa",
        verbosity=3,
        server_url="http://10.0.0.5:8080",
        token_secret="tok",
        tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        owner=Owner.parse("v1:Pod:server:uid-1"),
    )
    job = runner_job("rg-0", "ns", 3, {"zone": ["a", "b"]}, None, settings)
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completions"], spec["parallelism"], spec["completionMode"]) == (3, 3, "Indexed")
    assert spec["backoffLimit"] == 0
    assert job["metadata"]["ownerReferences"][0]["name"] == "server"
    assert pod["serviceAccountName"] == "runner-sa"
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
    ]
    container = pod["containers"][0]
    assert container["image"] == "example.com/kperf:1"
    assert container["command"][:3] == ["kperf", "runnergroup", "runner"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TARGET_URL"]["value"] == "http://10.0.0.5:8080/v1/runnergroups/$(POD_NAME)/result"
    assert env["RUNNERGROUP_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "tok", "key": "token"}
    assert (
        runner_job("rg-0", "ns", 1, None, "own-sa", settings)["spec"]["template"]["spec"][
            "serviceAccountName"
        ]
        == "own-sa"
    )
    with pytest.raises(ConfigError, match="APIVersion:Kind:Name:UID"):
        Owner.parse("v1:Pod:server")


def test_ctrl_c_while_reaching_the_server_is_an_interrupt_not_a_port_forward_error(
    monkeypatch,
) -> None:
    import kubernetes.stream
    from kperf_plugins.backends.runner_groups.client import ServerClient
    from kubernetes.client.exceptions import ApiException

    def interrupted(*args, **kwargs):  # what the library does with a Ctrl-C mid-handshake
        try:
            raise KeyboardInterrupt
        except (Exception, KeyboardInterrupt) as exc:
            raise ApiException(status=0, reason=str(exc)) from None

    monkeypatch.setattr(kubernetes.stream, "portforward", interrupted)
    server = ServerClient(None, "ns", "runnergroup-server", 8080, "token-secret")
    server._token = "t"
    with pytest.raises(KeyboardInterrupt):
        server.get("/v1/runnergroups/summary")
