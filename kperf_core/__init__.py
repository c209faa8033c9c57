"""kperf core: the plugin contract (hook specs, base classes, registries) and the engine.

The core never imports a plugin at module level; every feature reaches it through the ``kperf``
entry-point group, the same way a third-party package does.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("kperf")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

#: The pluggy project name and the entry-point group plugins register under.
PROJECT_NAME = "kperf"

#: Decorator for plugin hook implementations: ``@kperf_core.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
