"""Kubeconfig / in-cluster resolution into a ClusterEndpoint, a kubernetes Configuration and a
kubeconfig for Helm, and the credentials' refresh: no cluster, no network."""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kperf_core import kube, kube_auth
from kperf_core.errors import ClusterError, ConfigError
from kperf_core.kube import ClusterEndpoint, default_kubeconfig_path, load_endpoint

CA_PEM = b"-----BEGIN CERTIFICATE-----\nY2E=\n-----END CERTIFICATE-----\n"
CERT_PEM = b"-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n"
KEY_PEM = b"-----BEGIN EC PRIVATE KEY-----\na2V5\n-----END EC PRIVATE KEY-----\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KUBECONFIG, no in-cluster env, an empty home: each test adds what it needs."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", tmp_path / "no-service-account")
    return home


def write_kubeconfig(
    path: Path,
    *,
    clusters: dict[str, dict[str, object]] | None = None,
    users: dict[str, dict[str, object]] | None = None,
    contexts: dict[str, dict[str, object]] | None = None,
    current: str | None = None,
) -> Path:
    document: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current is not None:
        document["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


def simple_kubeconfig(path: Path, user: dict[str, object], **cluster: object) -> Path:
    return write_kubeconfig(
        path,
        clusters={"c": {"server": "https://10.0.0.1:6443", **cluster}},
        users={"u": user},
        contexts={"ctx": {"cluster": "c", "user": "u"}},
        current="ctx",
    )


def config_error(kubeconfig: Path, context: str | None = None) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_endpoint(kubeconfig, context)
    return str(excinfo.value)


# --- where the configuration comes from -------------------------------------------------------


def test_explicit_path_is_used_alone_and_read_as_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: local\n"
        "  cluster:\n"
        "    server: https://127.0.0.1:6443/\n"
        f"    certificate-authority-data: {b64(CA_PEM)}\n"
        "users:\n"
        "- name: admin\n"
        "  user:\n"
        "    token: abc123\n"
        "contexts:\n"
        "- name: local\n"
        "  context: {cluster: local, user: admin, namespace: ignored}\n"
        "current-context: local\n"
    )
    other = simple_kubeconfig(tmp_path / "other", {"token": "other"})
    monkeypatch.setenv("KUBECONFIG", str(other))

    endpoint = load_endpoint(explicit)

    assert endpoint.server == "https://127.0.0.1:6443"  # trailing slash dropped
    assert endpoint.ca_pem == CA_PEM
    assert endpoint.insecure_skip_tls_verify is False
    assert endpoint.credentials.authorization_header() == "Bearer abc123"
    assert endpoint.source == f"kubeconfig {explicit} (context local)"


def test_explicit_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert config_error(missing) == f"kubeconfig {missing}: file does not exist"


def test_kubeconfig_env_merges_first_definition_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_kubeconfig(
        tmp_path / "a" / "config",
        clusters={"shared": {"server": "https://first:6443"}},
        users={"shared-user": {"token": "from-first"}},
        contexts={"only-first": {"cluster": "shared", "user": "shared-user"}},
    )  # no current-context here
    second = write_kubeconfig(
        tmp_path / "b" / "config",
        clusters={
            "shared": {"server": "https://second:6443"},
            "extra": {"server": "https://extra:6443"},
        },
        users={"shared-user": {"token": "from-second"}},
        contexts={"mixed": {"cluster": "extra", "user": "shared-user"}},
        current="mixed",
    )
    third = write_kubeconfig(tmp_path / "c" / "config", current="only-first")
    missing = tmp_path / "missing"
    monkeypatch.setenv("KUBECONFIG", f"{first}:{missing}:{second}:{third}")

    endpoint = load_endpoint()
    # current-context comes from the first file setting it (second), not the later third.
    assert endpoint.server == "https://extra:6443"
    # The user is defined in both files: the first file's definition wins.
    assert endpoint.credentials.authorization_header() == "Bearer from-first"
    assert endpoint.source == f"kubeconfig {first}:{second}:{third} (context mixed)"

    assert load_endpoint(context="only-first").server == "https://first:6443"
    assert default_kubeconfig_path() == first


def test_kubeconfig_env_naming_only_missing_files_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    simple_kubeconfig(clean_env / ".kube" / "config", {"token": "home"})
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/x:{tmp_path}/y")
    with pytest.raises(ConfigError) as excinfo:
        load_endpoint()
    assert str(excinfo.value) == (
        f"$KUBECONFIG names no existing file ({tmp_path}/x, {tmp_path}/y); fix or unset it "
        "to use the in-cluster service account or ~/.kube/config"
    )
    assert default_kubeconfig_path() is None


def test_home_kubeconfig_is_the_last_resort(clean_env: Path) -> None:
    home_config = simple_kubeconfig(clean_env / ".kube" / "config", {"token": "home"})
    endpoint = load_endpoint()
    assert endpoint.credentials.authorization_header() == "Bearer home"
    assert endpoint.source == f"kubeconfig {home_config} (context ctx)"
    assert default_kubeconfig_path() == home_config


def test_nothing_found_lists_every_place_tried(tmp_path: Path, clean_env: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_endpoint()
    assert str(excinfo.value) == (
        "no Kubernetes configuration found (tried: $KUBECONFIG (not set), in-cluster service "
        f"account (KUBERNETES_SERVICE_HOST not set), {clean_env}/.kube/config (does not exist))"
    )
    assert default_kubeconfig_path() is None


# --- in-cluster --------------------------------------------------------------------------------


@pytest.fixture
def service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("sa-token-1\n")
    (directory / "ca.crt").write_bytes(CA_PEM)
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", directory)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    return directory


def test_in_cluster_config_beats_home_kubeconfig(
    service_account: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    simple_kubeconfig(clean_env / ".kube" / "config", {"token": "home"})
    clock = [1000.0]
    monkeypatch.setattr(kube_auth, "_monotonic", lambda: clock[0])

    endpoint = load_endpoint()

    assert endpoint.server == "https://10.96.0.1:443"
    assert endpoint.ca_pem == CA_PEM
    assert endpoint.client_cert_pem is None
    assert endpoint.source == "in-cluster"
    assert endpoint.credentials.authorization_header() == "Bearer sa-token-1"
    assert default_kubeconfig_path() is None
    # The kubelet rotates the projected token; it is picked up once the last read is 60 s old.
    (service_account / "token").write_text("sa-token-2\n")
    clock[0] += 59
    assert endpoint.credentials.authorization_header() == "Bearer sa-token-1"
    clock[0] += 1
    assert endpoint.credentials.authorization_header() == "Bearer sa-token-2"


def test_in_cluster_brackets_ipv6_host(
    service_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert load_endpoint().server == "https://[fd00::1]:443"


def test_kubeconfig_env_beats_in_cluster(
    service_account: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = simple_kubeconfig(tmp_path / "config", {"token": "from-env"})
    monkeypatch.setenv("KUBECONFIG", str(config))
    endpoint = load_endpoint()
    assert endpoint.credentials.authorization_header() == "Bearer from-env"
    assert endpoint.source == f"kubeconfig {config} (context ctx)"


def test_in_cluster_needs_the_token_file(
    service_account: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (service_account / "token").unlink()
    with pytest.raises(ConfigError) as excinfo:
        load_endpoint()
    assert f"in-cluster service account ({service_account}/token does not exist)" in str(
        excinfo.value
    )


def test_in_cluster_needs_the_ca_file(service_account: Path) -> None:
    (service_account / "ca.crt").unlink()
    with pytest.raises(ConfigError) as excinfo:
        load_endpoint()
    assert str(excinfo.value) == (
        f"in-cluster config: CA file {service_account}/ca.crt does not exist or cannot be read"
    )


def test_in_cluster_refuses_a_context(service_account: Path) -> None:
    with pytest.raises(ConfigError, match='context "prod" given, but no kubeconfig was found'):
        load_endpoint(context="prod")


# --- contexts ----------------------------------------------------------------------------------


def two_contexts(path: Path, current: str | None = "one") -> Path:
    return write_kubeconfig(
        path,
        clusters={"c1": {"server": "https://one:6443"}, "c2": {"server": "http://two:8080"}},
        users={"u": {"token": "t"}},
        contexts={"one": {"cluster": "c1", "user": "u"}, "two": {"cluster": "c2"}},
        current=current,
    )


def test_context_argument_overrides_current_context(tmp_path: Path) -> None:
    config = two_contexts(tmp_path / "config")
    assert load_endpoint(config).server == "https://one:6443"
    endpoint = load_endpoint(config, context="two")
    assert endpoint.server == "http://two:8080"
    assert endpoint.source == f"kubeconfig {config} (context two)"
    # A context without a user is anonymous: no Authorization header, no client certificate.
    assert endpoint.credentials.authorization_header() is None
    assert endpoint.client_cert_pem is None


def test_unknown_context_lists_the_available_ones(tmp_path: Path) -> None:
    config = two_contexts(tmp_path / "config")
    assert config_error(config, "foo") == (
        f'kubeconfig {config}: context "foo" not found (available: one, two)'
    )


def test_missing_current_context(tmp_path: Path) -> None:
    config = two_contexts(tmp_path / "config", current=None)
    assert config_error(config) == (
        f"kubeconfig {config}: no context given and current-context is not set "
        "(available: one, two)"
    )


def test_context_naming_undefined_cluster_or_user(tmp_path: Path) -> None:
    config = write_kubeconfig(
        tmp_path / "config",
        clusters={"c": {"server": "https://x"}},
        contexts={"no-cluster": {"cluster": "gone"}, "no-user": {"cluster": "c", "user": "ghost"}},
    )
    assert config_error(config, "no-cluster") == (
        f'kubeconfig {config}: context "no-cluster" uses cluster "gone", which is not defined '
        "(available: c)"
    )
    assert config_error(config, "no-user") == (
        f'kubeconfig {config}: context "no-user" uses user "ghost", which is not defined '
        "(available: none)"
    )


# --- cluster fields ----------------------------------------------------------------------------


def test_relative_file_paths_resolve_against_the_kubeconfig_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "conf"
    (config_dir / "pki").mkdir(parents=True)
    (config_dir / "pki" / "ca.crt").write_bytes(CA_PEM)
    (config_dir / "pki" / "client.crt").write_bytes(CERT_PEM)
    (config_dir / "pki" / "client.key").write_bytes(KEY_PEM)
    (config_dir / "token").write_text("file-token\n")
    config = simple_kubeconfig(
        config_dir / "config",
        {
            "client-certificate": "pki/client.crt",
            "client-key": "pki/client.key",
            "tokenFile": "token",
        },
        **{"certificate-authority": "pki/ca.crt"},
    )
    monkeypatch.chdir(tmp_path)  # elsewhere: the working directory must not matter

    endpoint = load_endpoint(config)

    assert endpoint.ca_pem == CA_PEM
    assert endpoint.client_cert_pem == CERT_PEM
    assert endpoint.client_key_pem == KEY_PEM
    assert endpoint.credentials.authorization_header() == "Bearer file-token"
    assert "-----BEGIN" not in repr(endpoint)  # key and certificates are not dumped into logs


def test_data_fields_are_base64_and_win_over_files(tmp_path: Path) -> None:
    config = simple_kubeconfig(
        tmp_path / "config",
        {
            "client-certificate-data": b64(CERT_PEM),
            "client-key-data": b64(KEY_PEM),
            "client-certificate": "does-not-exist.crt",
        },
        **{"certificate-authority-data": b64(CA_PEM), "tls-server-name": "kubernetes"},
    )
    endpoint = load_endpoint(config)
    assert endpoint == ClusterEndpoint(
        server="https://10.0.0.1:6443",
        ca_pem=CA_PEM,
        insecure_skip_tls_verify=False,
        client_cert_pem=CERT_PEM,
        client_key_pem=KEY_PEM,
        tls_server_name="kubernetes",
        credentials=endpoint.credentials,
        source=f"kubeconfig {config} (context ctx)",
    )
    # Client certificate only: nothing goes into the Authorization header.
    assert endpoint.credentials.authorization_header() is None


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="in-memory files are Linux's")
def test_data_fields_are_not_written_to_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file in $TMPDIR is removed only at a clean exit: a process killed hard left its CA,
    # certificate and key there. Contents of this test's own, so no earlier load's file (the
    # kubernetes loader reuses one per content) could hide a new one.
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    unique = base64.b64encode(os.urandom(12))
    ca, cert, key = (
        pem.replace(b"\n", b"\n" + unique + b"\n", 1) for pem in (CA_PEM, CERT_PEM, KEY_PEM)
    )
    config = simple_kubeconfig(
        tmp_path / "config",
        {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
        **{"certificate-authority-data": b64(ca)},
    )
    configuration = kube.load_cluster(config).configuration
    assert list(tmpdir.iterdir()) == []
    # what the setup client (urllib3, ssl) opens by path
    paths = (configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file)
    assert [Path(path).read_bytes() for path in paths] == [ca, cert, key]


def test_insecure_skip_tls_verify(tmp_path: Path) -> None:
    config = simple_kubeconfig(tmp_path / "config", {}, **{"insecure-skip-tls-verify": True})
    endpoint = load_endpoint(config)
    assert endpoint.insecure_skip_tls_verify is True
    assert endpoint.ca_pem is None


@pytest.mark.parametrize(
    ("cluster", "user", "problem"),
    [
        (
            {"server": "10.0.0.1:6443"},
            {},
            'cluster "c" server "10.0.0.1:6443" must start with https:// or http://',
        ),
        ({"server": None}, {}, 'cluster "c" has no server'),
        (
            {"certificate-authority-data": "not base64!"},
            {},
            'cluster "c" certificate-authority-data is not valid base64',
        ),
        (
            # The usual slip: a path, not the file's content, base64-encoded.
            {"certificate-authority-data": b64(b"/etc/ca.crt")},
            {},
            'cluster "c" certificate-authority-data is not PEM (no -----BEGIN line)',
        ),
        (
            {"certificate-authority": "ca.crt"},
            {},
            'cluster "c" certificate-authority {dir}/ca.crt does not exist',
        ),
        (
            {"insecure-skip-tls-verify": True, "certificate-authority-data": b64(CA_PEM)},
            {},
            'cluster "c" sets both insecure-skip-tls-verify and a certificate authority; '
            "use one or the other",
        ),
        (
            {"proxy-url": "http://proxy:3128"},
            {},
            'cluster "c" sets proxy-url, which kperf does not support '
            "(it connects to the server directly)",
        ),
        (
            {},
            {"client-key": "/nowhere/client.key"},
            'user "u" client-key /nowhere/client.key does not exist',
        ),
        (
            {},
            {"client-certificate-data": b64(CERT_PEM)},
            'user "u" sets a client certificate without a key or a key without a certificate '
            "(need both)",
        ),
        (
            {},
            {"token": "t", "username": "admin", "password": "p"},
            'user "u" sets more than one authentication method (token, username/password); '
            "keep one",
        ),
        (
            {},
            {"as": "system:admin"},
            'user "u" sets as (impersonation), which kperf does not support',
        ),
    ],
)
def test_invalid_fields_are_named(
    tmp_path: Path, cluster: dict[str, object], user: dict[str, object], problem: str
) -> None:
    config = simple_kubeconfig(tmp_path / "config", user, **cluster)
    assert config_error(config) == f"kubeconfig {config}: " + problem.format(dir=tmp_path)


def test_invalid_yaml_is_reported_on_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("clusters: [\n  - name: x\n")
    message = config_error(config)
    assert message.startswith(f"kubeconfig {config}: not valid YAML: ")
    assert "\n" not in message


# --- user credentials --------------------------------------------------------------------------


def test_basic_auth_header(tmp_path: Path) -> None:
    config = simple_kubeconfig(tmp_path / "config", {"username": "admin", "password": "s3cret"})
    header = load_endpoint(config).credentials.authorization_header()
    assert header == "Basic YWRtaW46czNjcmV0"
    assert base64.b64decode(header.split()[1]) == b"admin:s3cret"


def test_token_file_is_reread_after_sixty_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [500.0]
    monkeypatch.setattr(kube_auth, "_monotonic", lambda: clock[0])
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    config = simple_kubeconfig(tmp_path / "config", {"tokenFile": str(token_file)})
    credentials = load_endpoint(config).credentials

    assert credentials.authorization_header() == "Bearer first"
    token_file.write_text("second\n")
    clock[0] += 59.9
    assert credentials.authorization_header() == "Bearer first"
    clock[0] += 0.1
    assert credentials.authorization_header() == "Bearer second"
    # A file missing mid-rotation keeps the last good token instead of failing the run.
    token_file.unlink()
    clock[0] += 60
    assert credentials.authorization_header() == "Bearer second"
    token_file.write_text("third\n")
    clock[0] += 60
    assert credentials.authorization_header() == "Bearer third"


def test_token_file_must_exist_at_start(tmp_path: Path) -> None:
    config = simple_kubeconfig(tmp_path / "config", {"tokenFile": "missing-token"})
    assert config_error(config) == (
        f'kubeconfig {config}: user "u": token file {tmp_path}/missing-token does not exist'
    )


def test_auth_provider_is_refused_by_name(tmp_path: Path) -> None:
    config = simple_kubeconfig(
        tmp_path / "config", {"auth-provider": {"name": "gcp", "config": {}}}
    )
    assert config_error(config) == (
        f'kubeconfig {config}: user "u" uses auth-provider "gcp", which kperf does not support '
        "(allowed: token, tokenFile, client certificate, username/password, exec)"
    )


# --- exec credential plugins -------------------------------------------------------------------

EXPIRY = "2030-01-01T00:00:00Z"
EXPIRY_EPOCH = datetime(2030, 1, 1, tzinfo=UTC).timestamp()


def exec_plugin(tmp_path: Path, body: str) -> Path:
    """An executable Python script; ``calls`` counts its runs in tmp_path/calls."""
    script = tmp_path / "bin" / "plugin"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"counter = {str(tmp_path / 'calls')!r}\n"
        "calls = int(open(counter).read()) + 1 if os.path.exists(counter) else 1\n"
        "open(counter, 'w').write(str(calls))\n" + body
    )
    script.chmod(0o755)
    return script


def calls(tmp_path: Path) -> int:
    counter = tmp_path / "calls"
    return int(counter.read_text()) if counter.exists() else 0


def exec_user(
    command: str, api_version: str = "client.authentication.k8s.io/v1", **extra: object
) -> dict[str, object]:
    return {
        "exec": {
            "apiVersion": api_version,
            "command": command,
            "interactiveMode": "Never",
            **extra,
        }
    }


def test_exec_token_is_cached_until_thirty_seconds_before_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exec_plugin(
        tmp_path,
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential',\n"
        "  'status': {'token': f\"tok-{calls}-{sys.argv[1]}-{os.environ['REGION']}\"\n"
        "             f\"-interactive={info['spec']['interactive']}\",\n"
        # Each fresh token lives an hour longer than the previous one.
        "             'expirationTimestamp': f'2030-01-01T{calls - 1:02d}:00:00Z'}}))\n",
    )
    clock = [EXPIRY_EPOCH - 3600]
    monkeypatch.setattr(kube_auth, "_wall_clock", lambda: clock[0])
    config = simple_kubeconfig(
        tmp_path / "config",
        # A command with a slash is relative to the kubeconfig's directory, like client-go.
        exec_user("bin/plugin", args=["eu"], env=[{"name": "REGION", "value": "west"}]),
    )
    monkeypatch.chdir("/")

    credentials = load_endpoint(config).credentials
    assert calls(tmp_path) == 1  # run up front, so a broken plugin fails before the benchmark

    assert credentials.authorization_header() == "Bearer tok-1-eu-west-interactive=False"
    clock[0] = EXPIRY_EPOCH - 30.5
    assert credentials.authorization_header() == "Bearer tok-1-eu-west-interactive=False"
    assert calls(tmp_path) == 1
    clock[0] = EXPIRY_EPOCH - 30
    assert credentials.authorization_header() == "Bearer tok-2-eu-west-interactive=False"
    clock[0] = EXPIRY_EPOCH + 3600 - 31  # the new token is good for another hour
    assert credentials.authorization_header() == "Bearer tok-2-eu-west-interactive=False"
    assert calls(tmp_path) == 2


def test_exec_v1beta1_without_expiry_is_cached_forever_and_certificate_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = exec_plugin(
        tmp_path,
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',\n"
        "  'kind': 'ExecCredential', 'status': {'token': 'forever',\n"
        f"  'clientCertificateData': {CERT_PEM.decode()!r},\n"
        f"  'clientKeyData': {KEY_PEM.decode()!r}}}}}))\n",
    )
    clock = [0.0]
    monkeypatch.setattr(kube_auth, "_wall_clock", lambda: clock[0])
    config = simple_kubeconfig(
        tmp_path / "config", exec_user(str(plugin), "client.authentication.k8s.io/v1beta1")
    )
    endpoint = load_endpoint(config)
    assert endpoint.client_cert_pem == CERT_PEM
    assert endpoint.client_key_pem == KEY_PEM
    clock[0] = 10.0**10
    assert endpoint.credentials.authorization_header() == "Bearer forever"
    assert calls(tmp_path) == 1


def test_exec_provide_cluster_info_passes_server_ca_and_extension(tmp_path: Path) -> None:
    plugin = exec_plugin(
        tmp_path,
        "cluster = json.loads(os.environ['KUBERNETES_EXEC_INFO'])['spec']['cluster']\n"
        "ca = __import__('base64').b64decode(cluster['certificate-authority-data'])\n"
        "token = cluster['server'] + '|' + cluster['config']['audience'] + '|' + ca.decode()[:27]\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',\n"
        "  'kind': 'ExecCredential', 'status': {'token': token}}))\n",
    )
    extension = {"name": "client.authentication.k8s.io/exec", "extension": {"audience": "k8s"}}
    config = simple_kubeconfig(
        tmp_path / "config",
        exec_user(str(plugin), provideClusterInfo=True),
        **{"certificate-authority-data": b64(CA_PEM), "extensions": [extension]},
    )
    assert load_endpoint(config).credentials.authorization_header() == (
        "Bearer https://10.0.0.1:6443|k8s|-----BEGIN CERTIFICATE-----"
    )


def test_exec_failure_names_the_command_and_first_stderr_line(tmp_path: Path) -> None:
    plugin = exec_plugin(
        tmp_path,
        "sys.stderr.write('\\nerror: token expired, run login\\nsecond line\\n')\nsys.exit(3)\n",
    )
    config = simple_kubeconfig(tmp_path / "config", exec_user(str(plugin)))
    with pytest.raises(ClusterError) as excinfo:
        load_endpoint(config)
    assert str(excinfo.value) == (
        f'kubeconfig {config}: user "u": exec credential plugin "{plugin}" exited with '
        "status 3: error: token expired, run login"
    )


def test_exec_bad_json_is_a_cluster_error(tmp_path: Path) -> None:
    plugin = exec_plugin(tmp_path, "print('Please log in')\nprint('oops', file=sys.stderr)\n")
    config = simple_kubeconfig(tmp_path / "config", exec_user(str(plugin)))
    with pytest.raises(ClusterError) as excinfo:
        load_endpoint(config)
    assert str(excinfo.value) == (
        f'kubeconfig {config}: user "u": exec credential plugin "{plugin}" printed invalid '
        "JSON (Expecting value): oops"
    )


def test_exec_failure_on_refresh_surfaces_from_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exec_plugin(
        tmp_path,
        "if calls > 1:\n"
        "    sys.exit('login required')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',\n"
        "  'kind': 'ExecCredential',\n"
        f"  'status': {{'token': 'short', 'expirationTimestamp': {EXPIRY!r}}}}}))\n",
    )
    clock = [EXPIRY_EPOCH - 600]
    monkeypatch.setattr(kube_auth, "_wall_clock", lambda: clock[0])
    config = simple_kubeconfig(tmp_path / "config", exec_user(str(tmp_path / "bin" / "plugin")))
    credentials = load_endpoint(config).credentials
    assert credentials.authorization_header() == "Bearer short"
    clock[0] = EXPIRY_EPOCH
    with pytest.raises(ClusterError, match=r"exited with status 1: login required$"):
        credentials.authorization_header()


def test_exec_plugin_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    config = simple_kubeconfig(tmp_path / "config", exec_user("kubelogin"))
    with pytest.raises(ClusterError) as excinfo:
        load_endpoint(config)
    assert str(excinfo.value) == (
        f'kubeconfig {config}: user "u": exec credential plugin "kubelogin" not found '
        "(install it, or put it on PATH)"
    )


def test_exec_unsupported_api_version(tmp_path: Path) -> None:
    config = simple_kubeconfig(
        tmp_path / "config", exec_user("x", "client.authentication.k8s.io/v1alpha1")
    )
    assert config_error(config) == (
        f'kubeconfig {config}: user "u" exec apiVersion '
        "'client.authentication.k8s.io/v1alpha1' is not supported (allowed: "
        "client.authentication.k8s.io/v1, client.authentication.k8s.io/v1beta1)"
    )


# --- one load per process, shared by the engine, the setup client and Helm ---------------------


def token_plugin(tmp_path: Path) -> Path:
    return exec_plugin(
        tmp_path,
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',\n"
        "  'kind': 'ExecCredential', 'status': {'token': f'tok-{calls}'}}))\n",
    )


def test_exec_plugin_runs_once_for_engine_setup_client_and_helm(tmp_path: Path) -> None:
    from kubernetes import client

    config = simple_kubeconfig(
        tmp_path / "config",
        exec_user(str(token_plugin(tmp_path))),
        **{"certificate-authority-data": b64(CA_PEM), "tls-server-name": "kubernetes"},
    )

    access = kube.load_cluster(config)
    assert load_endpoint(config) is access.endpoint
    assert kube.load_cluster(str(config), None) is access
    api = client.ApiClient(access.configuration)
    assert api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer tok-1"
    assert api.configuration.host == "https://10.0.0.1:6443"
    tool = access.kubeconfig_for_tools()
    assert calls(tmp_path) == 1

    # Helm gets the resolved credentials, not the exec stanza it would run again.
    assert tool.path is None
    assert tool.context == "kperf"
    document = json.loads(tool.content or "")
    assert document["users"] == [{"name": "kperf", "user": {"token": "tok-1"}}]
    assert document["clusters"][0]["cluster"] == {
        "server": "https://10.0.0.1:6443",
        "certificate-authority-data": b64(CA_PEM),
        "tls-server-name": "kubernetes",
    }

    # An edited kubeconfig is another configuration: read (and the plugin run) again.
    config.write_text(config.read_text() + "\n\n")
    assert load_endpoint(config).credentials.authorization_header() == "Bearer tok-2"
    assert calls(tmp_path) == 2


def test_tools_read_the_users_own_file_when_it_holds_the_credentials(tmp_path: Path) -> None:
    config = two_contexts(tmp_path / "config")
    tool = kube.load_cluster(config, "two").kubeconfig_for_tools()
    assert (tool.path, tool.content, tool.context) == (config, None, "two")


def test_tools_get_merged_kubeconfig_env_files_as_one_resolved_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = simple_kubeconfig(
        tmp_path / "a", {"client-certificate-data": b64(CERT_PEM), "client-key-data": b64(KEY_PEM)}
    )
    second = two_contexts(tmp_path / "b")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    tool = kube.load_cluster().kubeconfig_for_tools()
    assert tool.path is None
    [user] = json.loads(tool.content or "")["users"]
    assert user["user"] == {
        "client-certificate-data": b64(CERT_PEM),
        "client-key-data": b64(KEY_PEM),
    }


def test_basic_auth_round_trips_into_the_tools_kubeconfig(tmp_path: Path) -> None:
    config = simple_kubeconfig(tmp_path / "config", {"username": "admin", "password": "a:b"})
    document = kube.kubeconfig_document(load_endpoint(config))
    assert document["users"][0]["user"] == {"username": "admin", "password": "a:b"}
    other = kube.kubeconfig_document(load_endpoint(config), token="sa-token")
    assert other["users"][0]["user"] == {"token": "sa-token"}


def test_setup_client_follows_the_engines_token_refresh(
    service_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(kube_auth, "_monotonic", lambda: clock[0])
    access = kube.load_cluster()
    configuration = access.configuration
    assert configuration.host == "https://10.96.0.1:443"
    # The loader's own in-cluster header would keep the file's newline.
    assert configuration.get_api_key_with_prefix("BearerToken") == "Bearer sa-token-1"
    (service_account / "token").write_text("sa-token-2\n")
    clock[0] += 60
    assert configuration.get_api_key_with_prefix("BearerToken") == "Bearer sa-token-2"
    tool = access.kubeconfig_for_tools()
    assert tool.path is None
    assert json.loads(tool.content or "")["users"][0]["user"] == {"token": "sa-token-2"}


def test_exec_v1_needs_an_interactive_mode_as_in_client_go(tmp_path: Path) -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}}
    config = simple_kubeconfig(tmp_path / "config", user)
    assert config_error(config) == (
        f'kubeconfig {config}: user "u" exec interactiveMode must be set for '
        "client.authentication.k8s.io/v1 (allowed: Never, IfAvailable)"
    )


def test_user_files_are_relative_to_the_file_defining_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "users" / "pki").mkdir(parents=True)
    (tmp_path / "users" / "pki" / "client.crt").write_bytes(CERT_PEM)
    (tmp_path / "users" / "pki" / "client.key").write_bytes(KEY_PEM)
    clusters = write_kubeconfig(
        tmp_path / "clusters" / "config",
        clusters={
            "c": {"server": "https://10.0.0.1:6443", "certificate-authority-data": b64(CA_PEM)}
        },
        contexts={"ctx": {"cluster": "c", "user": "u"}},
        current="ctx",
    )
    users = write_kubeconfig(
        tmp_path / "users" / "config",
        users={"u": {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"}},
    )
    monkeypatch.setenv("KUBECONFIG", f"{clusters}:{users}")
    endpoint = load_endpoint()
    assert (endpoint.client_cert_pem, endpoint.client_key_pem) == (CERT_PEM, KEY_PEM)
