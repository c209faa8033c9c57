"""The contract of the server's view: reading the API server's own figures around a measurement.

A load run in this process is wrapped by the ``kperf_run`` hook. A runner group's load comes from
other processes in other pods, so its server (``kperf runnergroup server``) asks the
``kperf_server_observer`` hook for an observer instead: it takes a snapshot before it creates the
runners and one after the last of them finished, keeps both in the cluster (it may be restarted
in between), and adds ``view(before, after)`` to the merged report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kperf_core.report_model import ServerView


class ServerViewUnavailable(Exception):
    """Why a snapshot could not be taken (refused, unreachable, unreadable): one line."""


class ServerObserver(Protocol):
    """Takes snapshots of the API server's figures and tells what changed between two."""

    @property
    def source(self) -> str:
        """Where the figures come from (the view's ``source``: ``GET /metrics``)."""
        ...

    def snapshot(self) -> bytes:
        """The server's figures now, as bytes small enough to keep in a ConfigMap (≤ 1 MiB).

        :raises ServerViewUnavailable: the server could not be read.
        """
        ...

    def view(self, before: bytes, after: bytes) -> ServerView:
        """The report's ``server`` section from two snapshots (``unavailable`` says why not)."""
        ...
