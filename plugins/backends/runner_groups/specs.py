"""What ``kperf runnergroup run`` reads from its flags: spec URIs, ``--runner-flowcontrol``,
``--affinity``; and what the runners' RBAC must allow for a spec's requests.

Spec URIs are upstream's: ``file:///abs/path.yaml`` and
``configmap://NAME?namespace=NS&specName=KEY`` (namespace ``default``, key ``spec``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from kperf_core.errors import ConfigError

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
#: FlowSchema.spec.matchingPrecedence must lie in [1, 10000] (the apiserver's validation).
MAX_PRECEDENCE = 10000


@attrs.frozen
class FileSource:
    path: Path

    def describe(self) -> str:
        return str(self.path)


@attrs.frozen
class ConfigMapSource:
    name: str
    namespace: str = "default"
    key: str = "spec"

    def describe(self) -> str:
        return f"configmap {self.namespace}/{self.name} key {self.key}"


SpecSource = FileSource | ConfigMapSource


def parse_spec_uri(uri: str) -> SpecSource:
    """``file:///abs/path.yaml`` or ``configmap://NAME?namespace=NS&specName=KEY``."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(
                f"--runnergroup {uri!r}: a file URI needs an absolute path (file:///abs/path.yaml)"
            )
        return FileSource(Path(parts.path))
    if parts.scheme == "configmap":
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"namespace", "specName"})
        if unknown:
            raise ConfigError(
                f"--runnergroup {uri!r}: unknown parameter {unknown[0]!r} "
                "(allowed: namespace, specName)"
            )
        source = ConfigMapSource(
            parts.netloc,
            query.get("namespace", ["default"])[-1] or "default",
            query.get("specName", ["spec"])[-1] or "spec",
        )
        for what, value in (("name", source.name), ("namespace", source.namespace)):
            if not _DNS_SUBDOMAIN.fullmatch(value):
                raise ConfigError(f"--runnergroup {uri!r}: invalid ConfigMap {what} {value!r}")
        return source
    raise ConfigError(
        f"--runnergroup {uri!r}: unsupported URI (use file:///abs/path.yaml or "
        "configmap://NAME?namespace=NS&specName=KEY)"
    )


@attrs.frozen
class FlowControl:
    priority_level: str
    matching_precedence: int


def parse_flowcontrol(value: str) -> FlowControl:
    """``PriorityLevelName:MatchingPrecedence`` (upstream's default ``workload-low:1000``)."""
    name, sep, precedence = value.rpartition(":")
    if not sep or not precedence.isdigit() or not _DNS_SUBDOMAIN.fullmatch(name):
        raise ConfigError(
            f"--runner-flowcontrol {value!r}: expected PriorityLevelName:MatchingPrecedence, "
            "e.g. workload-low:1000"
        )
    if not 1 <= int(precedence) <= MAX_PRECEDENCE:
        raise ConfigError(
            f"--runner-flowcontrol {value!r}: matching precedence must be in [1, {MAX_PRECEDENCE}]"
        )
    return FlowControl(name, int(precedence))


def parse_affinity(values: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``KEY=V1[,V2]`` items → required node affinity (operator In, all keys ANDed)."""
    affinity: dict[str, tuple[str, ...]] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        allowed = tuple(v for v in rest.split(",") if v)
        if not sep or not _LABEL_KEY.fullmatch(key) or not allowed:
            raise ConfigError(f"--affinity {value!r}: expected KEY=VALUE1[,VALUE2…]")
        affinity[key] = affinity.get(key, ()) + allowed
    return affinity


def read_spec_text(source: SpecSource, core_v1: Any) -> str:
    """The spec's YAML text; ``core_v1`` (a kubernetes CoreV1Api) is used for ConfigMaps only."""
    if isinstance(source, FileSource):
        try:
            return source.path.read_text()
        except OSError as exc:
            raise ConfigError(f"{source.path}: cannot read: {exc.strerror or exc}") from None
    from kubernetes.client.exceptions import ApiException

    try:
        configmap = core_v1.read_namespaced_config_map(source.name, source.namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise ConfigError(f"{source.describe()}: ConfigMap not found") from None
        raise
    data = configmap.data or {}
    if source.key not in data:
        raise ConfigError(
            f"{source.describe()}: no such key (keys: {', '.join(sorted(data)) or 'none'})"
        )
    return str(data[source.key])


def load_document(text: str) -> dict[str, Any]:
    from ruamel.yaml import YAML

    document = YAML(typ="safe").load(text)
    return dict(document) if isinstance(document, Mapping) else {}


def dump_document(document: Mapping[str, Any]) -> str:
    from ruamel.yaml import YAML

    out = io.StringIO()
    YAML(typ="safe").dump(dict(document), out)
    return out.getvalue()


# -------------------------------------------------------------------------------------------------
# RBAC: what the runners' requests need, and no more
# -------------------------------------------------------------------------------------------------

#: request kind → (verbs, subresource); a kind not listed here (a third-party request type) gets
#: read verbs on the resource it names.
_VERBS: dict[str, tuple[tuple[str, ...], str]] = {
    "staleList": (("list",), ""),
    "quorumList": (("list",), ""),
    "staleGet": (("get",), ""),
    "quorumGet": (("get",), ""),
    "watch": (("list", "watch"), ""),
    "watchList": (("list", "watch"), ""),
    # put and patch read (and may create) their key space before the load starts
    "put": (("get", "list", "create", "update"), ""),
    "patch": (("get", "list", "create", "patch"), ""),
    "postDel": (("create", "delete", "list"), ""),
    "getPodLog": (("get",), "log"),
}
_READ = ("get", "list", "watch")


def runner_rules(load_profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ClusterRole rules covering every request of a (raw) load profile, merged per resource."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for spec in load_profile.get("specs") or ():
        for item in spec.get("requests") or ():
            for kind, config in item.items():
                if kind == "shares" or not isinstance(config, Mapping):
                    continue
                wanted, subresource = _VERBS.get(kind, (_READ, ""))
                resource = str(config.get("resource") or ("pods" if kind == "getPodLog" else ""))
                if not resource:
                    continue
                if subresource:
                    resource = f"{resource}/{subresource}"
                group = str(config.get("group") or "")
                # upstream accepts "core" for the core group
                group = "" if group == "core" else group
                verbs.setdefault((group, resource), set()).update(wanted)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(found)}
        for (group, resource), found in sorted(verbs.items())
    ]


_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def parse_toleration(value: str) -> dict[str, str]:
    """``KEY[=VALUE]:EFFECT`` → a toleration (``Equal`` with a value, else ``Exists``)."""
    pair, sep, effect = value.rpartition(":")
    key, has_value, toleration_value = pair.partition("=")
    if not sep or effect not in _EFFECTS or not _LABEL_KEY.fullmatch(key):
        raise ConfigError(
            f"--toleration {value!r}: expected KEY[=VALUE]:EFFECT, EFFECT one of "
            f"{', '.join(_EFFECTS)}"
        )
    if has_value:
        return {"key": key, "operator": "Equal", "value": toleration_value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}
