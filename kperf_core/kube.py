"""Kubeconfig or in-cluster config turned into what the HTTP engine needs to reach the API server.

The engine (pycurl) wants an endpoint URL, TLS material as PEM bytes and an Authorization header;
this module produces exactly that as a :class:`ClusterEndpoint`. The ``kubernetes`` package is
deliberately not imported: it takes about a second to import and kperf needs only this small,
well-defined slice of it. Where behaviour matters the semantics follow client-go's ``clientcmd``
(what kubectl does): ``$KUBECONFIG`` merging, relative paths, token-file refresh, exec plugins.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import attrs
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from kperf_core.errors import ClusterError, ConfigError

__all__ = [
    "EXEC_EXPIRY_MARGIN_SECONDS",
    "EXEC_TIMEOUT_SECONDS",
    "SERVICE_ACCOUNT_DIR",
    "SERVICE_ACCOUNT_DIR_ENV",
    "TOKEN_FILE_MAX_AGE_SECONDS",
    "BasicAuthCredentials",
    "ClusterEndpoint",
    "Credentials",
    "ExecCredentials",
    "StaticTokenCredentials",
    "TokenFileCredentials",
    "default_kubeconfig_path",
    "load_endpoint",
    "service_account_dir",
]

#: Where a pod's service-account token and CA are mounted. Read at call time, so tests (and odd
#: runtimes) can point it elsewhere.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_DIR_ENV = "KPERF_SERVICE_ACCOUNT_DIR"

#: A token file is re-read once its last read is this old. Same period as client-go: projected
#: service-account tokens are rotated by the kubelet long before they expire, so a minute is ample.
TOKEN_FILE_MAX_AGE_SECONDS = 60.0

#: An exec-plugin token is replaced this long before its expirationTimestamp, so a request in
#: flight never carries a token that expires on the way.
EXEC_EXPIRY_MARGIN_SECONDS = 30.0

#: An exec plugin that has not answered by then is treated as failed: with stdin closed it cannot
#: be waiting for the user, and a hung plugin would otherwise stall every worker of the run.
EXEC_TIMEOUT_SECONDS = 120.0

_EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
_EXEC_INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
# Key of the cluster extension whose value is handed to exec plugins that ask for cluster info.
_EXEC_CLUSTER_EXTENSION = "client.authentication.k8s.io/exec"
_IMPERSONATION_FIELDS = ("as", "as-uid", "as-groups", "as-user-extra")


def _monotonic() -> float:
    # Indirection so tests can move time forward without patching the global ``time`` module.
    return time.monotonic()


def _wall_clock() -> float:
    # Exec expiry timestamps are absolute, so they are compared with wall-clock time.
    return time.time()


def _pem_repr(value: bytes | None) -> str:
    # Whole certificates in a repr drown the interesting fields.
    return "None" if value is None else f"<{len(value)} bytes PEM>"


def _secret_repr(value: bytes | None) -> str:
    # A private key must never end up in a log line or a traceback.
    return "None" if value is None else "<redacted>"


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
class StaticTokenCredentials(Credentials):
    """A bearer token written in the kubeconfig (``user.token``)."""

    token: str = attrs.field(repr=False)

    def authorization_header(self) -> str | None:
        return f"Bearer {self.token}"


@attrs.frozen
class BasicAuthCredentials(Credentials):
    """HTTP basic auth (``user.username`` / ``user.password``)."""

    username: str
    password: str = attrs.field(repr=False)

    def authorization_header(self) -> str | None:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


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
class _ExecResult:
    token: str | None = attrs.field(repr=False)
    client_cert_pem: bytes | None = attrs.field(repr=_pem_repr)
    client_key_pem: bytes | None = attrs.field(repr=_secret_repr)
    #: Wall-clock expiry (seconds since the epoch); None means the credential never expires.
    expires_at: float | None


@attrs.frozen
class _ExecPlugin:
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

    def run(self) -> _ExecResult:
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

    def _parse(self, stdout: str, stderr: str) -> _ExecResult:
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
        return _ExecResult(
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

    def __init__(self, plugin: _ExecPlugin, first: _ExecResult) -> None:
        self._plugin = plugin
        self._lock = threading.Lock()
        # Replaced as a whole, so the fast path reads it without the lock.
        self._result = first

    def __repr__(self) -> str:
        return f"ExecCredentials(command={self._plugin.command!r})"

    @staticmethod
    def _fresh(result: _ExecResult) -> bool:
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


@attrs.frozen
class ClusterEndpoint:
    """Everything needed to open authenticated connections to one API server."""

    #: Base URL without a trailing slash, e.g. ``https://127.0.0.1:6443``.
    server: str
    #: CA bundle to verify the server with; None means the system trust store.
    ca_pem: bytes | None = attrs.field(repr=_pem_repr)
    insecure_skip_tls_verify: bool
    client_cert_pem: bytes | None = attrs.field(repr=_pem_repr)
    client_key_pem: bytes | None = attrs.field(repr=_secret_repr)
    #: Name to send in SNI and to verify the server certificate against, if not the URL's host.
    tls_server_name: str | None
    credentials: Credentials
    #: For humans: ``kubeconfig /path (context ctx)`` or ``in-cluster``.
    source: str


# --------------------------------------------------------------------------------------------
# Finding the configuration


def _kubeconfig_env_paths() -> list[Path] | None:
    """The files named by $KUBECONFIG, deduplicated in order; None when it is unset or empty."""
    value = os.environ.get("KUBECONFIG", "")
    parts = [part for part in value.split(os.pathsep) if part]
    if not parts:
        return None
    return [Path(part) for part in dict.fromkeys(parts)]


def service_account_dir() -> Path:
    """Where a pod's service-account files are: ``$KPERF_SERVICE_ACCOUNT_DIR`` if set, else
    Kubernetes' fixed path. The variable lets a process that plays a pod without a container
    (the embedded node simulator executing kperf's runner pods) get the files a pod gets, with
    no root-owned path."""
    override = os.environ.get(SERVICE_ACCOUNT_DIR_ENV)
    return Path(override) if override else SERVICE_ACCOUNT_DIR


def _in_cluster_problem() -> str | None:
    """Why in-cluster config is not available, or None when it is."""
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        if not os.environ.get(name):
            return f"{name} not set"
    token = service_account_dir() / "token"
    if not token.is_file():
        return f"{token} does not exist"
    return None


def _home_kubeconfig() -> Path | None:
    try:
        return Path.home() / ".kube" / "config"
    except RuntimeError:
        # No $HOME and no passwd entry (some minimal containers): there is no home config.
        return None


def default_kubeconfig_path() -> Path | None:
    """The kubeconfig file ``load_endpoint(None)`` reads first, or None if it would read none.

    None means the in-cluster service account applies, or nothing was found. With several files
    in $KUBECONFIG this is the first that exists, the one kubectl writes changes to.
    """
    env_paths = _kubeconfig_env_paths()
    if env_paths is not None:
        return next((path for path in env_paths if path.is_file()), None)
    if _in_cluster_problem() is None:
        return None
    home = _home_kubeconfig()
    return home if home is not None and home.is_file() else None


def load_endpoint(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> ClusterEndpoint:
    """Resolve the API server endpoint, TLS material and credentials.

    An explicit ``kubeconfig`` is used alone. Otherwise: the files in ``$KUBECONFIG`` (merged as
    kubectl merges them), else the in-cluster service account, else ``~/.kube/config``.
    ``context`` defaults to the kubeconfig's ``current-context``.

    Raises :class:`ConfigError` for missing or invalid configuration and :class:`ClusterError`
    when an exec credential plugin fails.
    """
    if kubeconfig is not None:
        path = Path(kubeconfig)
        if not path.is_file():
            raise ConfigError(f"kubeconfig {path}: file does not exist")
        return _from_kubeconfig([path], context)

    env_paths = _kubeconfig_env_paths()
    if env_paths is not None:
        existing = [path for path in env_paths if path.is_file()]
        if not existing:
            # kubectl would not fall back to ~/.kube/config either; silently benchmarking
            # whatever cluster that file points at would be worse than stopping here.
            names = ", ".join(str(path) for path in env_paths)
            raise ConfigError(
                f"$KUBECONFIG names no existing file ({names}); fix or unset it "
                "to use the in-cluster service account or ~/.kube/config"
            )
        return _from_kubeconfig(existing, context)

    in_cluster_problem = _in_cluster_problem()
    if in_cluster_problem is None:
        if context is not None:
            raise ConfigError(
                f'context "{context}" given, but no kubeconfig was found and the in-cluster '
                "service account config has no contexts"
            )
        return _from_in_cluster()

    home = _home_kubeconfig()
    if home is not None and home.is_file():
        return _from_kubeconfig([home], context)
    home_tried = f"{home} (does not exist)" if home is not None else "~/.kube/config (no home)"
    raise ConfigError(
        "no Kubernetes configuration found (tried: $KUBECONFIG (not set), in-cluster service "
        f"account ({in_cluster_problem}), {home_tried})"
    )


def _from_in_cluster() -> ClusterEndpoint:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ["KUBERNETES_SERVICE_PORT"]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal must be bracketed in a URL
    directory = service_account_dir()
    ca_path = directory / "ca.crt"
    try:
        ca_pem = ca_path.read_bytes()
    except OSError:
        raise ConfigError(
            f"in-cluster config: CA file {ca_path} does not exist or cannot be read"
        ) from None
    return ClusterEndpoint(
        server=f"https://{host}:{port}",
        ca_pem=_require_pem(ca_pem, f"in-cluster config: CA file {ca_path}"),
        insecure_skip_tls_verify=False,
        client_cert_pem=None,
        client_key_pem=None,
        tls_server_name=None,
        credentials=TokenFileCredentials(directory / "token", "in-cluster config"),
        source="in-cluster",
    )


# --------------------------------------------------------------------------------------------
# Reading and merging kubeconfig files


@attrs.frozen
class _Entry:
    """One named cluster, user or context, with the file that defined it."""

    name: str
    fields: Mapping[str, object]
    origin: Path

    @property
    def where(self) -> str:
        return f"kubeconfig {self.origin}"


@attrs.frozen
class _Merged:
    files: tuple[Path, ...]
    clusters: Mapping[str, _Entry]
    users: Mapping[str, _Entry]
    contexts: Mapping[str, _Entry]
    current_context: str | None

    @property
    def where(self) -> str:
        return "kubeconfig " + os.pathsep.join(str(path) for path in self.files)


def _load_document(path: Path) -> Mapping[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"kubeconfig {path}: cannot read file: {exc.strerror}") from None
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError as exc:
        problem = " ".join(str(exc).split())  # ruamel's messages span lines; keep one
        raise ConfigError(f"kubeconfig {path}: not valid YAML: {problem}") from None
    if document is None:
        return {}  # an empty file is an empty config, as for kubectl
    if not isinstance(document, dict):
        raise ConfigError(f"kubeconfig {path}: top level must be a mapping (apiVersion, ...)")
    return document


def _entries(document: Mapping[str, object], path: Path, section: str, inner: str) -> list[_Entry]:
    items = document.get(section)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(f"kubeconfig {path}: {section} must be a list")
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"kubeconfig {path}: {section}[{index}] must be a mapping")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"kubeconfig {path}: {section}[{index}] has no name")
        fields = item.get(inner)
        if fields is None:
            fields = {}
        if not isinstance(fields, dict):
            raise ConfigError(
                f'kubeconfig {path}: {section}[{index}] ("{name}") {inner} must be a mapping'
            )
        entries.append(_Entry(name=name, fields=fields, origin=path))
    return entries


def _merge(paths: list[Path]) -> _Merged:
    clusters: dict[str, _Entry] = {}
    users: dict[str, _Entry] = {}
    contexts: dict[str, _Entry] = {}
    current_context: str | None = None
    for path in paths:
        document = _load_document(path)
        # kubectl's rule: the first file to define a name wins; later files never override it.
        for target, section, inner in (
            (clusters, "clusters", "cluster"),
            (users, "users", "user"),
            (contexts, "contexts", "context"),
        ):
            for entry in _entries(document, path, section, inner):
                target.setdefault(entry.name, entry)
        current = document.get("current-context")
        if current_context is None and isinstance(current, str) and current:
            current_context = current
    return _Merged(tuple(paths), clusters, users, contexts, current_context)


def _available(entries: Mapping[str, _Entry]) -> str:
    return ", ".join(entries) if entries else "none"


def _from_kubeconfig(paths: list[Path], context: str | None) -> ClusterEndpoint:
    merged = _merge(paths)
    context_name = context if context is not None else merged.current_context
    if not context_name:
        raise ConfigError(
            f"{merged.where}: no context given and current-context is not set "
            f"(available: {_available(merged.contexts)})"
        )
    context_entry = merged.contexts.get(context_name)
    if context_entry is None:
        raise ConfigError(
            f'{merged.where}: context "{context_name}" not found '
            f"(available: {_available(merged.contexts)})"
        )
    what = f'context "{context_name}"'
    cluster_name = _string(context_entry, "cluster", what)
    if not cluster_name:
        raise ConfigError(f"{context_entry.where}: {what} names no cluster")
    cluster_entry = merged.clusters.get(cluster_name)
    if cluster_entry is None:
        raise ConfigError(
            f'{context_entry.where}: {what} uses cluster "{cluster_name}", which is not defined '
            f"(available: {_available(merged.clusters)})"
        )
    user_name = _string(context_entry, "user", what)
    user_entry: _Entry | None = None
    if user_name:
        user_entry = merged.users.get(user_name)
        if user_entry is None:
            raise ConfigError(
                f'{context_entry.where}: {what} uses user "{user_name}", which is not defined '
                f"(available: {_available(merged.users)})"
            )

    cluster = _cluster(cluster_entry)
    cert_pem, key_pem, credentials = (
        _user(user_entry, cluster) if user_entry is not None else (None, None, Credentials())
    )
    return ClusterEndpoint(
        server=cluster.server,
        ca_pem=cluster.ca_pem,
        insecure_skip_tls_verify=cluster.insecure_skip_tls_verify,
        client_cert_pem=cert_pem,
        client_key_pem=key_pem,
        tls_server_name=cluster.tls_server_name,
        credentials=credentials,
        source=f"{merged.where} (context {context_name})",
    )


# --------------------------------------------------------------------------------------------
# Field helpers: every message names the file, the entry and the field.


def _string(entry: _Entry, key: str, what: str) -> str | None:
    """A string field; absent, null and "" all mean unset, as Go's zero value does."""
    value = entry.fields.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{entry.where}: {what} {key} must be a string")
    return value


def _bool(entry: _Entry, key: str, what: str) -> bool:
    value = entry.fields.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(f"{entry.where}: {what} {key} must be true or false")
    return value


def _resolve(entry: _Entry, raw: str) -> Path:
    # Relative paths are relative to the file that wrote them, not to the working directory.
    path = Path(raw)
    return path if path.is_absolute() else entry.origin.parent / path


def _require_pem(data: bytes, described: str) -> bytes:
    # Catches the usual mistakes (a path in a *-data field, data base64-encoded twice) here, with
    # the field named, instead of as an opaque TLS error from the HTTP engine.
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{described} is not PEM (no -----BEGIN line)")
    return data


def _pem(entry: _Entry, data_key: str, file_key: str, what: str) -> bytes | None:
    """PEM bytes from ``<x>-data`` (base64) or the ``<x>`` file; data wins, as in client-go."""
    data = _string(entry, data_key, what)
    if data is not None:
        try:
            decoded = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{entry.where}: {what} {data_key} is not valid base64") from None
        return _require_pem(decoded, f"{entry.where}: {what} {data_key}")
    raw_path = _string(entry, file_key, what)
    if raw_path is None:
        return None
    path = _resolve(entry, raw_path)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{entry.where}: {what} {file_key} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(
            f"{entry.where}: {what} {file_key} {path} cannot be read: {exc.strerror}"
        ) from None
    return _require_pem(content, f"{entry.where}: {what} {file_key} {path}")


@attrs.frozen
class _Cluster:
    server: str
    ca_pem: bytes | None = attrs.field(repr=_pem_repr)
    insecure_skip_tls_verify: bool
    tls_server_name: str | None
    #: The ``client.authentication.k8s.io/exec`` extension, passed on to exec plugins.
    exec_extension: object


def _cluster(entry: _Entry) -> _Cluster:
    what = f'cluster "{entry.name}"'
    server = _string(entry, "server", what)
    if server is None:
        raise ConfigError(f"{entry.where}: {what} has no server")
    if not server.startswith(("https://", "http://")):
        raise ConfigError(
            f'{entry.where}: {what} server "{server}" must start with https:// or http://'
        )
    if _string(entry, "proxy-url", what) is not None:
        # Ignoring it would send the benchmark traffic past the proxy the user relies on.
        raise ConfigError(
            f"{entry.where}: {what} sets proxy-url, which kperf does not support "
            "(it connects to the server directly)"
        )
    ca_pem = _pem(entry, "certificate-authority-data", "certificate-authority", what)
    insecure = _bool(entry, "insecure-skip-tls-verify", what)
    if insecure and ca_pem is not None:
        # client-go refuses this combination too: the intent (verify or not?) is unclear.
        raise ConfigError(
            f"{entry.where}: {what} sets both insecure-skip-tls-verify and a certificate "
            "authority; use one or the other"
        )
    return _Cluster(
        server=server.rstrip("/"),
        ca_pem=ca_pem,
        insecure_skip_tls_verify=insecure,
        tls_server_name=_string(entry, "tls-server-name", what),
        exec_extension=_exec_extension(entry),
    )


def _exec_extension(entry: _Entry) -> object:
    extensions = entry.fields.get("extensions")
    if not isinstance(extensions, list):
        return None
    for item in extensions:
        if isinstance(item, dict) and item.get("name") == _EXEC_CLUSTER_EXTENSION:
            return item.get("extension")
    return None


def _user(entry: _Entry, cluster: _Cluster) -> tuple[bytes | None, bytes | None, Credentials]:
    """Client certificate, key and credentials of a kubeconfig user."""
    what = f'user "{entry.name}"'
    auth_provider = entry.fields.get("auth-provider")
    if auth_provider is not None:
        provider = auth_provider.get("name") if isinstance(auth_provider, dict) else None
        named = f' "{provider}"' if isinstance(provider, str) and provider else ""
        raise ConfigError(
            f"{entry.where}: {what} uses auth-provider{named}, which kperf does not support "
            "(allowed: token, tokenFile, client certificate, username/password, exec)"
        )
    impersonation = [key for key in _IMPERSONATION_FIELDS if entry.fields.get(key)]
    if impersonation:
        # Ignoring it would run the benchmark as a different identity than the user asked for.
        raise ConfigError(
            f"{entry.where}: {what} sets {', '.join(impersonation)} (impersonation), which "
            "kperf does not support"
        )

    token = _string(entry, "token", what)
    token_file = _string(entry, "tokenFile", what)
    username = _string(entry, "username", what)
    password = _string(entry, "password", what)
    exec_config = entry.fields.get("exec")
    methods = [
        name
        for name, present in (
            ("token", token is not None or token_file is not None),
            ("username/password", username is not None or password is not None),
            ("exec", exec_config is not None),
        )
        if present
    ]
    if len(methods) > 1:
        raise ConfigError(
            f"{entry.where}: {what} sets more than one authentication method "
            f"({', '.join(methods)}); keep one"
        )

    cert_pem = _pem(entry, "client-certificate-data", "client-certificate", what)
    key_pem = _pem(entry, "client-key-data", "client-key", what)
    if (cert_pem is None) != (key_pem is None):
        raise ConfigError(
            f"{entry.where}: {what} sets a client certificate without a key or a key without a "
            "certificate (need both)"
        )

    credentials: Credentials
    if token_file is not None:
        # With both token and tokenFile, client-go starts with the token and refreshes from
        # the file; the file then need not exist yet.
        credentials = TokenFileCredentials(
            _resolve(entry, token_file), f"{entry.where}: {what}", initial_token=token
        )
    elif token is not None:
        credentials = StaticTokenCredentials(token)
    elif username is not None or password is not None:
        credentials = BasicAuthCredentials(username or "", password or "")
    elif exec_config is not None:
        plugin = _exec_plugin(entry, what, exec_config, cluster)
        # Run it now: a broken plugin should stop the run before it starts, and an exec-provided
        # client certificate has to be known up front because TLS material is fixed for the run.
        first = plugin.run()
        if first.client_cert_pem is not None:
            if cert_pem is not None:
                raise ConfigError(
                    f"{entry.where}: {what} has a client certificate and its exec plugin "
                    f'"{plugin.command}" returned another; keep one'
                )
            cert_pem = _require_pem(
                first.client_cert_pem,
                f'{entry.where}: {what} exec plugin "{plugin.command}" clientCertificateData',
            )
            key_pem = _require_pem(
                first.client_key_pem or b"",
                f'{entry.where}: {what} exec plugin "{plugin.command}" clientKeyData',
            )
        credentials = ExecCredentials(plugin, first)
    else:
        credentials = Credentials()
    return cert_pem, key_pem, credentials


def _exec_plugin(entry: _Entry, what: str, config: object, cluster: _Cluster) -> _ExecPlugin:
    where = f"{entry.where}: {what}"
    if not isinstance(config, dict):
        raise ConfigError(f"{where} exec must be a mapping (command, args, env, apiVersion)")
    command = config.get("command")
    if not isinstance(command, str) or not command:
        raise ConfigError(f"{where} exec has no command")
    if os.sep in command and not Path(command).is_absolute():
        # client-go resolves a command with a path separator against the kubeconfig's
        # directory; a bare name is looked up on PATH.
        command = str(_resolve(entry, command))
    api_version = config.get("apiVersion")
    if api_version not in _EXEC_API_VERSIONS:
        raise ConfigError(
            f"{where} exec apiVersion {api_version!r} is not supported "
            f"(allowed: {', '.join(_EXEC_API_VERSIONS)})"
        )
    args = config.get("args") or []
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ConfigError(f"{where} exec args must be a list of strings")
    env_items = config.get("env") or []
    if not isinstance(env_items, list):
        raise ConfigError(f"{where} exec env must be a list of {{name, value}}")
    env: list[tuple[str, str]] = []
    for item in env_items:
        name = item.get("name") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise ConfigError(f"{where} exec env entries must be {{name, value}} strings")
        env.append((name, value))
    mode = config.get("interactiveMode") or "IfAvailable"
    if mode not in _EXEC_INTERACTIVE_MODES:
        raise ConfigError(
            f"{where} exec interactiveMode {mode!r} is not valid "
            f"(allowed: {', '.join(_EXEC_INTERACTIVE_MODES)})"
        )
    if mode == "Always":
        raise ConfigError(
            f"{where} exec interactiveMode is Always, but kperf runs plugins without a terminal "
            "(allowed: Never, IfAvailable)"
        )
    cluster_info: dict[str, object] | None = None
    if config.get("provideClusterInfo") is True:
        cluster_info = {"server": cluster.server}
        if cluster.tls_server_name is not None:
            cluster_info["tls-server-name"] = cluster.tls_server_name
        if cluster.insecure_skip_tls_verify:
            cluster_info["insecure-skip-tls-verify"] = True
        if cluster.ca_pem is not None:
            cluster_info["certificate-authority-data"] = base64.b64encode(cluster.ca_pem).decode()
        if cluster.exec_extension is not None:
            cluster_info["config"] = cluster.exec_extension
    return _ExecPlugin(
        command=command,
        args=tuple(args),
        env=tuple(env),
        api_version=api_version,
        cluster_info=cluster_info,
        where=where,
    )
