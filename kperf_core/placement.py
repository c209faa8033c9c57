"""Where runners and virtual-node controllers may run, as flags spell it: ``KEY=V1[,V2]`` node
affinity and ``PriorityLevel:Precedence`` flow control; and what upstream's ``--eks`` changes.

``kperf runnergroup run`` and ``runkperf bench``/``warmup`` take the same flags, so both parse
them here.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import attrs

from kperf_core.errors import ConfigError
from kperf_core.virtual_nodes import VIRTUAL_NODE_LABEL

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
#: FlowSchema.spec.matchingPrecedence must lie in [1, 10000] (the apiserver's validation).
MAX_PRECEDENCE = 10000


@attrs.frozen
class FlowControl:
    priority_level: str
    matching_precedence: int


def parse_flowcontrol(value: str, flag: str = "--runner-flowcontrol") -> FlowControl:
    """``PriorityLevelName:MatchingPrecedence`` (upstream's default ``workload-low:1000``)."""
    name, sep, precedence = value.rpartition(":")
    if not sep or not precedence.isdigit() or not DNS_SUBDOMAIN.fullmatch(name):
        raise ConfigError(
            f"{flag} {value!r}: expected PriorityLevelName:MatchingPrecedence, "
            "e.g. workload-low:1000"
        )
    if not 1 <= int(precedence) <= MAX_PRECEDENCE:
        raise ConfigError(f"{flag} {value!r}: matching precedence must be in [1, {MAX_PRECEDENCE}]")
    return FlowControl(name, int(precedence))


def parse_affinity(values: tuple[str, ...], flag: str = "--affinity") -> dict[str, tuple[str, ...]]:
    """``KEY=V1[,V2]`` items → required node affinity (operator In, all keys ANDed)."""
    affinity: dict[str, tuple[str, ...]] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        allowed = tuple(v for v in rest.split(",") if v)
        if not sep or not LABEL_KEY.fullmatch(key) or not allowed:
            raise ConfigError(f"{flag} {value!r}: expected KEY=VALUE1[,VALUE2…]")
        affinity[key] = affinity.get(key, ()) + allowed
    return affinity


# -- upstream's --eks ------------------------------------------------------------------------------

#: The instance type of the EKS node whose providerID the virtual nodes share (upstream's
#: ``EKSIdleNodepoolInstanceType``): EKS's cloud controller then takes them for that instance and
#: leaves them alone instead of deleting nodes it finds no instance for.
EKS_IDLE_INSTANCE_TYPE = "m4.large"
EKS_IDLE_NODE_SELECTOR = f"node.kubernetes.io/instance-type={EKS_IDLE_INSTANCE_TYPE}"
#: kube-system DaemonSets of EKS that tolerate every taint, so would put a pod on every virtual
#: node: upstream's warmup removed their tolerations for good; kperf keeps them off the virtual
#: nodes for the run (node affinity) and puts them back as they were.
EKS_DAEMONSETS = ("aws-node", "kube-proxy")


def shared_provider_id(nodes: list[dict[str, Any]]) -> str:
    """The providerID of the first of ``nodes`` (API documents of the ``m4.large`` nodes) that has
    one; upstream took the first node's, empty or not."""
    for node in nodes:
        provider_id = node.get("spec", {}).get("providerID")
        if provider_id:
            return str(provider_id)
    raise ConfigError(f"--eks: no node labelled {EKS_IDLE_NODE_SELECTOR} has a providerID")


def off_virtual_nodes(affinity: dict[str, Any] | None) -> dict[str, Any]:
    """A pod template's ``affinity`` (API document) that also keeps its pods off virtual nodes:
    ``type NotIn [kperf-virtualnodes]`` ANDed into every required node-selector term (terms are
    ORed, so each needs it), or one term of its own when there was none. Everything else stays."""
    exclude = {"key": VIRTUAL_NODE_LABEL[0], "operator": "NotIn", "values": [VIRTUAL_NODE_LABEL[1]]}
    result = copy.deepcopy(affinity or {})
    node_affinity = result.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    for term in terms:
        expressions = term.setdefault("matchExpressions", [])
        if exclude not in expressions:
            expressions.append(exclude)
    required["nodeSelectorTerms"] = terms
    return result
