"""Kubeconfig or in-cluster config, read once per process, and what each consumer needs from it.

One reader for every part of kperf (issue 11): the ``kubernetes`` package's own loader
(``KubeConfigMerger`` and ``KubeConfigLoader``, or ``InClusterConfigLoader`` in a pod) reads and
merges the files, resolves relative paths and ``*-data`` fields and fills one
``kubernetes.client.Configuration``. From that one :class:`ClusterAccess` come the engine's
:class:`ClusterEndpoint` (pycurl wants PEM bytes and an ``Authorization`` header), the setup
client's ``ApiClient`` (:mod:`kperf_core.cluster_api`) and Helm's kubeconfig (:meth:`ClusterAccess.
kubeconfig_for_tools`). Exec credential plugins therefore run once per process, not once per
consumer.

kperf keeps small adapters where that loader does not serve, each saying why: checks for what
client-go refuses but the Python loader silently accepts or ignores, one-line messages that name
file and field, the credentials of :mod:`kperf_core.kube_auth` (exec plugins run there, token
files re-read as client-go re-reads them), and ``*-data`` fields handed over as in-memory files
(the loader's temp files outlive a process killed hard). The ``kubernetes`` package takes about
a second to import, so it is imported only when a configuration is loaded, never by
``kperf --help``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from kperf_core.errors import ConfigError
from kperf_core.kube_auth import (
    Credentials,
    ExecCredentials,
    ExecPlugin,
    StaticCredentials,
    TokenFileCredentials,
)

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "SERVICE_ACCOUNT_DIR_ENV",
    "ClusterAccess",
    "ClusterEndpoint",
    "Credentials",
    "ToolKubeconfig",
    "default_kubeconfig_path",
    "in_memory_file",
    "kubeconfig_document",
    "load_cluster",
    "load_endpoint",
    "service_account_dir",
]

#: Where a pod's service-account token and CA are mounted. Read at call time, so tests (and odd
#: runtimes) can point it elsewhere.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_DIR_ENV = "KPERF_SERVICE_ACCOUNT_DIR"

_EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
_EXEC_INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
# Key of the cluster extension whose value is handed to exec plugins that ask for cluster info.
_EXEC_CLUSTER_EXTENSION = "client.authentication.k8s.io/exec"
_IMPERSONATION_FIELDS = ("as", "as-uid", "as-groups", "as-user-extra")


def _pem_repr(value: bytes | None) -> str:
    # Whole certificates in a repr drown the interesting fields.
    return "None" if value is None else f"<{len(value)} bytes PEM>"


def _secret_repr(value: bytes | None) -> str:
    # A private key must never end up in a log line or a traceback.
    return "None" if value is None else "<redacted>"


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


@attrs.frozen
class ToolKubeconfig:
    """What a tool with a Kubernetes client of its own (Helm) is handed.

    Either the user's kubeconfig file and context, when that one file alone holds the
    credentials, or (``path`` None) the resolved configuration as kubeconfig YAML: after an exec
    plugin or in-cluster, and for merged $KUBECONFIG files, so the tool neither runs the plugin
    again nor applies merge rules of its own. :func:`kperf_core.helm.helm_config` hands Helm
    ``content`` as an :func:`in_memory_file`, which no killed process can leave behind.
    """

    path: Path | None
    content: str | None = attrs.field(repr=False)
    context: str | None


#: Cluster, user and context name in kubeconfigs kperf writes.
KPERF_KUBECONFIG_NAME = "kperf"


@attrs.frozen
class ClusterAccess:
    """One loaded configuration and everything derived from it."""

    endpoint: ClusterEndpoint
    #: The ``kubernetes.client.Configuration`` the loader filled; its Authorization header comes
    #: from ``endpoint.credentials``, so the setup client and the engine send the same identity.
    configuration: Any = attrs.field(repr=False)
    #: The kubeconfig files read (merge order); empty in-cluster.
    files: tuple[Path, ...]
    context: str | None
    #: True when the credentials are not in the files as written (exec plugin, in-cluster).
    credentials_resolved: bool

    def kubeconfig_for_tools(self) -> ToolKubeconfig:
        """What Helm is handed: see :class:`ToolKubeconfig`."""
        if len(self.files) == 1 and not self.credentials_resolved:
            return ToolKubeconfig(path=self.files[0], content=None, context=self.context)
        document = kubeconfig_document(self.endpoint)
        return ToolKubeconfig(
            path=None, content=json.dumps(document), context=KPERF_KUBECONFIG_NAME
        )


def kubeconfig_document(endpoint: ClusterEndpoint, *, token: str | None = None) -> dict[str, Any]:
    """A self-contained kubeconfig (``*-data`` inline, one context) reaching ``endpoint``.

    It authenticates with ``token`` when given (another identity, e.g. a ServiceAccount's), else
    as the endpoint does now: its client certificate and current Authorization header.
    """
    cluster: dict[str, Any] = {"server": endpoint.server}
    if endpoint.ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(endpoint.ca_pem).decode()
    if endpoint.insecure_skip_tls_verify:
        cluster["insecure-skip-tls-verify"] = True
    if endpoint.tls_server_name is not None:
        cluster["tls-server-name"] = endpoint.tls_server_name
    user: dict[str, Any] = {} if token is None else {"token": token}
    if token is None:
        if endpoint.client_cert_pem is not None and endpoint.client_key_pem is not None:
            user["client-certificate-data"] = base64.b64encode(endpoint.client_cert_pem).decode()
            user["client-key-data"] = base64.b64encode(endpoint.client_key_pem).decode()
        scheme, _, value = (endpoint.credentials.authorization_header() or "").partition(" ")
        if scheme.lower() == "bearer":
            user["token"] = value
        elif scheme.lower() == "basic":
            username, _, password = base64.b64decode(value).decode().partition(":")
            user.update(username=username, password=password)
    name = KPERF_KUBECONFIG_NAME
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


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


def _sources(kubeconfig: str | os.PathLike[str] | None, context: str | None) -> list[Path] | None:
    """The kubeconfig files to read, or None for the in-cluster service account.

    client-go's rule for a program that may run in a pod (the ``kubernetes`` package tries
    ~/.kube/config before in-cluster, which would let a stray home file win inside a pod).
    """
    if kubeconfig is not None:
        path = Path(kubeconfig)
        if not path.is_file():
            raise ConfigError(f"kubeconfig {path}: file does not exist")
        return [path]

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
        return existing

    in_cluster_problem = _in_cluster_problem()
    if in_cluster_problem is None:
        if context is not None:
            raise ConfigError(
                f'context "{context}" given, but no kubeconfig was found and the in-cluster '
                "service account config has no contexts"
            )
        return None

    home = _home_kubeconfig()
    if home is not None and home.is_file():
        return [home]
    home_tried = f"{home} (does not exist)" if home is not None else "~/.kube/config (no home)"
    raise ConfigError(
        "no Kubernetes configuration found (tried: $KUBECONFIG (not set), in-cluster service "
        f"account ({in_cluster_problem}), {home_tried})"
    )


# --------------------------------------------------------------------------------------------
# Loading, once per process

# Like client-go's process-wide exec credential cache: a plugin may be slow, rate limited or
# prompt, and the engine, the setup client and Helm must all act as the same identity. Keyed by
# the files' identity and content stamp, so an edited kubeconfig is read again.
_loaded: dict[tuple[object, ...], ClusterAccess] = {}
_loading = threading.Lock()


def _cache_key(paths: list[Path] | None, context: str | None) -> tuple[object, ...]:
    if paths is None:
        env = tuple(
            os.environ.get(n) for n in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
        )
        return ("in-cluster", str(service_account_dir()), env)
    stamps = []
    for path in paths:
        stat = path.stat()
        stamps.append((str(path.resolve()), stat.st_mtime_ns, stat.st_size))
    return (tuple(stamps), context)


def load_cluster(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> ClusterAccess:
    """Load the configuration once per process and derive what every consumer needs.

    An explicit ``kubeconfig`` is used alone. Otherwise: the files in ``$KUBECONFIG`` (merged as
    kubectl merges them), else the in-cluster service account, else ``~/.kube/config``.
    ``context`` defaults to the kubeconfig's ``current-context``.

    Raises :class:`ConfigError` for missing or invalid configuration and :class:`ClusterError`
    when an exec credential plugin fails.
    """
    paths = _sources(kubeconfig, context)
    key = _cache_key(paths, context)
    with _loading:  # held while loading: a second caller waits for the one plugin run
        access = _loaded.get(key)
        if access is None:
            access = _from_in_cluster() if paths is None else _from_kubeconfig(paths, context)
            _loaded[key] = access
    return access


def load_endpoint(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> ClusterEndpoint:
    """The engine's part of :func:`load_cluster`."""
    return load_cluster(kubeconfig, context).endpoint


def _send_credentials(configuration: Any, credentials: Credentials) -> None:
    """Make the ``kubernetes`` client send ``credentials``' header, refreshed as the engine's is.

    The client asks ``refresh_api_key_hook`` before every request; the loader's own hook would
    run an expired exec plugin a second time and never re-read a kubeconfig token file.
    """

    def refresh(config: Any) -> None:
        header = credentials.authorization_header()
        if header is None:
            config.api_key.pop("BearerToken", None)
        else:
            config.api_key["BearerToken"] = header

    configuration.refresh_api_key_hook = refresh
    refresh(configuration)


def _from_in_cluster() -> ClusterAccess:
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    directory = service_account_dir()
    ca_path = directory / "ca.crt"
    try:
        ca_pem = ca_path.read_bytes()
    except OSError:
        raise ConfigError(
            f"in-cluster config: CA file {ca_path} does not exist or cannot be read"
        ) from None
    credentials = TokenFileCredentials(directory / "token", "in-cluster config")
    configuration = client.Configuration()
    try:
        # kperf's TokenFileCredentials re-reads the token, not the loader: the loader keeps the
        # file's trailing newline in the header and fails the run on a file caught mid-rotation.
        InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(directory / "token"),
            cert_filename=str(ca_path),
            try_refresh_token=False,
        ).load_and_set(configuration)
    except ConfigException as exc:
        raise ConfigError(f"in-cluster config: {exc}") from None
    _send_credentials(configuration, credentials)
    endpoint = ClusterEndpoint(
        server=configuration.host,
        ca_pem=_require_pem(ca_pem, f"in-cluster config: CA file {ca_path}"),
        insecure_skip_tls_verify=False,
        client_cert_pem=None,
        client_key_pem=None,
        tls_server_name=None,
        credentials=credentials,
        source="in-cluster",
    )
    return ClusterAccess(endpoint, configuration, (), None, credentials_resolved=True)


def _from_kubeconfig(paths: list[Path], context: str | None) -> ClusterAccess:
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigLoader

    merged = _MergedKubeconfig.read(paths)
    context_name, cluster, user = merged.select(context)
    _check_cluster(cluster)
    if user is not None:
        _check_user(user)
        _anchor_user_paths(user)
    credentials, plugin_ran = _user_credentials(user, cluster)
    _pem_data_in_memory(cluster, "cluster", ("certificate-authority",))
    if user is not None:
        _pem_data_in_memory(user, "user", ("client-certificate", "client-key"))
    configuration = client.Configuration()
    try:
        KubeConfigLoader(  # type: ignore[no-untyped-call]
            config_dict=merged.root, active_context=context_name, config_base_path=None
        ).load_and_set(configuration)
    except (ConfigException, OSError) as exc:
        raise ConfigError(f"{merged.where}: {_one_line(exc)}") from None
    if credentials is None:
        header = configuration.api_key.get("BearerToken")
        credentials = StaticCredentials(header) if header else Credentials()
    _send_credentials(configuration, credentials)
    client_cert, client_key = _client_pair(configuration, user)
    endpoint = ClusterEndpoint(
        server=configuration.host,
        ca_pem=_ca_pem(configuration, cluster),
        insecure_skip_tls_verify=not configuration.verify_ssl,
        client_cert_pem=client_cert,
        client_key_pem=client_key,
        tls_server_name=configuration.tls_server_name,
        credentials=credentials,
        source=f"{merged.where} (context {context_name})",
    )
    return ClusterAccess(endpoint, configuration, tuple(paths), context_name, plugin_ran)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------------------------
# Adapters around the kubernetes loader


@attrs.frozen
class _Named:
    """A cluster, user or context entry of the merged configuration."""

    name: str
    #: The ``kubernetes`` loader's ConfigNode of ``{name, <kind>: fields}``; replacing its value
    #: is how resolved exec credentials reach the loader.
    node: Any
    fields: Mapping[str, Any]
    what: str

    @property
    def where(self) -> str:
        return f"kubeconfig {self.node.path}: {self.what}"

    @property
    def directory(self) -> Path:
        # Relative paths are relative to the file that wrote them, as for client-go.
        return Path(self.node.path).absolute().parent


@attrs.frozen
class _MergedKubeconfig:
    """The files merged by the loader's ``KubeConfigMerger``, plus the lookups kperf needs to
    name what is missing (the loader only says ``Expected object with name x``)."""

    files: tuple[Path, ...]
    #: The merger's ConfigNode, handed to ``KubeConfigLoader`` as is.
    root: Any
    #: kubectl's rule: the first file that sets it wins (the Python merger lets the last win).
    current_context: str | None

    @property
    def where(self) -> str:
        return "kubeconfig " + os.pathsep.join(str(path) for path in self.files)

    @classmethod
    def read(cls, paths: list[Path]) -> _MergedKubeconfig:
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigMerger
        from yaml import YAMLError  # type: ignore[import-untyped]

        # Files are added one by one, so a problem names its file.
        merger = KubeConfigMerger("")  # type: ignore[no-untyped-call]
        current: str | None = None
        for path in paths:
            try:
                if not path.read_text(encoding="utf-8").strip():
                    continue  # an empty file is an empty config, as for kubectl
                merger.load_config(str(path))  # type: ignore[no-untyped-call]
            except OSError as exc:
                raise ConfigError(f"kubeconfig {path}: cannot read file: {exc.strerror}") from None
            except YAMLError as exc:
                raise ConfigError(f"kubeconfig {path}: not valid YAML: {_one_line(exc)}") from None
            except (ConfigException, AttributeError, TypeError, KeyError):
                raise ConfigError(
                    f"kubeconfig {path}: not a kubeconfig (expected a mapping with clusters, "
                    "users and contexts: lists of named entries)"
                ) from None
            value = merger.config_files[str(path)].get("current-context")
            if current is None and isinstance(value, str) and value:
                current = value
        return cls(tuple(paths), merger.config, current)

    def _entries(self, section: str, kind: str) -> dict[str, _Named]:
        entries: dict[str, _Named] = {}
        for node in [] if self.root is None else self.root.value.get(section) or []:
            value = node.value
            name = value.get("name") if isinstance(value, dict) else None
            if not isinstance(name, str) or not name:
                raise ConfigError(f"kubeconfig {node.path}: every entry of {section} needs a name")
            fields = value.get(kind) or {}
            if not isinstance(fields, dict):
                raise ConfigError(f'kubeconfig {node.path}: {kind} "{name}" must be a mapping')
            entries[name] = _Named(name, node, fields, f'{kind} "{name}"')
        return entries

    def select(self, context: str | None) -> tuple[str, _Named, _Named | None]:
        """The context's name, cluster and user (None: anonymous)."""
        contexts = self._entries("contexts", "context")
        available = ", ".join(contexts) or "none"
        name = context if context is not None else self.current_context
        if not name:
            raise ConfigError(
                f"{self.where}: no context given and current-context is not set "
                f"(available: {available})"
            )
        chosen = contexts.get(name)
        if chosen is None:
            raise ConfigError(f'{self.where}: context "{name}" not found (available: {available})')
        cluster = self._referenced(chosen, "cluster", "clusters")
        if cluster is None:
            raise ConfigError(f"{chosen.where} names no cluster")
        return name, cluster, self._referenced(chosen, "user", "users")

    def _referenced(self, context: _Named, kind: str, section: str) -> _Named | None:
        name = context.fields.get(kind)
        if not name:
            return None
        entries = self._entries(section, kind)
        if name not in entries:
            raise ConfigError(
                f'{context.where} uses {kind} "{name}", which is not defined '
                f"(available: {', '.join(entries) or 'none'})"
            )
        return entries[name]


def _check_material(entry: _Named, keys: tuple[str, ...]) -> None:
    """``<key>-data`` is base64 and a ``<key>`` file exists: the loader would fail with a bare
    binascii error or ``File does not exist``, naming no field."""
    for key in keys:
        data = entry.fields.get(f"{key}-data")
        if data:
            try:
                base64.b64decode("".join(str(data).split()), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"{entry.where} {key}-data is not valid base64") from None
        elif entry.fields.get(key) and not _field_path(entry, key).is_file():
            raise ConfigError(f"{_described(entry, key)} does not exist")


def _check_cluster(cluster: _Named) -> None:
    """What client-go refuses, or kperf cannot honour, and the Python loader accepts silently."""
    server = cluster.fields.get("server")
    if not server:
        raise ConfigError(f"{cluster.where} has no server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ConfigError(f'{cluster.where} server "{server}" must start with https:// or http://')
    if cluster.fields.get("proxy-url"):
        # Ignoring it would send the benchmark traffic past the proxy the user relies on.
        raise ConfigError(
            f"{cluster.where} sets proxy-url, which kperf does not support "
            "(it connects to the server directly)"
        )
    has_ca = bool(
        cluster.fields.get("certificate-authority-data")
        or cluster.fields.get("certificate-authority")
    )
    if cluster.fields.get("insecure-skip-tls-verify") is True and has_ca:
        # client-go refuses this combination too: the intent (verify or not?) is unclear.
        raise ConfigError(
            f"{cluster.where} sets both insecure-skip-tls-verify and a certificate "
            "authority; use one or the other"
        )
    _check_material(cluster, ("certificate-authority",))


def _check_user(user: _Named) -> None:
    """What client-go refuses, or kperf does not support, and the Python loader accepts."""
    auth_provider = user.fields.get("auth-provider")
    if auth_provider is not None:
        provider = auth_provider.get("name") if isinstance(auth_provider, dict) else None
        named = f' "{provider}"' if isinstance(provider, str) and provider else ""
        raise ConfigError(
            f"{user.where} uses auth-provider{named}, which kperf does not support "
            "(allowed: token, tokenFile, client certificate, username/password, exec)"
        )
    impersonation = [key for key in _IMPERSONATION_FIELDS if user.fields.get(key)]
    if impersonation:
        # The Python loader ignores these: the benchmark would run as another identity.
        raise ConfigError(
            f"{user.where} sets {', '.join(impersonation)} (impersonation), which "
            "kperf does not support"
        )
    methods = [
        name
        for name, keys in (
            ("token", ("token", "tokenFile")),
            ("username/password", ("username", "password")),
            ("exec", ("exec",)),
        )
        if any(user.fields.get(key) for key in keys)
    ]
    if len(methods) > 1:
        # The Python loader would pick one silently; client-go refuses.
        raise ConfigError(
            f"{user.where} sets more than one authentication method "
            f"({', '.join(methods)}); keep one"
        )
    _check_material(user, ("client-certificate", "client-key"))


def _anchor_user_paths(user: _Named) -> None:
    """Make the user's file paths absolute, relative to the file that defines the user: the
    loader resolves them against the cluster's file, wrong when $KUBECONFIG merges the two from
    different directories."""
    fields = dict(user.fields)
    for key in ("client-certificate", "client-key", "tokenFile"):
        if fields.get(key):
            fields[key] = str(_field_path(user, key))
    user.node.value = {**user.node.value, "user": fields}


# Content → the path of the in-memory file holding it, open for the process's lifetime (the
# loaded configurations that name it are cached as long).
_memory_files: dict[bytes, str] = {}
_memory_files_lock = threading.Lock()


def in_memory_file(content: bytes) -> str | None:
    """A path naming an in-memory file with ``content`` for the rest of the process's life, or
    None where the OS has none (then the caller writes a temp file, as before).

    For what must be handed over as a path: urllib3 and ssl take a client certificate only as
    one, Helm a kubeconfig. The ``kubernetes`` loader writes each ``*-data`` field, and
    helm-python-sdk inline kubeconfig content, to a file in $TMPDIR that only a clean exit
    removes: every kperf process killed hard (SIGKILL, SIGTERM's default action, the OOM killer)
    left its CA, client certificate and key there. A memfd's ``/proc/self/fd/N`` is a path too,
    and the file ends with the process however it ends; forked engine workers inherit it.
    """
    with _memory_files_lock:
        path = _memory_files.get(content)
        if path is not None or not hasattr(os, "memfd_create"):
            return path
        try:
            fd = os.memfd_create("kperf", os.MFD_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(os.dup(fd), "wb") as file:  # the dup is closed; ``fd`` stays open
            file.write(content)
        path = f"/proc/self/fd/{fd}"
        if not os.path.isfile(path):  # no /proc mounted
            os.close(fd)
            return None
        _memory_files[content] = path
        return path


def _pem_data_in_memory(entry: _Named, kind: str, keys: tuple[str, ...]) -> None:
    """Hand the loader each ``<key>-data`` of the entry as a ``<key>`` path to an in-memory file
    (:func:`in_memory_file`), so it writes no temp file. ``<key>-data`` wins over ``<key>``, as in
    the loader; an empty one is left to the loader (it then reads neither)."""
    fields = dict(entry.node.value.get(kind) or {})  # as resolved so far (exec, anchored paths)
    for key in keys:
        data = fields.get(f"{key}-data")
        if not data:
            continue
        # already checked to be base64 (_check_material), or encoded by kperf (exec plugins)
        path = in_memory_file(base64.b64decode("".join(str(data).split())))
        if path is not None:
            del fields[f"{key}-data"]
            fields[key] = path
    entry.node.value = {**entry.node.value, kind: fields}


def _user_credentials(user: _Named | None, cluster: _Named) -> tuple[Credentials | None, bool]:
    """kperf's credentials where the loader's do not serve (None: take the loader's) and
    whether an exec plugin ran."""
    if user is None:
        return None, False
    token_file = user.fields.get("tokenFile")
    if token_file:
        # The loader reads a tokenFile once; client-go re-reads it, and so does kperf.
        # With both token and tokenFile, client-go starts with the token.
        token = user.fields.get("token")
        return TokenFileCredentials(
            user.directory / str(token_file), user.where, initial_token=token or None
        ), False
    exec_config = user.fields.get("exec")
    if exec_config is None:
        return None, False
    plugin = _exec_plugin(user, exec_config, cluster)
    # Run it now: a broken plugin should stop the run before it starts, and an exec-provided
    # client certificate has to be known up front because TLS material is fixed for the run.
    first = plugin.run()
    resolved = {key: value for key, value in user.fields.items() if key != "exec"}
    if first.token is not None:
        resolved["token"] = first.token
    if first.client_cert_pem is not None:
        if user.fields.get("client-certificate-data") or user.fields.get("client-certificate"):
            raise ConfigError(
                f"{user.where} has a client certificate and its exec plugin "
                f'"{plugin.command}" returned another; keep one'
            )
        described = f'{user.where} exec plugin "{plugin.command}"'
        for key, pem in (
            ("client-certificate-data", first.client_cert_pem),
            ("client-key-data", first.client_key_pem or b""),
        ):
            _require_pem(pem, f"{described} {key.removesuffix('-data')}Data")
            resolved[key] = base64.b64encode(pem).decode()
    # The loader reads this user (the merger's node, private to this load) from now on, so it
    # never runs the plugin itself: its runner would be a second run with other rules.
    user.node.value = {**user.node.value, "user": resolved}
    return ExecCredentials(plugin, first), True


def _require_pem(data: bytes, described: str) -> bytes:
    # Catches the usual mistakes (a path in a *-data field, data base64-encoded twice) here, with
    # the field named, instead of as an opaque TLS error from the HTTP engine.
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{described} is not PEM (no -----BEGIN line)")
    return data


def _read_pem(path: str | None, described: str) -> bytes | None:
    if not path:
        return None
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{described} {path} cannot be read: {exc.strerror}") from None
    return _require_pem(content, described)


def _described(entry: _Named, key: str) -> str:
    """The field a PEM came from, for messages: ``<key>-data`` wins over ``<key>``, as in the
    loader."""
    if entry.fields.get(f"{key}-data") or not entry.fields.get(key):
        return f"{entry.where} {key}-data"  # also what an exec plugin's answer becomes
    return f"{entry.where} {key} {_field_path(entry, key)}"


def _field_path(entry: _Named, key: str) -> Path:
    return entry.directory / str(entry.fields[key])


def _ca_pem(configuration: Any, cluster: _Named) -> bytes | None:
    if not configuration.ssl_ca_cert:
        return None
    return _read_pem(configuration.ssl_ca_cert, _described(cluster, "certificate-authority"))


def _client_pair(configuration: Any, user: _Named | None) -> tuple[bytes | None, bytes | None]:
    if user is None or (not configuration.cert_file and not configuration.key_file):
        return None, None
    if not configuration.cert_file or not configuration.key_file:
        raise ConfigError(
            f"{user.where} sets a client certificate without a key or a key without a "
            "certificate (need both)"
        )
    return (
        _read_pem(configuration.cert_file, _described(user, "client-certificate")),
        _read_pem(configuration.key_file, _described(user, "client-key")),
    )


def _exec_plugin(user: _Named, config: object, cluster: _Named) -> ExecPlugin:
    """kperf runs exec plugins itself: the loader's runner logs a failing plugin and goes on
    unauthenticated, has no timeout, hands the plugin kperf's stdin and drops a certificate that
    comes with a token."""
    where = user.where
    if not isinstance(config, dict):
        raise ConfigError(f"{where} exec must be a mapping (command, args, env, apiVersion)")
    command = config.get("command")
    if not isinstance(command, str) or not command:
        raise ConfigError(f"{where} exec has no command")
    if os.sep in command and not Path(command).is_absolute():
        # client-go resolves a command with a path separator against the kubeconfig's
        # directory; a bare name is looked up on PATH.
        command = str(user.directory / command)
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
    mode = config.get("interactiveMode")
    if not mode and api_version != "client.authentication.k8s.io/v1beta1":
        # client-go's rule (kubectl and Helm refuse the file): only v1beta1 has a default.
        raise ConfigError(
            f"{where} exec interactiveMode must be set for {api_version} "
            "(allowed: Never, IfAvailable)"
        )
    mode = mode or "IfAvailable"
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
    return ExecPlugin(
        command=command,
        args=tuple(args),
        env=tuple(env),
        api_version=api_version,
        cluster_info=_exec_cluster_info(cluster) if config.get("provideClusterInfo") else None,
        where=where,
    )


def _exec_cluster_info(cluster: _Named) -> dict[str, object]:
    """``spec.cluster`` for KUBERNETES_EXEC_INFO, as client-go fills it (CA inline)."""
    from kubernetes.config.kube_config import FileOrData

    fields = cluster.fields
    info: dict[str, object] = {"server": str(fields["server"]).rstrip("/")}
    if fields.get("tls-server-name"):
        info["tls-server-name"] = fields["tls-server-name"]
    if fields.get("insecure-skip-tls-verify") is True:
        info["insecure-skip-tls-verify"] = True
    try:
        ca_data = FileOrData(  # type: ignore[no-untyped-call]
            fields, "certificate-authority", file_base_path=str(cluster.directory)
        ).as_data()
    except OSError as exc:
        raise ConfigError(
            f"{_described(cluster, 'certificate-authority')} cannot be read: {exc.strerror}"
        ) from None
    if ca_data:
        info["certificate-authority-data"] = ca_data
    for item in fields.get("extensions") or []:
        if isinstance(item, dict) and item.get("name") == _EXEC_CLUSTER_EXTENSION:
            info["config"] = item.get("extension")
    return info


def is_loopback(server: str) -> bool:
    """Whether an API server URL points at this machine's loopback (the local control plane)."""
    host = urlsplit(server).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
