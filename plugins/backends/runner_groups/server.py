"""The runner-group server (``kperf runnergroup server``, run in the server pod).

On start it makes sure every group has its profile ConfigMap and its Job (created only when
absent, so a restarted server adopts what the previous process made). Then it serves upstream's
HTTP API, with a per-run bearer token on every path:

* ``GET /v1/runnergroups`` — ``[{name, spec, status}]``, status from the group's Job;
* ``GET /v1/runnergroups/summary[?wait]`` — the merged report once every Job finished, else 404
  (``missing`` names the runners without a result); ``wait`` blocks until then. With an observer
  (``kperf_server_observer``) it has the server's view: from a snapshot taken before the first
  Job was created to one taken as soon as every Job finished;
* ``POST /v1/runnergroups/{runner}/result`` — a runner's ``kperf runner run`` report: 201 once
  stored durably, 409 if that runner posted before, 404 if it is no runner of these groups, 400
  if the body is no report.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from kperf_core.report_merge import merge_runner_reports, merge_sections
from kperf_core.report_model import ServerView, section_to_document
from kperf_core.server_view import ServerObserver, ServerViewUnavailable

from .jobs import RunnerSettings, job_state, profile_configmap, runner_job
from .specs import dump_document
from .store import AlreadyStored, ResultStore, Snapshot

log = logging.getLogger(__name__)

#: The body of a posted report is bounded: a ConfigMap holds at most 1 MiB.
MAX_BODY = 1 << 20
WAIT_POLL_SECONDS = 1.0
#: How often the server looks whether every Job finished, to take the "after" snapshot.
END_POLL_SECONDS = 2.0
#: A kept snapshot's size limit, below a ConfigMap's 1 MiB (base64 adds a third).
MAX_SNAPSHOT = 700 << 10


@attrs.frozen
class Group:
    name: str
    #: the spec as a document: count, loadProfile, nodeAffinity, serviceAccount
    spec: dict[str, Any]


class RunnerGroupServer:
    """The groups, their Jobs and results; the HTTP handler calls into it."""

    def __init__(
        self,
        core_v1: Any,
        batch_v1: Any,
        namespace: str,
        groups: list[Group],
        settings: RunnerSettings,
        token: str,
        observer: ServerObserver | None = None,
    ) -> None:
        self.core = core_v1
        self.batch = batch_v1
        self.namespace = namespace
        self.groups = groups
        self.settings = settings
        self.token = token
        self.observer = observer
        owner = settings.owner.reference() if settings.owner else None
        self.store = ResultStore(core_v1, namespace, owner)
        self._view_lock = threading.Lock()
        self._view: dict[str, Any] | None = None

    # -- objects ---------------------------------------------------------------------------------

    def ensure_jobs(self) -> None:
        from kubernetes.client.exceptions import ApiException

        if self.observer is not None and self.store.snapshot("before") is None:
            self._keep_snapshot("before")  # before any runner exists
        for group in self.groups:
            spec = group.spec
            objects = (
                (
                    self.core.create_namespaced_config_map,
                    profile_configmap(
                        group.name,
                        self.namespace,
                        dump_document(spec["loadProfile"]),
                        self.settings,
                    ),
                ),
                (
                    self.batch.create_namespaced_job,
                    runner_job(
                        group.name,
                        self.namespace,
                        int(spec["count"]),
                        spec.get("nodeAffinity"),
                        spec.get("serviceAccount"),
                        self.settings,
                    ),
                ),
            )
            for create, body in objects:
                try:
                    create(self.namespace, body)
                except ApiException as exc:
                    if exc.status != 409:  # made by an earlier run of this server: adopt it
                        raise

    def statuses(self) -> list[dict[str, Any]]:
        return [
            {
                "name": group.name,
                "spec": group.spec,
                "status": job_state(self.batch.read_namespaced_job(group.name, self.namespace)),
            }
            for group in self.groups
        ]

    def runners(self, group: str) -> list[str]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={group}")
        return sorted(pod.metadata.name for pod in pods.items)

    def group_of(self, runner: str) -> str | None:
        for group in self.groups:
            if runner.startswith(f"{group.name}-") and runner in self.runners(group.name):
                return group.name
        return None

    # -- results ---------------------------------------------------------------------------------

    def post(self, runner: str, body: bytes) -> tuple[int, dict[str, Any]]:
        group = self.group_of(runner)
        if group is None:
            return 404, {"error": f"{runner} is not a runner of these runner groups"}
        try:
            report = json.loads(body)
            merge_runner_reports([report])  # the shape the summary will need
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return 400, {"error": f"result of {runner} is not a kperf runner report: {exc}"}
        try:
            self.store.put(group, runner, report)
        except AlreadyStored:
            return 409, {"error": f"the result of {runner} was posted already"}
        log.info("stored the result of %s (group %s)", runner, group)
        return 201, {"runner": runner, "group": group}

    # -- the server's view ------------------------------------------------------------------------

    def _keep_snapshot(self, moment: str) -> Snapshot:
        assert self.observer is not None
        taken: Snapshot
        try:
            taken = self.observer.snapshot()
        except ServerViewUnavailable as exc:
            taken = str(exc)
        if isinstance(taken, bytes) and len(taken) > MAX_SNAPSHOT:
            taken = f"the server's figures are too large to keep ({len(taken) >> 10} KiB)"
        if isinstance(taken, str):
            log.warning("no server view: %s", taken)
        return self.store.keep_snapshot(moment, taken)

    @staticmethod
    def _finished(statuses: list[dict[str, Any]]) -> bool:
        return all(s["status"]["state"] == "finished" for s in statuses)

    def keep_view_at_end(self, stop: threading.Event) -> None:
        """Take the "after" snapshot as soon as every Job finished: a summary asked for much
        later must not count the idle time in between."""
        while self.observer is not None and not stop.wait(END_POLL_SECONDS):
            try:
                if self._finished(self.statuses()):
                    self.server_view()
                    return
            except Exception as exc:  # the apiserver may be briefly unreachable: try again
                log.warning("could not take the server's view: %s", exc)

    def server_view(self) -> dict[str, Any] | None:
        """The ``server`` section of the summary (None without an observer); call once every Job
        finished."""
        if self.observer is None:
            return None
        with self._view_lock:
            if self._view is None:
                before = self.store.snapshot("before") or "no snapshot before the runners started"
                after = self.store.snapshot("after") or self._keep_snapshot("after")
                if isinstance(before, bytes) and isinstance(after, bytes):
                    view = self.observer.view(before, after)
                else:
                    reason = before if isinstance(before, str) else after
                    view = ServerView(source=self.observer.source, unavailable=str(reason))
                self._view = section_to_document(view)
            return self._view

    def summary(self) -> tuple[bool, dict[str, Any]]:
        """(ready, document): ready once every group's Job finished."""
        listed = self.statuses()
        statuses = {s["name"]: s["status"] for s in listed}
        ready = self._finished(listed)
        groups = []
        missing: list[str] = []
        for group in self.groups:
            results = self.store.results(group.name)
            without = [r for r in self.runners(group.name) if r not in results]
            missing += without
            entry: dict[str, Any] = {
                "name": group.name,
                "count": int(group.spec["count"]),
                **{k: statuses[group.name][k] for k in ("state", "succeeded", "failed")},
                "missing": without,
                "runners": [
                    {"name": name, "aggregated": report["aggregated"]}
                    for name, report in sorted(results.items())
                ],
            }
            if results:
                entry.update(merge_runner_reports(list(results.values())))
            groups.append(entry)
        if not ready:
            return False, {"error": "summary is not ready", "missing": missing}
        reported = [g for g in groups if "aggregated" in g]
        document: dict[str, Any] = {
            "perSpecResults": [spec for g in reported for spec in g["perSpecResults"]],
        }
        if reported:
            document["aggregated"] = merge_sections([g["aggregated"] for g in reported])
        view = self.server_view()
        if view is not None:
            document["server"] = view
        document["runnerGroups"] = groups
        document["missing"] = missing
        return True, document


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def do_GET(self) -> None:
        if not self._authorized():
            return
        url = urlsplit(self.path)
        app = self.server.app
        if url.path == "/v1/runnergroups":
            self._reply(200, app.statuses())
        elif url.path == "/v1/runnergroups/summary":
            wait = "wait" in parse_qs(url.query, keep_blank_values=True)
            ready, document = app.summary()
            while wait and not ready:
                time.sleep(WAIT_POLL_SECONDS)
                ready, document = app.summary()
            self._reply(200 if ready else 404, document)
        else:
            self._reply(404, {"error": f"no such path {url.path}"})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        parts = urlsplit(self.path).path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        if len(parts) != 4 or parts[:2] != ["v1", "runnergroups"] or parts[3] != "result":
            self._reply(404, {"error": f"no such path {self.path}"})
        elif length > MAX_BODY:
            self._reply(413, {"error": f"a result may have at most {MAX_BODY} bytes"})
        else:
            self._reply(*self.server.app.post(parts[2], self.rfile.read(length)))

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.app.token}"
        if hmac.compare_digest(given.encode(), expected.encode()):
            return True
        # The body is not read: close the connection rather than parse it as the next request.
        self.close_connection = True
        self._reply(401, {"error": "missing or wrong runner-group token"})
        return False

    def _reply(self, status: int, document: Any) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except Exception as exc:  # an apiserver error: 500, and the server keeps serving
            log.warning("request failed: %s", exc)
            try:
                self._reply(500, {"error": str(exc)})
            except OSError:
                pass
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: RunnerGroupServer) -> None:
        self.app = app
        super().__init__(address, _Handler)


def serve(app: RunnerGroupServer, addresses: list[tuple[str, int]], stop: threading.Event) -> None:
    """Serve on every address until ``stop`` is set."""
    servers = [_HttpServer(address, app) for address in addresses]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    for host, port in addresses:
        log.info("serving on %s:%d", host, port)
    stop.wait()
    for s in servers:
        s.shutdown()
        s.server_close()
