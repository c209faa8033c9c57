"""Programs ``kperf local provision`` installs for other plugins: where they are cached, and which
kwok the charts are written for. The local-control-plane plugin installs them and the node-pools
plugin runs kwok; both depend on this contract, not on each other."""

from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path

from kperf_core.errors import BackendError


def cache_root() -> Path:
    """Where provisioned programs are cached (``$XDG_CACHE_HOME/kperf``, else ``~/.cache``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kperf"


def kwok_version() -> str:
    """The kwok release the charts' Stage objects are written for: their controller image's tag."""
    values = files("kperf_charts") / "virtualnodes" / "controllers" / "values.yaml"
    match = re.search(r"^image:\s*\S+/kwok:(v[\d.]+)\s*$", values.read_text(), re.MULTILINE)
    if not match:
        raise BackendError(f"{values}: no `image: …/kwok:vX.Y.Z` line")
    return match[1]


def kwok_binary() -> Path | None:
    """The kwok program ``kperf local provision`` installed, if it did."""
    path = cache_root() / f"kwok-{kwok_version()}" / "bin" / "kwok"
    return path if os.access(path, os.X_OK) else None
