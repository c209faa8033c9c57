"""Profiles and runner-group specs: upstream files load unchanged, mistakes are named precisely."""

from __future__ import annotations

import io
import re
from pathlib import Path

import attrs
import pytest
from ruamel.yaml import YAML

from kperf_core import hookimpl
from kperf_core.errors import ConfigError
from kperf_core.plugin_manager import KperfPluginManager
from kperf_core.profile import (
    InvalidField,
    LoadProfile,
    load_profile,
    load_runner_group_spec,
    one_of,
    parse_profile,
    parse_runner_group_spec,
    positive,
    profile_to_dict,
    read_profile_file,
)
from kperf_core.request_types import RequestType, WireRequest

#: upstream's runner-group specs, copied unchanged into the repository
SPECS_DIR = Path(__file__).parents[1] / "data/upstream-kperf/runnergroup-specs"
#: the reference they were copied from, when this checkout sits beside it
REFERENCE_DIR = Path(__file__).parents[3] / "shared/reference/upstream-kperf/runnergroup-specs"

#: The request types every message lists: the built-ins, in registration order.
KNOWN_TYPES = ", ".join(KperfPluginManager(autoload=False).request_types.names())

# What each upstream runner-group spec holds: count, then per spec the (kind, shares) pairs.
STALE_READS_10 = [
    ("staleList", 10),
    ("staleGet", 300),
    ("staleList", 10),
    ("staleGet", 300),
    ("staleList", 10),
    ("staleList", 10),
    ("staleGet", 300),
    ("staleGet", 300),
]
LIST_MIX = [("staleList", 1000), ("quorumList", 100), ("quorumList", 100)]
EXPECTED_SPECS: dict[str, tuple[int, list[list[tuple[str, int]]]]] = {
    "cilium_cr_list.yaml": (10, [[("staleList", 1000), ("staleList", 1000)]]),
    "list_configmaps.yaml": (10, [[("staleList", 100), ("quorumList", 100)]]),
    "node100_job10_pod10k.yaml": (10, [STALE_READS_10]),
    "node100_job1_pod3k.yaml": (10, [LIST_MIX]),
    "node100_pod10k.yaml": (10, [[("staleList", 1000), ("staleList", 100), ("quorumList", 200)]]),
    "node10_job1_pod100.yaml": (1, [LIST_MIX]),
    "node10_job1_pod1k.yaml": (10, [STALE_READS_10]),
    "read_update.yaml": (10, [[("staleList", 50), ("patch", 50)]]),
    "timeseries_replay.yaml": (
        10,
        [
            [("staleList", 70), ("quorumList", 30)],
            [("staleList", 60), ("quorumList", 40)],
            [("staleList", 80), ("quorumList", 20)],
        ],
    ),
    "warmup.yaml": (10, [LIST_MIX]),
}


def _upstream_spec_files() -> list[object]:
    return [pytest.param(p, id=p.name) for p in sorted(SPECS_DIR.iterdir()) if p.is_file()]


@pytest.fixture
def rt(kperf_plugin_manager):
    return kperf_plugin_manager.request_types


def _error(text: str, rt, parse=parse_profile) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, "p.yaml", rt)
    return str(info.value)


def one_request(item: str) -> str:
    """A profile with one spec whose single request item is ``item`` (YAML, 8-space indented)."""
    return "version: 1\nspecs:\n  - requests:\n      - shares: 1\n" + item


STALE_PODS = "        staleList: {version: v1, resource: pods}\n"


# -------------------------------------------------------------------------------------------------
# Upstream files
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _upstream_spec_files())
def test_upstream_runner_group_specs_load_unchanged(path: Path, rt) -> None:
    spec = load_runner_group_spec(path, rt)
    assert path.name in EXPECTED_SPECS, f"no expectation written for new upstream file {path.name}"
    count, specs = EXPECTED_SPECS[path.name]
    assert spec.count == count
    assert len(spec.load_profile.specs) == len(specs)
    assert spec.load_profile.version == 1
    for loaded, expected in zip(spec.load_profile.specs, specs, strict=True):
        assert [(r.kind, r.shares) for r in loaded.requests] == expected


def test_the_copied_upstream_specs_match_the_reference() -> None:
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"no reference beside this checkout ({REFERENCE_DIR})")
    reference = {p.name: p.read_bytes() for p in REFERENCE_DIR.iterdir() if p.is_file()}
    assert {p.name: p.read_bytes() for p in SPECS_DIR.iterdir()} == reference


def test_upstream_spec_details_survive_loading(rt) -> None:
    cilium = load_runner_group_spec(SPECS_DIR / "cilium_cr_list.yaml", rt)
    spec = cilium.load_profile.specs[0]
    assert (spec.rate, spec.total, spec.conns, spec.client) == (20.0, 12000, 500, 500)
    assert cilium.load_profile.description == "cilium list profile"
    identities, endpoints = (r.config for r in spec.requests)
    assert (identities.group, identities.version, identities.resource) == (
        "cilium.io",
        "v2",
        "ciliumidentities",
    )
    assert endpoints.namespace == "default"

    pods = load_runner_group_spec(SPECS_DIR / "node100_pod10k.yaml", rt).load_profile.specs[0]
    assert pods.requests[0].config.field_selector == "spec.nodeName=node100pod10k-49"
    assert (pods.requests[2].config.limit, pods.requests[2].config.selector) == (
        100,
        "app=benchmark",
    )

    patch = load_runner_group_spec(SPECS_DIR / "read_update.yaml", rt).load_profile.specs[0]
    config = patch.requests[1].config
    assert (config.name, config.key_space_size, config.patch_type) == (
        "runkperf-cm-kperf-read-update",
        100,
        "merge",
    )

    replay = load_runner_group_spec(SPECS_DIR / "timeseries_replay.yaml", rt).load_profile
    assert [(s.rate, s.duration, s.conns, s.client) for s in replay.specs] == [
        (10.0, 30.0, 5, 10),
        (100.0, 20.0, 20, 50),
        (25.0, 30.0, 10, 20),
    ]


def test_runner_group_spec_fields(rt) -> None:
    spec = parse_runner_group_spec(
        "count: 3\n"
        "loadProfile:\n"
        "  version: 1\n"
        "  specs:\n"
        "    - requests:\n"
        "        - shares: 1\n"
        "          staleList: {version: v1, resource: pods}\n"
        "nodeAffinity:\n"
        "  node.kubernetes.io/instance-type: [Standard_D16s_v3, m4.4xlarge]\n"
        "serviceAccount: runner\n"
        "ownerReference: v1:Pod:server:1234\n",
        "rg.yaml",
        rt,
    )
    assert spec.count == 3
    assert spec.node_affinity == {
        "node.kubernetes.io/instance-type": ("Standard_D16s_v3", "m4.4xlarge")
    }
    assert spec.service_account == "runner"
    assert spec.owner_reference == "v1:Pod:server:1234"


def test_load_profile_reads_a_file(tmp_path: Path, rt) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(one_request(STALE_PODS))
    profile = load_profile(path, rt)
    assert [r.kind for r in profile.specs[0].requests] == ["staleList"]


def test_load_profile_missing_file_names_it(tmp_path: Path, rt) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(missing))}: cannot read: "):
        load_profile(missing, rt)


# -------------------------------------------------------------------------------------------------
# Old `spec:` form, defaults, camelCase keys
# -------------------------------------------------------------------------------------------------


def test_old_single_spec_form_becomes_one_spec(rt) -> None:
    profile = parse_profile(
        "version: 1\n"
        "spec:\n"
        "  rate: 7\n"
        "  requests:\n"
        "    - shares: 1\n"
        "      staleList: {version: v1, resource: pods}\n",
        "p.yaml",
        rt,
    )
    assert len(profile.specs) == 1
    assert profile.specs[0].rate == 7.0
    assert profile.specs[0].requests[0].kind == "staleList"


def test_old_spec_form_inside_runner_group_spec(rt) -> None:
    spec = parse_runner_group_spec(
        "count: 2\n"
        "loadProfile:\n"
        "  version: 1\n"
        "  spec:\n"
        "    total: 5\n"
        "    requests:\n"
        "      - shares: 1\n"
        "        quorumList: {version: v1, resource: pods}\n",
        "rg.yaml",
        rt,
    )
    assert [s.total for s in spec.load_profile.specs] == [5]


def test_spec_and_specs_together_is_an_error(rt) -> None:
    message = _error(
        "version: 1\n"
        "spec:\n"
        "  requests:\n"
        "    - shares: 1\n"
        "      staleList: {version: v1, resource: pods}\n"
        "specs:\n"
        "  - requests:\n"
        "      - shares: 1\n"
        "        staleList: {version: v1, resource: pods}\n",
        rt,
    )
    assert message == "p.yaml:2: spec: use either `spec` (old form) or `specs`, not both"


def test_spec_defaults(rt) -> None:
    spec = parse_profile(one_request(STALE_PODS), "p.yaml", rt).specs[0]
    assert spec.conns == 1
    assert spec.client == 1
    assert spec.content_type == "json"
    assert spec.arrival == "closed"
    assert spec.timeout == 60.0
    assert (spec.rate, spec.total, spec.duration, spec.max_retries) == (0.0, 0, 0.0, 0)
    assert spec.disable_http2 is False


def test_camel_case_keys_reach_their_fields(rt) -> None:
    profile = parse_profile(
        "version: 1\n"
        "description: camel\n"
        "specs:\n"
        "  - rate: 5\n"
        "    total: 10\n"
        "    conns: 2\n"
        "    client: 4\n"
        "    contentType: protobuf\n"
        "    disableHTTP2: true\n"
        "    maxRetries: 3\n"
        "    arrival: poisson\n"
        "    timeout: 5\n"
        "    requests:\n"
        "      - shares: 1\n"
        "        staleList: {version: v1, resource: pods, fieldSelector: a=b, selector: c=d}\n"
        "      - shares: 2\n"
        "        patch:\n"
        "          version: v1\n"
        "          resource: configmaps\n"
        "          name: cm\n"
        "          keySpaceSize: 3\n"
        "          patchType: strategic-merge\n"
        "          body: '{}'\n"
        "      - shares: 3\n"
        "        getPodLog: {namespace: d, name: p, tailLines: 0, limitBytes: 10}\n"
        "      - shares: 4\n"
        "        postDel: {version: v1, resource: pods, namespace: d, deleteRatio: 0.5,"
        " payloadSize: 9}\n"
        "      - shares: 5\n"
        "        put: {version: v1, resource: configmaps, namespace: d, name: cm,"
        " keySpaceSize: 2, payloadSize: 8}\n",
        "p.yaml",
        rt,
    )
    assert profile.description == "camel"
    spec = profile.specs[0]
    assert spec.content_type == "protobuf"
    assert spec.disable_http2 is True
    assert spec.max_retries == 3
    assert (spec.arrival, spec.timeout) == ("poisson", 5.0)
    stale, patch, log, post_del, put = (r.config for r in spec.requests)
    assert (stale.field_selector, stale.selector) == ("a=b", "c=d")
    assert (patch.key_space_size, patch.patch_type) == (3, "strategic-merge")
    assert (log.tail_lines, log.limit_bytes) == (0, 10)
    assert (post_del.delete_ratio, post_del.payload_size) == (0.5, 9)
    assert (put.key_space_size, put.payload_size) == (2, 8)
    assert [r.shares for r in spec.requests] == [1, 2, 3, 4, 5]


def test_snake_case_keys_are_refused(rt) -> None:
    message = _error(
        one_request("        patch: {version: v1, resource: cm, name: x, key_space_size: 1,"
                    " patchType: json, body: '[]'}\n"),
        rt,
    )  # fmt: skip
    assert "p.yaml:5: specs[0].requests[0].patch.key_space_size: unknown key" in message
    assert "keySpaceSize" in message


# -------------------------------------------------------------------------------------------------
# Single errors: `file:line: yaml.path: message`
# -------------------------------------------------------------------------------------------------


def test_unknown_spec_key_lists_the_allowed_ones(rt) -> None:
    message = _error(one_request(STALE_PODS) + "    bogus: 1\n", rt)
    assert message == (
        "p.yaml:6: specs[0].bogus: unknown key (allowed: requests, rate, total, duration, conns,"
        " client, contentType, disableHTTP2, maxRetries, arrival, timeout)"
    )


def test_unknown_request_key_lists_the_allowed_ones(rt) -> None:
    message = _error(
        one_request("        staleList:\n          version: v1\n          resource: pods\n"
                    "          labelSelector: a=b\n"),
        rt,
    )  # fmt: skip
    assert message == (
        "p.yaml:8: specs[0].requests[0].staleList.labelSelector: unknown key (allowed: version,"
        " resource, group, namespace, selector, fieldSelector, limit)"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("rate: fast", "p.yaml:6: specs[0].rate: must be a number (got 'fast')"),
        ("conns: 1.5", "p.yaml:6: specs[0].conns: must be an integer (got 1.5)"),
        ("total: '10'", "p.yaml:6: specs[0].total: must be an integer (got '10')"),
        ("conns: 0", "p.yaml:6: specs[0].conns: must be > 0 (got 0)"),
        ("client: 0", "p.yaml:6: specs[0].client: must be > 0 (got 0)"),
        ("rate: -1", "p.yaml:6: specs[0].rate: must be >= 0 (got -1.0)"),
        ("timeout: 0", "p.yaml:6: specs[0].timeout: must be > 0 (got 0.0)"),
        ("arrival: open", "p.yaml:6: specs[0].arrival: must be one of closed, constant, poisson"),
    ],
)
def test_spec_field_errors(line: str, expected: str, rt) -> None:
    assert _error(one_request(STALE_PODS) + f"    {line}\n", rt).startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            one_request(STALE_PODS) + '    disableHTTP2: "yes"\n',
            "p.yaml:6: specs[0].disableHTTP2: must be true or false (got 'yes')",
        ),
        (
            one_request(STALE_PODS) + "    contentType: xml\n",
            "p.yaml:6: specs[0].contentType: must be one of json, protobuf (got 'xml')",
        ),
        (
            one_request("        patch:\n          version: v1\n          resource: configmaps\n"
                        "          name: x\n          keySpaceSize: 0\n          patchType: json\n"
                        "          body: '[]'\n"),
            "p.yaml:9: specs[0].requests[0].patch.keySpaceSize: must be > 0 (got 0)",
        ),
        (
            one_request("        patch:\n          version: v1\n          resource: configmaps\n"
                        "          name: x\n          keySpaceSize: 1\n          patchType: bogus\n"
                        "          body: '[]'\n"),
            "p.yaml:10: specs[0].requests[0].patch.patchType: must be one of json, merge,"
            " strategic-merge (got 'bogus')",
        ),
        (
            one_request("        postDel:\n          version: v1\n          resource: pods\n"
                        "          namespace: d\n          deleteRatio: 0.9\n"),
            "p.yaml:9: specs[0].requests[0].postDel.deleteRatio: must be between 0 and 0.5"
            " (got 0.9)",
        ),
        (
            one_request("        getPodLog:\n          namespace: d\n          name: p\n"
                        "          tailLines: -1\n"),
            "p.yaml:8: specs[0].requests[0].getPodLog.tailLines: must be >= 0 (got -1)",
        ),
    ],
    ids=["disableHTTP2", "contentType", "keySpaceSize", "patchType", "deleteRatio", "tailLines"],
)  # fmt: skip
def test_camel_case_field_errors_name_the_yaml_key_and_its_line(
    text: str, expected: str, rt
) -> None:
    assert _error(text, rt) == expected


def test_version_2_is_refused(rt) -> None:
    message = _error(one_request(STALE_PODS).replace("version: 1", "version: 2", 1), rt)
    assert message == "p.yaml:1: version: must be one of 1 (got 2)"


def test_two_request_keys_in_one_item(rt) -> None:
    message = _error(
        one_request(STALE_PODS + "        quorumList: {version: v1, resource: pods}\n"), rt
    )
    assert message == (
        "p.yaml:4: specs[0].requests[0]: has 2 request types (staleList, quorumList);"
        " use one per item"
    )


def test_item_without_request_key(rt) -> None:
    message = _error(one_request(""), rt)
    assert (
        message == f"p.yaml:4: specs[0].requests[0]: needs one request type (one of: {KNOWN_TYPES})"
    )


def test_unknown_request_type_lists_known_ones(rt) -> None:
    message = _error(one_request("        staleLists: {version: v1, resource: pods}\n"), rt)
    assert message == (
        f"p.yaml:5: specs[0].requests[0].staleLists: unknown request type (known: {KNOWN_TYPES})"
    )
    for builtin in ("staleGet", "quorumGet", "staleList", "quorumList", "patch", "getPodLog",
                    "postDel", "put"):  # fmt: skip
        assert builtin in KNOWN_TYPES.split(", ")


def test_negative_shares(rt) -> None:
    text = (
        "version: 1\nspecs:\n  - requests:\n"
        "      - shares: 2\n" + STALE_PODS + "      - shares: -1\n" + STALE_PODS
    )
    assert _error(text, rt) == "p.yaml:6: specs[0].requests[1].shares: must be >= 0 (got -1)"


def test_shares_summing_to_zero(rt) -> None:
    text = (
        "version: 1\nspecs:\n  - requests:\n"
        "      - shares: 0\n" + STALE_PODS + "      - shares: 0\n" + STALE_PODS
    )
    assert _error(text, rt) == "p.yaml:3: specs[0].requests: shares must add up to more than 0"


def test_missing_shares_count_as_zero(rt) -> None:
    text = "version: 1\nspecs:\n  - requests:\n      - " + STALE_PODS.lstrip()
    assert _error(text, rt) == "p.yaml:3: specs[0].requests: shares must add up to more than 0"


def test_boolean_shares_are_not_an_integer(rt) -> None:
    text = one_request(STALE_PODS).replace("shares: 1", "shares: true")
    assert (
        _error(text, rt) == "p.yaml:4: specs[0].requests[0].shares: must be an integer (got True)"
    )


def test_empty_requests(rt) -> None:
    assert _error("version: 1\nspecs:\n  - requests: []\n", rt) == (
        "p.yaml:3: specs[0].requests: needs at least one request"
    )


def test_patch_key_space_size_zero(rt) -> None:
    message = _error(
        one_request("        patch: {version: v1, resource: configmaps, name: x, keySpaceSize: 0,"
                    " patchType: json, body: '[]'}\n"),
        rt,
    )  # fmt: skip
    assert message == "p.yaml:5: specs[0].requests[0].patch.keySpaceSize: must be > 0 (got 0)"


def test_patch_invalid_json_body(rt) -> None:
    message = _error(
        one_request("        patch:\n          version: v1\n          resource: configmaps\n"
                    "          name: x\n          keySpaceSize: 1\n          patchType: json\n"
                    "          body: '{oops'\n"),
        rt,
    )  # fmt: skip
    assert message.startswith("p.yaml:11: specs[0].requests[0].patch.body: must be valid JSON: ")


def test_patch_body_required(rt) -> None:
    message = _error(
        one_request("        patch:\n          version: v1\n          resource: configmaps\n"
                    "          name: x\n          keySpaceSize: 1\n          patchType: json\n"),
        rt,
    )  # fmt: skip
    assert message == "p.yaml:5: specs[0].requests[0].patch.body: required (a JSON document)"


def test_patch_type_bogus(rt) -> None:
    message = _error(
        one_request("        patch: {version: v1, resource: configmaps, name: x, keySpaceSize: 1,"
                    " patchType: bogus, body: '[]'}\n"),
        rt,
    )  # fmt: skip
    assert message == (
        "p.yaml:5: specs[0].requests[0].patch.patchType: must be one of json, merge,"
        " strategic-merge (got 'bogus')"
    )


def test_stale_list_with_limit(rt) -> None:
    message = _error(
        one_request("        staleList:\n          version: v1\n          resource: pods\n"
                    "          limit: 500\n"),
        rt,
    )  # fmt: skip
    assert message == (
        "p.yaml:8: specs[0].requests[0].staleList.limit: must be 0 for a stale list (got 500)"
    )


def test_quorum_list_with_limit_is_fine(rt) -> None:
    profile = parse_profile(
        one_request("        quorumList: {version: v1, resource: pods, limit: 500}\n"), "p.yaml", rt
    )
    assert profile.specs[0].requests[0].config.limit == 500


def test_put_on_pods(rt) -> None:
    message = _error(
        one_request("        put:\n          version: v1\n          resource: pods\n"
                    "          namespace: d\n          name: x\n          keySpaceSize: 1\n"
                    "          payloadSize: 1\n"),
        rt,
    )  # fmt: skip
    assert message == (
        "p.yaml:7: specs[0].requests[0].put.resource: put supports configmaps only (got 'pods')"
    )


def test_put_needs_a_namespace(rt) -> None:
    message = _error(
        one_request("        put: {version: v1, resource: configmaps, name: x, keySpaceSize: 1,"
                    " payloadSize: 1}\n"),
        rt,
    )  # fmt: skip
    assert message == "p.yaml:5: specs[0].requests[0].put.namespace: required"


def test_get_pod_log_without_name(rt) -> None:
    message = _error(one_request("        getPodLog: {namespace: d}\n"), rt)
    assert message == "p.yaml:5: specs[0].requests[0].getPodLog.name: required"


def test_post_del_delete_ratio_above_half(rt) -> None:
    message = _error(
        one_request("        postDel: {version: v1, resource: pods, namespace: d,"
                    " deleteRatio: 0.9}\n"),
        rt,
    )  # fmt: skip
    assert message == (
        "p.yaml:5: specs[0].requests[0].postDel.deleteRatio: must be between 0 and 0.5 (got 0.9)"
    )


@pytest.mark.parametrize(
    ("config", "missing"),
    [("{resource: pods}", "version"), ("{version: v1}", "resource"), ("{}", "version")],
)
def test_missing_version_or_resource(config: str, missing: str, rt) -> None:
    message = _error(one_request(f"        staleGet: {config}\n"), rt)
    assert message.startswith(f"p.yaml:5: specs[0].requests[0].staleGet.{missing}: required")


def test_missing_specs(rt) -> None:
    assert _error("version: 1\nspecs: []\n", rt) == (
        "p.yaml:2: specs: must be a non-empty list of specs"
    )


def test_missing_top_level_version_has_a_line(rt) -> None:
    text = one_request(STALE_PODS).replace("version: 1\n", "description: x\n", 1)
    assert _error(text, rt) == "p.yaml:1: version: required"


def test_missing_top_level_version_is_reported(rt) -> None:
    text = one_request(STALE_PODS).replace("version: 1\n", "description: x\n", 1)
    assert "version: required" in _error(text, rt)


def test_runner_group_count_zero(rt) -> None:
    text = "count: 0\nloadProfile:\n" + "".join(
        "  " + line + "\n" for line in one_request(STALE_PODS).splitlines()
    )
    assert _error(text, rt, parse_runner_group_spec) == "p.yaml:1: count: must be > 0 (got 0)"


def test_runner_group_profile_errors_carry_the_loadprofile_path(rt) -> None:
    text = "count: 1\nloadProfile:\n" + "".join(
        "  " + line + "\n" for line in (one_request(STALE_PODS) + "    conns: 0\n").splitlines()
    )
    assert _error(text, rt, parse_runner_group_spec) == (
        "p.yaml:8: loadProfile.specs[0].conns: must be > 0 (got 0)"
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nspecs:\n  - rate: 1: 2\n", 3),
        ("version: 1\nspecs:\n\t- rate: 1\n", 3),
        ("version: 1\nspecs:\n  - requests:\n      - shares: 1\n        staleList: {a: [}\n", 5),
    ],
    ids=["mapping-value", "tab", "flow"],
)
def test_invalid_yaml_gives_the_line(text: str, line: int, rt) -> None:
    assert _error(text, rt).startswith(f"p.yaml:{line}: invalid YAML: ")


def test_document_that_is_not_a_mapping(rt) -> None:
    assert _error("- a\n", rt).startswith("p.yaml: must be a YAML mapping")


# -------------------------------------------------------------------------------------------------
# Several problems at once
# -------------------------------------------------------------------------------------------------


def test_several_problems_are_reported_together(rt) -> None:
    text = (
        "version: 1\n"  # 1
        "specs:\n"  # 2
        "  - rate: fast\n"  # 3
        "    conns: 1.5\n"  # 4
        "    bogus: 1\n"  # 5
        "    requests:\n"  # 6
        "      - shares: 1\n"  # 7
        "        staleList: {version: v1, resource: pods}\n"  # 8
        "  - requests:\n"  # 9
        "      - shares: -2\n"  # 10
        "        quorumList: {version: v1, resource: pods, limit: -1}\n"  # 11
        "      - shares: 3\n"  # 12
        "        nope: {}\n"  # 13
        "      - shares: 3\n"  # 14
        "        patch:\n"  # 15
        "          version: v1\n"  # 16
        "          resource: configmaps\n"  # 17
        "          name: x\n"  # 18
        "          keySpaceSize: 1\n"  # 19
        "          patchType: json\n"  # 20
        "          body: '{oops'\n"  # 21
    )
    message = _error(text, rt)
    lines = message.splitlines()
    assert lines[0] == "7 problems:"
    assert sorted(line.strip() for line in lines[1:]) == sorted(
        [
            "p.yaml:3: specs[0].rate: must be a number (got 'fast')",
            "p.yaml:4: specs[0].conns: must be an integer (got 1.5)",
            "p.yaml:5: specs[0].bogus: unknown key (allowed: requests, rate, total, duration,"
            " conns, client, contentType, disableHTTP2, maxRetries, arrival, timeout)",
            "p.yaml:10: specs[1].requests[0].shares: must be >= 0 (got -2)",
            "p.yaml:11: specs[1].requests[0].quorumList.limit: must be >= 0 (got -1)",
            f"p.yaml:13: specs[1].requests[1].nope: unknown request type (known: {KNOWN_TYPES})",
            "p.yaml:21: specs[1].requests[2].patch.body: must be valid JSON: Expecting property"
            " name enclosed in double quotes: line 1 column 2 (char 1)",
        ]
    )


def test_every_invalid_field_of_one_spec_is_reported(rt) -> None:
    message = _error(one_request(STALE_PODS) + "    conns: 0\n    client: 0\n    timeout: 0\n", rt)
    assert message.splitlines() == [
        "3 problems:",
        "  p.yaml:6: specs[0].conns: must be > 0 (got 0)",
        "  p.yaml:7: specs[0].client: must be > 0 (got 0)",
        "  p.yaml:8: specs[0].timeout: must be > 0 (got 0.0)",
    ]


def test_spec_validator_problem_reported_next_to_a_request_problem(rt) -> None:
    message = _error(
        one_request("        staleList: {version: v1, resource: pods, limit: 3}\n")
        + "    conns: 0\n",
        rt,
    )
    assert "p.yaml:6: specs[0].conns: must be > 0 (got 0)" in message
    assert "specs[0].requests[0].staleList.limit: must be 0 for a stale list" in message


def test_shares_sum_problem_does_not_hide_field_problems(rt) -> None:
    text = "version: 1\nspecs:\n  - rate: fast\n    requests:\n      - shares: 0\n" + STALE_PODS
    message = _error(text, rt)
    assert message.splitlines()[0] == "2 problems:"
    assert "p.yaml:3: specs[0].rate: must be a number (got 'fast')" in message
    assert "p.yaml:4: specs[0].requests: shares must add up to more than 0" in message


# -------------------------------------------------------------------------------------------------
# Third-party request types validate through their own config class
# -------------------------------------------------------------------------------------------------


def _even(_instance: object, _attribute: object, value: int) -> None:
    if value % 2:
        raise InvalidField("depth", f"must be even (got {value})")


@attrs.frozen(kw_only=True)
class EchoConfig:
    path: str
    depth: int = attrs.field(default=2, validator=_even)
    mode: str = attrs.field(default="fast", validator=one_of("fast", "slow"))
    burst: int = attrs.field(default=1, validator=positive())


class EchoRequest(RequestType):
    name = "echo"
    config_type = EchoConfig

    def build(self) -> WireRequest:
        return WireRequest("GET", self.config.path, f"GET {self.config.path}")


class EchoPlugin:
    @hookimpl
    def kperf_register_request_types(self, registry):
        registry.add(EchoRequest)


@pytest.fixture
def echo_rt():
    return KperfPluginManager(autoload=False, plugins=[("echo-plugin", EchoPlugin())]).request_types


def test_third_party_request_type_structures_its_config(echo_rt) -> None:
    profile = parse_profile(
        one_request("        echo: {path: /healthz, depth: 4, mode: slow, burst: 3}\n"),
        "p.yaml",
        echo_rt,
    )
    item = profile.specs[0].requests[0]
    assert item.kind == "echo"
    assert item.config == EchoConfig(path="/healthz", depth=4, mode="slow", burst=3)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "        echo:\n          path: /x\n          depth: 3\n",
            "p.yaml:7: specs[0].requests[0].echo.depth: must be even (got 3)",
        ),
        (
            "        echo:\n          path: /x\n          mode: medium\n",
            "p.yaml:7: specs[0].requests[0].echo.mode: must be one of fast, slow (got 'medium')",
        ),
        (
            "        echo:\n          path: /x\n          burst: 0\n",
            "p.yaml:7: specs[0].requests[0].echo.burst: must be > 0 (got 0)",
        ),
        (
            "        echo:\n          depth: 2\n",
            "p.yaml:5: specs[0].requests[0].echo.path: required",
        ),
        (
            "        echo:\n          path: 3\n",
            "p.yaml:6: specs[0].requests[0].echo.path: must be a string (got 3)",
        ),
        (
            "        echo:\n          path: /x\n          extra: 1\n",
            "p.yaml:7: specs[0].requests[0].echo.extra: unknown key (allowed: path, depth, mode,"
            " burst)",
        ),
    ],
    ids=["own-validator", "one_of", "positive", "required", "type", "unknown-key"],
)
def test_third_party_config_errors_have_the_right_path(body: str, expected: str, echo_rt) -> None:
    assert _error(one_request(body), echo_rt) == expected


def test_third_party_type_is_listed_among_known_types(echo_rt) -> None:
    message = _error(one_request("        ech: {}\n"), echo_rt)
    assert message.endswith(f"unknown request type (known: {KNOWN_TYPES}, echo)")


# -------------------------------------------------------------------------------------------------
# profile_to_dict
# -------------------------------------------------------------------------------------------------


FULL_PROFILE = """\
version: 1
description: round trip
specs:
  - rate: 5
    total: 10
    duration: 3
    conns: 2
    client: 4
    contentType: protobuf
    disableHTTP2: true
    maxRetries: 3
    requests:
      - shares: 1
        staleList: {version: v1, resource: pods, fieldSelector: a=b, selector: c=d}
      - shares: 2
        patch: {version: v1, resource: configmaps, namespace: n, name: x, keySpaceSize: 3,
                patchType: merge, body: '{"a": 1}'}
      - shares: 3
        getPodLog: {namespace: d, name: p, tailLines: 0}
  - duration: 7
    requests:
      - shares: 4
        postDel: {version: v1, resource: configmaps, namespace: d, deleteRatio: 0.5,
                  payloadSize: 3, template: {kind: ConfigMap, data: {x: '{{payload}}'}}}
      - shares: 5
        put: {version: v1, resource: configmaps, namespace: d, name: cm, keySpaceSize: 2,
              payloadSize: 8}
"""


def test_profile_to_dict_uses_upstream_keys(rt) -> None:
    data = profile_to_dict(parse_profile(FULL_PROFILE, "p.yaml", rt))
    assert data["version"] == 1
    assert data["description"] == "round trip"
    spec = data["specs"][0]
    for key in ("rate", "total", "duration", "conns", "client", "contentType", "disableHTTP2"):
        assert key in spec
    assert spec["maxRetries"] == 3
    assert spec["contentType"] == "protobuf"
    assert spec["disableHTTP2"] is True
    assert spec["requests"][0] == {
        "staleList": {
            "version": "v1",
            "resource": "pods",
            "group": "",
            "namespace": "",
            "limit": 0,
            "selector": "c=d",
            "fieldSelector": "a=b",
        },
        "shares": 1,
    }
    assert spec["requests"][1]["patch"]["keySpaceSize"] == 3
    assert spec["requests"][1]["patch"]["patchType"] == "merge"
    assert spec["requests"][2]["getPodLog"]["tailLines"] == 0
    assert data["specs"][1]["requests"][0]["postDel"]["deleteRatio"] == 0.5


def test_profile_to_dict_round_trips(rt) -> None:
    profile = parse_profile(FULL_PROFILE, "p.yaml", rt)
    buffer = io.StringIO()
    YAML(typ="safe", pure=True).dump(profile_to_dict(profile), buffer)
    again = parse_profile(buffer.getvalue(), "again.yaml", rt)
    assert isinstance(again, LoadProfile)
    assert again == profile


# -------------------------------------------------------------------------------------------------
# Rules a request type checks when it is made for a spec
# -------------------------------------------------------------------------------------------------


def test_request_type_rule_is_reported_at_load_with_its_line(rt) -> None:
    text = (
        "version: 1\nspecs:\n  - contentType: protobuf\n    requests:\n      - shares: 1\n"
        "        quorumList: {version: v1, resource: pods, paginate: true}\n"
    )
    assert _error(text, rt) == (
        "p.yaml:6: specs[0].requests[0].quorumList.paginate: reads continue tokens:"
        " needs contentType json (got protobuf)"
    )


def test_request_type_rule_is_checked_again_after_overrides(rt) -> None:
    text = one_request("        quorumList: {version: v1, resource: pods, paginate: true}\n")
    loaded = read_profile_file(text, "p.yaml", rt)
    loaded.check(loaded.profile, rt)  # fine as written
    protobuf = attrs.evolve(
        loaded.profile, specs=(attrs.evolve(loaded.profile.specs[0], content_type="protobuf"),)
    )
    with pytest.raises(ConfigError) as caught:
        loaded.check(protobuf, rt, "with --content-type")
    assert str(caught.value) == (
        "p.yaml:5: specs[0].requests[0].quorumList.paginate: reads continue tokens: needs"
        " contentType json (got protobuf) (with --content-type)"
    )


def test_open_loop_arrivals_need_a_rate(rt) -> None:
    text = one_request(STALE_PODS) + "    arrival: poisson\n"
    assert _error(text, rt) == (
        "p.yaml:3: specs[0].rate: must be > 0 for arrival 'poisson' (open-loop arrivals come at"
        " `rate`; got 0)"
    )
    # … and again when a flag brings the rule in: located in the file, naming the flag
    loaded = read_profile_file(one_request(STALE_PODS), "p.yaml", rt)
    poisson = attrs.evolve(
        loaded.profile, specs=(attrs.evolve(loaded.profile.specs[0], arrival="poisson"),)
    )
    with pytest.raises(ConfigError, match=r"^p.yaml:3: specs\[0\].rate: .*\(with --arrival\)$"):
        loaded.check(poisson, rt, "with --arrival")


def test_rules_of_every_spec_are_checked_before_any_runs(rt) -> None:
    # the third spec only watches: without a duration nothing would end it
    text = (
        "version: 1\nspecs:\n"
        "  - requests:\n      - shares: 1\n" + STALE_PODS + "    total: 5\n"
        "  - requests:\n      - shares: 1\n" + STALE_PODS + "    total: 5\n"
        "  - requests:\n      - watch: {version: v1, resource: pods}\n"
    )
    assert _error(text, rt) == (
        "p.yaml:11: specs[2].duration: required: every request of this spec runs in the"
        " background (watch), so only a duration ends it"
    )


def test_a_runner_group_spec_is_read_for_its_load_profile(rt) -> None:
    text = "count: 2\nloadProfile:\n" + "".join(
        f"  {line}\n" for line in one_request(STALE_PODS).splitlines()
    )
    loaded = read_profile_file(text, "rg.yaml", rt)
    assert loaded.prefix == ("loadProfile",)
    assert loaded.profile.specs[0].requests[0].kind == "staleList"


def test_a_watch_runs_beside_the_load_and_takes_no_shares(rt) -> None:
    text = (
        "version: 1\nspecs:\n  - duration: 5\n    requests:\n"
        "      - watch: {version: v1, resource: pods, watchers: 3}\n"
    )
    [item] = parse_profile(text, "p.yaml", rt).specs[0].requests
    assert (item.kind, item.shares, item.config.watchers) == ("watch", 0, 3)
    with_shares = text.replace("watchers: 3}", "watchers: 3}\n        shares: 2")
    assert _error(with_shares, rt) == (
        "p.yaml:6: specs[0].requests[0].shares: watch runs beside the load (its own sessions),"
        " so it takes no shares (got 2)"
    )
