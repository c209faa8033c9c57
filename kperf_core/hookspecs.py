"""The kperf plugin contract: every hook a plugin may implement.

Plugins are modules (or objects) registered through the ``kperf`` entry-point group — built-in
features exactly like third-party ones. Implementations are marked with :data:`kperf_core.hookimpl`
and may accept fewer arguments than a spec lists; arguments are passed by name, so never give an
implementation's parameters defaults (pluggy would not fill them in).

Hooks are grouped by phase: *registration* hooks are called once per plugin manager, each plugin
with a registry view bound to its own name (so a clash names both plugins); *run* hooks are called
around every load run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from kperf_core import PROJECT_NAME

if TYPE_CHECKING:
    from kperf_core.backends import Backends
    from kperf_core.checks import ReportCheck
    from kperf_core.commands import CommandRegistry
    from kperf_core.engine import LoadRun
    from kperf_core.kube import ClusterEndpoint
    from kperf_core.registry import PluginRegistry
    from kperf_core.report_model import Report
    from kperf_core.request_types import RequestType
    from kperf_core.scenarios import Scenario
    from kperf_core.server_view import ServerObserver
    from kperf_core.sinks import Sink

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# -------------------------------------------------------------------------------------------------
# Registration
# -------------------------------------------------------------------------------------------------


@hookspec
def kperf_register_request_types(registry: PluginRegistry[type[RequestType]]) -> None:
    """Register request types: the keys a load profile's ``requests:`` items may use.

    :param registry: ``registry.add(cls)`` adds a :class:`~kperf_core.request_types.RequestType`
        subclass under ``cls.name`` (``staleList``, ``watch``, …). A name another plugin already
        registered is an error naming both plugins.

    .. versionadded:: 0.1
    """


@hookspec
def kperf_register_scenarios(registry: PluginRegistry[type[Scenario]]) -> None:
    """Register benchmark scenarios (``node10_job1_pod100``, warmup, …).

    :param registry: ``registry.add(cls)`` adds a :class:`~kperf_core.scenarios.Scenario`
        subclass under ``cls.name``.

    .. versionadded:: 0.1
    """


@hookspec
def kperf_register_backends(backends: Backends) -> None:
    """Register placement backends.

    :param backends: one registry view per role — ``backends.control_planes``,
        ``backends.runner_groups`` and ``backends.node_pools``; each ``add(cls)`` registers a
        subclass of the matching base class in :mod:`kperf_core.backends` under ``cls.name``.

    .. versionadded:: 0.1
    """


@hookspec
def kperf_register_sinks(registry: PluginRegistry[type[Sink]]) -> None:
    """Register result sinks (json, csv, html, …).

    :param registry: ``registry.add(cls)`` adds a :class:`~kperf_core.sinks.Sink` subclass under
        ``cls.name``.

    .. versionadded:: 0.1
    """


@hookspec
def kperf_register_checks(registry: PluginRegistry[type[ReportCheck]]) -> None:
    """Register report checks: verdicts a command can hold a finished report to (``--slo``).

    :param registry: ``registry.add(cls)`` adds a :class:`~kperf_core.checks.ReportCheck`
        subclass under ``cls.name``.

    .. versionadded:: 0.1
    """


@hookspec
def kperf_register_commands(commands: CommandRegistry) -> None:
    """Register CLI commands (usually click groups: ``local``, ``runner``, ``bench``, …).

    Called only when the CLI needs its command list, so ``kperf --version`` stays fast; import
    heavy libraries inside the command functions, not at plugin module level.

    :param commands: ``commands.add(cmd, programs=("kperf",))`` adds a click command to the
        ``kperf`` and/or ``runkperf`` programs under ``cmd.name``.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------------------
# Run lifecycle
# -------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def kperf_run(run: LoadRun) -> Report | None:
    """Execute one load run and return its report, complete.

    The engine provides the implementation that does the work (trylast): it returns the typed
    report with kperf's own facts (``report.kperf``: version, server, seed, workers, whether the
    run was interrupted) already in it. Other plugins wrap it with ``@hookimpl(wrapper=True)`` to
    act before and after (the server view scrapes the API server's ``/metrics``): a wrapper's
    ``yield`` gives it that :class:`~kperf_core.report_model.Report`, and it returns the report —
    the same, or a copy with its own facts added (``attrs.evolve(report, server=...)``; facts
    the model has no field for go into ``extra`` under a key of the plugin's own). Sinks and
    ``--slo`` checks then see exactly what the last wrapper returned.

    Stops at first non-None result.

    :param run: the run being executed (its profile, cluster endpoint, settings, worker count
        and the server's version as the command read it).
    :returns: the run's :class:`~kperf_core.report_model.Report` (upstream-compatible keys plus
        kperf's additions when rendered as JSON).

    .. versionadded:: 0.1
    .. versionchanged:: 0.1
        Receives a :class:`~kperf_core.engine.LoadRun` and returns a typed
        :class:`~kperf_core.report_model.Report` (was: a dict without ``kperf``).
    """


@hookspec(firstresult=True)
def kperf_server_observer(endpoint: ClusterEndpoint) -> ServerObserver | None:
    """An observer of the API server behind ``endpoint``, for the server's view of a measurement
    that does not run in this process: the runner-group server takes a snapshot before it
    creates the runners and one after they finished, and adds ``view(before, after)`` to the
    merged report as its ``server`` section (``kperf runnergroup result`` and ``runkperf bench``
    reports carry it).

    Stops at first non-None result.

    :param endpoint: the cluster, with the credentials to read it.
    :returns: a :class:`~kperf_core.server_view.ServerObserver`, or None to leave the server's
        view out (none is returned when the ``server-metrics`` plugin is disabled).

    .. versionadded:: 0.1
    """
