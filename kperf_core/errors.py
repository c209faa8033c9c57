"""One error hierarchy for everything a user can get wrong or a cluster can refuse.

Only the CLI turns these into an exit code and a single line on stderr; library code raises them
with a message written for the person at the terminal (what went wrong, where, what is allowed).
"""

from __future__ import annotations


class KperfError(Exception):
    """Base of every error kperf reports to a user without a traceback."""

    #: Process exit code the CLI uses for this kind of error.
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(KperfError):
    """A profile, spec, flag or argument is invalid. Exit code 2, like click's usage errors."""

    exit_code = 2


class PluginError(KperfError):
    """A plugin failed to load, or two plugins registered the same name."""

    exit_code = 3


class ClusterError(KperfError):
    """The Kubernetes API server is unreachable or refused a setup call."""

    exit_code = 4


class BackendError(KperfError):
    """A placement backend (Helm release, local processes, node simulator) failed."""

    exit_code = 5
