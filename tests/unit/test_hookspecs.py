"""Meta-tests: every hook is documented like an API reference and exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from kperf_core import hookspecs

SPECS = [
    (name, fn)
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("kperf_")
]
TESTS = Path(__file__).parent.parent


def test_there_are_hookspecs() -> None:
    assert {name for name, _ in SPECS} >= {
        "kperf_register_request_types",
        "kperf_register_scenarios",
        "kperf_register_backends",
        "kperf_register_sinks",
        "kperf_register_commands",
        "kperf_run",
    }


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[n for n, _ in SPECS])
def test_hookspec_is_documented(name: str, spec: object) -> None:
    doc = inspect.getdoc(spec) or ""
    assert doc, f"{name} has no docstring"
    for param in inspect.signature(spec).parameters:
        assert f":param {param}:" in doc, f"{name} does not document {param}"
    assert ".. versionadded::" in doc
    opts = spec.kperf_spec
    if opts.get("firstresult"):
        assert "Stops at first non-None result." in doc


@pytest.mark.parametrize("name", [n for n, _ in SPECS if n.startswith("kperf_register_")])
def test_registration_hook_is_exercised_by_a_test(name: str) -> None:
    sources = [
        p.read_text() for p in TESTS.rglob("*.py") if p.resolve() != Path(__file__).resolve()
    ]
    sources += [p.read_text() for p in (TESTS / "third_party_plugin").rglob("*.py")]
    assert any(name in s for s in sources), f"no test implements {name}"
