"""Field validators for request-type config classes, built-in and third-party.

A leaf module (it imports nothing of kperf's) so that both the profile loader and the request-type
contract can use it without importing each other. A validator raises :class:`InvalidField`; the
profile loader turns it into ``file:line: YAML.path: message``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

Validator = Callable[[Any, Any, Any], None]


class InvalidField(ValueError):
    """Raised by a validator: ``field`` is the attribute (snake_case) that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _check(predicate: Callable[[Any], bool], message: str) -> Validator:
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not predicate(value):
            raise InvalidField(attribute.name, f"{message} (got {value!r})")

    return validate


def positive() -> Validator:
    return _check(lambda v: v > 0, "must be > 0")


def non_negative() -> Validator:
    return _check(lambda v: v >= 0, "must be >= 0")


def non_empty() -> Validator:
    return _check(lambda v: bool(v), "must not be empty")


def required() -> Validator:
    """For string fields that must be given (an empty default stands for "missing")."""

    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not value:
            raise InvalidField(attribute.name, "required")

    return validate


def one_of(*allowed: Any) -> Validator:
    listed = ", ".join(str(a) for a in allowed)
    return _check(lambda v: v in allowed, f"must be one of {listed}")


def in_range(low: float, high: float) -> Validator:
    return _check(lambda v: low <= v <= high, f"must be between {low} and {high}")


_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def dns_label() -> Validator:
    """Validator for Kubernetes object names used as prefixes (lower-case DNS labels)."""
    return _check(lambda v: bool(_NAME_RE.match(v)), "must be a lower-case DNS label")


def yaml_key(name: str) -> dict[str, str]:
    """Field metadata for a YAML key that is not the camelCase of the attribute name."""
    return {"yaml_key": name}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def key_of(attribute: attrs.Attribute[Any]) -> str:
    """The YAML key of an attrs attribute."""
    return str(attribute.metadata.get("yaml_key") or _camel(attribute.name))
