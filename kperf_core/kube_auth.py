"""How kperf's requests authenticate: the ``Authorization`` header and its refresh.

:mod:`kperf_core.kube` builds these from the loaded configuration; the engine asks them for a
header on every request, and the ``kubernetes`` client (through ``refresh_api_key_hook``) before
every setup call, so both act as one identity refreshed by one rule. Exec credential plugins are
run here, not by the ``kubernetes`` loader: its runner logs a failing plugin and goes on
unauthenticated, has no timeout, hands the plugin the caller's stdin and drops a client
certificate that comes with a token.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import attrs

from kperf_core.errors import ClusterError, ConfigError

__all__ = [
    "EXEC_EXPIRY_MARGIN_SECONDS",
    "EXEC_TIMEOUT_SECONDS",
    "TOKEN_FILE_MAX_AGE_SECONDS",
    "Credentials",
    "ExecCredentials",
    "ExecPlugin",
    "StaticCredentials",
    "TokenFileCredentials",
]

#: A token file is re-read once its last read is this old. Same period as client-go: projected
#: service-account tokens are rotated by the kubelet long before they expire, so a minute is ample.
TOKEN_FILE_MAX_AGE_SECONDS = 60.0

#: An exec-plugin token is replaced this long before its expirationTimestamp, so a request in
#: flight never carries a token that expires on the way.
EXEC_EXPIRY_MARGIN_SECONDS = 30.0

#: An exec plugin that has not answered by then is treated as failed: with stdin closed it cannot
#: be waiting for the user, and a hung plugin would otherwise stall every worker of the run.
EXEC_TIMEOUT_SECONDS = 120.0


def _monotonic() -> float:
    # Indirection so tests can move time forward without patching the global ``time`` module.
    return time.monotonic()


def _wall_clock() -> float:
    # Exec expiry timestamps are absolute, so they are compared with wall-clock time.
    return time.time()


class Credentials:
    """How each request authenticates: the value of its ``Authorization`` header.

    The base class sends no header (anonymous, or authenticated by client certificate alone).
    Every implementation is thread-safe: worker threads call :meth:`authorization_header` for
    every request, and a refresh (re-reading a file, re-running a plugin) happens once, not once
    per waiting thread.
    """

    def authorization_header(self) -> str | None:
        """Return the header value to send now (``"Bearer <token>"``, ``"Basic ..."``) or None.

        May raise :class:`ClusterError` when a refresh is due and the exec plugin fails.
        """
        return None


@attrs.frozen
class StaticCredentials(Credentials):
    """A fixed header: ``user.token`` (``Bearer ...``) or ``user.username``/``password``
    (``Basic ...``), as the ``kubernetes`` loader resolved it."""

    header: str = attrs.field(repr=False)

    def authorization_header(self) -> str | None:
        return self.header


def _read_token_file(path: Path, where: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{where}: token file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read token file {path}: {exc.strerror}") from None
    if not token:
        raise ConfigError(f"{where}: token file {path} is empty")
    return token


class TokenFileCredentials(Credentials):
    """A bearer token read from a file and re-read when the last read is a minute old.

    Used for ``user.tokenFile`` and the in-cluster service-account token, both of which are
    rotated on disk during long runs.
    """

    def __init__(self, path: Path, where: str, initial_token: str | None = None) -> None:
        self.path = path
        self._where = where
        self._lock = threading.Lock()
        token = initial_token if initial_token is not None else _read_token_file(path, where)
        # (token, monotonic time of the read) is replaced as one tuple, so the fast path below
        # can read it without taking the lock.
        self._state: tuple[str, float] = (token, _monotonic())

    def __repr__(self) -> str:
        return f"TokenFileCredentials(path={str(self.path)!r})"

    def authorization_header(self) -> str | None:
        token, read_at = self._state
        if _monotonic() - read_at < TOKEN_FILE_MAX_AGE_SECONDS:
            return f"Bearer {token}"
        with self._lock:
            token, read_at = self._state
            now = _monotonic()
            if now - read_at >= TOKEN_FILE_MAX_AGE_SECONDS:
                try:
                    token = _read_token_file(self.path, self._where)
                except ConfigError:
                    # Like client-go: a file caught mid-rotation (or briefly missing) must not fail
                    # the run; keep the last good token and try again after another period.
                    pass
                self._state = (token, now)
        return f"Bearer {token}"


@attrs.frozen
class ExecResult:
    """What one run of an exec credential plugin returned."""

    token: str | None = attrs.field(repr=False)
    client_cert_pem: bytes | None = attrs.field(repr=False)
    client_key_pem: bytes | None = attrs.field(repr=False)
    #: Wall-clock expiry (seconds since the epoch); None means the credential never expires.
    expires_at: float | None


@attrs.frozen
class ExecPlugin:
    """A ``user.exec`` stanza, ready to run."""

    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    api_version: str
    #: ``spec.cluster`` for KUBERNETES_EXEC_INFO when the stanza sets provideClusterInfo.
    cluster_info: Mapping[str, object] | None
    #: Prefix of every error message, e.g. ``kubeconfig /x/config: user "admin"``.
    where: str

    def _fail(self, problem: str, stderr: str) -> ClusterError:
        first_line = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
        detail = f": {first_line}" if first_line else " (no stderr)"
        return ClusterError(
            f'{self.where}: exec credential plugin "{self.command}" {problem}{detail}'
        )

    def run(self) -> ExecResult:
        spec: dict[str, object] = {"interactive": False}
        if self.cluster_info is not None:
            spec["cluster"] = dict(self.cluster_info)
        exec_info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec}
        env = dict(os.environ)
        env.update(self.env)
        env["KUBERNETES_EXEC_INFO"] = json.dumps(exec_info)
        try:
            done = subprocess.run(
                [self.command, *self.args],
                env=env,
                # kperf never hands the terminal to a plugin: it may run mid-benchmark.
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=EXEC_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            raise ClusterError(
                f'{self.where}: exec credential plugin "{self.command}" not found '
                "(install it, or put it on PATH)"
            ) from None
        except subprocess.TimeoutExpired as exc:
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
            raise self._fail(f"did not finish within {EXEC_TIMEOUT_SECONDS:g} s", stderr) from None
        except OSError as exc:
            raise ClusterError(
                f'{self.where}: exec credential plugin "{self.command}" could not be started: '
                f"{exc.strerror}"
            ) from None
        if done.returncode != 0:
            raise self._fail(f"exited with status {done.returncode}", done.stderr)
        return self._parse(done.stdout, done.stderr)

    def _parse(self, stdout: str, stderr: str) -> ExecResult:
        try:
            credential = json.loads(stdout)
        except json.JSONDecodeError as exc:
            raise self._fail(f"printed invalid JSON ({exc.msg})", stderr) from None
        if not isinstance(credential, dict) or credential.get("kind") != "ExecCredential":
            raise self._fail("printed JSON that is not an ExecCredential", stderr)
        if credential.get("apiVersion") != self.api_version:
            raise self._fail(
                f"returned apiVersion {credential.get('apiVersion')!r} but the kubeconfig asks "
                f"for {self.api_version!r}",
                stderr,
            )
        status = credential.get("status")
        if not isinstance(status, dict):
            raise self._fail("returned an ExecCredential without a status", stderr)
        token = status.get("token") or None
        cert = status.get("clientCertificateData") or None
        key = status.get("clientKeyData") or None
        if not all(value is None or isinstance(value, str) for value in (token, cert, key)):
            raise self._fail("returned non-string credential fields", stderr)
        if (cert is None) != (key is None):
            raise self._fail(
                "returned only one of clientCertificateData and clientKeyData (need both)", stderr
            )
        if token is None and cert is None:
            raise self._fail(
                "returned neither a token nor clientCertificateData/clientKeyData", stderr
            )
        return ExecResult(
            token=token,
            client_cert_pem=cert.encode() if cert is not None else None,
            client_key_pem=key.encode() if key is not None else None,
            expires_at=self._expiry(status.get("expirationTimestamp"), stderr),
        )

    def _expiry(self, value: object, stderr: str) -> float | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self._fail("returned a non-string expirationTimestamp", stderr)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise self._fail(
                f"returned expirationTimestamp {value!r}, which is not RFC 3339", stderr
            ) from None
        if moment.tzinfo is None:
            # RFC 3339 always carries an offset; a bare timestamp is most plausibly UTC.
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


class ExecCredentials(Credentials):
    """A token from a client-go exec credential plugin, cached until shortly before it expires."""

    def __init__(self, plugin: ExecPlugin, first: ExecResult) -> None:
        self._plugin = plugin
        self._lock = threading.Lock()
        # Replaced as a whole, so the fast path reads it without the lock.
        self._result = first

    def __repr__(self) -> str:
        return f"ExecCredentials(command={self._plugin.command!r})"

    @staticmethod
    def _fresh(result: ExecResult) -> bool:
        return (
            result.expires_at is None
            or _wall_clock() < result.expires_at - EXEC_EXPIRY_MARGIN_SECONDS
        )

    def authorization_header(self) -> str | None:
        result = self._result
        if result.token is None:
            # The plugin authenticates by client certificate only; that material is fixed for
            # the run, so there is nothing to refresh.
            return None
        if not self._fresh(result):
            with self._lock:
                result = self._result
                if not self._fresh(result):
                    result = self._plugin.run()
                    self._result = result
        return None if result.token is None else f"Bearer {result.token}"
