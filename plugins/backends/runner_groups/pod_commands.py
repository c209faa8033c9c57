"""The hidden commands kperf's runner image runs in the cluster: ``kperf runnergroup server`` (the
server pod) and ``kperf runnergroup runner`` (each runner pod)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from kperf_core.cli import plugin_manager
from kperf_core.errors import BackendError, ConfigError

from .commands import runnergroup_group

TOKEN_ENV = "RUNNERGROUP_TOKEN"
POST_RETRY_SECONDS = 2.0

log = logging.getLogger(__name__)


def _token() -> str:
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ConfigError(f"${TOKEN_ENV} is not set (the chart sets it from the token Secret)")
    return token


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {value!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


@runnergroup_group.command("server", hidden=True)
@click.argument("name")
@click.option("--namespace", default="default", show_default=True)
@click.option("--runnergroup", "uris", multiple=True, required=True, metavar="URI")
@click.option("--runner-image", required=True)
@click.option("--runner-owner", default=None, metavar="APIVERSION:KIND:NAME:UID")
@click.option("--runner-sa", default="default", show_default=True)
@click.option("--runner-verbosity", type=click.IntRange(min=0), default=2)
@click.option("--runner-tolerations", default="[]", help="JSON list of tolerations.")
@click.option("--token-secret", required=True, help="Secret (key `token`) runners read.")
@click.option("--address", "addresses", multiple=True, required=True, metavar="HOST:PORT")
def server_command(
    name: str,
    namespace: str,
    uris: tuple[str, ...],
    runner_image: str,
    runner_owner: str | None,
    runner_sa: str,
    runner_verbosity: int,
    runner_tolerations: str,
    token_secret: str,
    addresses: tuple[str, ...],
) -> None:
    """Run the runner-group server (inside the server pod)."""
    from kubernetes import client

    from kperf_core.cluster_api import api_client
    from kperf_core.kube import load_endpoint
    from kperf_core.profile import parse_runner_group_spec

    from .jobs import Owner, RunnerSettings
    from .server import Group, RunnerGroupServer, serve
    from .specs import load_document, parse_spec_uri, read_spec_text

    # force: the CLI's own logging set-up must not swallow the server's log (kubectl logs).
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    token = _token()
    listen = [_address(a) for a in addresses]
    try:
        tolerations = json.loads(runner_tolerations)
    except ValueError:
        raise ConfigError(f"--runner-tolerations {runner_tolerations!r}: not JSON") from None
    api = api_client(None, None)
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    pm = plugin_manager()
    groups = []
    for i, uri in enumerate(uris):
        source = parse_spec_uri(uri)
        text = read_spec_text(source, core)
        parse_runner_group_spec(text, source.describe(), pm.request_types)
        groups.append(Group(f"{name}-{i}", load_document(text)))
    host, port = listen[0]
    settings = RunnerSettings(
        image=runner_image,
        service_account=runner_sa,
        verbosity=runner_verbosity,
        server_url=f"http://{host}:{port}",
        token_secret=token_secret,
        tolerations=tolerations,
        owner=Owner.parse(runner_owner) if runner_owner else None,
    )
    observer = pm.hook.kperf_server_observer(endpoint=load_endpoint(None, None))
    app = RunnerGroupServer(core, batch, namespace, groups, settings, token, observer)
    app.ensure_jobs()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=app.keep_view_at_end, args=(stop,), daemon=True).start()
    serve(app, listen, stop)


@runnergroup_group.command("runner", hidden=True)
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--target-url", required=True, help="Where to POST the report.")
@click.option("--runner-verbosity", type=click.IntRange(min=0), default=2)
@click.option(
    "--post-timeout",
    type=click.FloatRange(min=0),
    default=600,
    show_default=True,
    help="Seconds to keep retrying the POST while the server is unreachable.",
)
def runner_command(
    config_path: Path, target_url: str, runner_verbosity: int, post_timeout: float
) -> None:
    """Run the load profile (``kperf runner run``), then post the report to the server."""
    token = _token()
    with tempfile.TemporaryDirectory(prefix="kperf-runner-") as tmp:
        result = Path(tmp) / "result.json"
        argv = [
            sys.executable,
            "-c",
            "from kperf_core.cli import kperf_main; kperf_main()",
            "runner",
            "run",
            f"--config={config_path}",
            f"--user-agent={os.environ.get('POD_NAME', 'kperf-runner')}",
            f"--result={result}",
            *(["-v"] if runner_verbosity > 2 else []),
        ]
        code = subprocess.call(argv)
        if code != 0:
            sys.exit(code)
        body = result.read_bytes()
    _post(target_url, body, token, post_timeout)


def _post(url: str, body: bytes, token: str, timeout: float) -> None:
    """Upstream's runner script, bounded: 201 or 409 (posted before) end it; 400, 401 and 404
    cannot get better; anything else is retried until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        except OSError as exc:
            status, answer = 0, str(exc).encode()
        if status in (201, 409):
            click.echo(f"result posted to {url} (HTTP {status})", err=True)
            return
        message = _error_of(answer)
        if status in (400, 401, 404):
            raise BackendError(f"POST {url}: HTTP {status}: {message}")
        if time.monotonic() > deadline:
            raise BackendError(f"POST {url}: no success within {timeout:.0f} s (last: {message})")
        log.warning("POST %s: %s; retrying", url, message)
        time.sleep(POST_RETRY_SECONDS)


def _error_of(answer: bytes) -> str:
    try:
        document: Any = json.loads(answer)
        return str(document.get("error", document))
    except (ValueError, AttributeError):
        return answer.decode(errors="replace")[:200]
