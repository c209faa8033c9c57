"""How commands print listings: an aligned table, or the same rows as JSON or YAML (``-o``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

OUTPUT_FORMATS = ("table", "json", "yaml")


def echo_table(rows: Sequence[Sequence[Any]]) -> None:
    """Rows (the first is the header) in columns two spaces apart, on stdout."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def echo_document(document: Any, output: str) -> None:
    """``document`` as indented JSON or as YAML, on stdout."""
    if output == "json":
        click.echo(json.dumps(document, indent=2))
    else:
        from ruamel.yaml import YAML

        YAML().dump(document, sys.stdout)
