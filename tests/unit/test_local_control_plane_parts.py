"""Parts of the local control plane that need no running process: binaries lookup, PKI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kperf_plugins.backends.local_control_plane.binaries import (
    COMPONENTS,
    find_binaries,
    provisioned_versions,
)
from kperf_plugins.backends.local_control_plane.pki import create_credentials

from kperf_core.errors import BackendError


def _fake_binary(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.delenv("KPERF_BIN_DIR", raising=False)
    return tmp_path


def test_missing_binaries_are_listed_with_the_fix(isolated_env) -> None:
    with pytest.raises(BackendError) as excinfo:
        find_binaries()
    message = str(excinfo.value)
    assert message.startswith(
        "etcd, kube-apiserver, kube-controller-manager, kube-scheduler not found"
    )
    assert "looked in: PATH" in message
    assert "kperf local provision" in message


def test_lookup_order_explicit_then_versioned_cache_then_path_then_kubebuilder(
    isolated_env, monkeypatch
) -> None:
    explicit = isolated_env / "explicit"
    on_path = isolated_env / "on-path"
    assets = isolated_env / "assets"
    cache = isolated_env / "cache" / "kperf" / "kube-v1.20.2" / "bin"
    _fake_binary(explicit, "kube-apiserver")
    _fake_binary(on_path, "etcd")
    _fake_binary(on_path, "kube-apiserver")
    _fake_binary(assets, "kube-scheduler")
    _fake_binary(assets, "etcd")
    for name in ("kube-apiserver", "kube-controller-manager"):
        _fake_binary(cache, name)
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    found = find_binaries(explicit)
    assert found == {
        "kube-apiserver": explicit / "kube-apiserver",
        "etcd": on_path / "etcd",  # v1.20's recipe uses Debian's etcd, from PATH
        "kube-scheduler": assets / "kube-scheduler",
        "kube-controller-manager": cache / "kube-controller-manager",
    }


def test_the_newest_provisioned_version_is_the_default_and_brings_its_etcd(
    isolated_env, monkeypatch
) -> None:
    on_path = isolated_env / "on-path"
    _fake_binary(on_path, "etcd")  # Debian's, for v1.20
    monkeypatch.setenv("PATH", str(on_path))
    root = isolated_env / "cache" / "kperf"
    for version in ("v1.20.2", "v1.9.0", "v1.35.4"):
        for name in COMPONENTS[1:]:
            _fake_binary(root / f"kube-{version}" / "bin", name)
    _fake_binary(root / "kube-v1.35.4" / "bin", "etcd")
    assert provisioned_versions() == ["v1.35.4", "v1.20.2", "v1.9.0"]
    assert find_binaries() == {name: root / "kube-v1.35.4" / "bin" / name for name in COMPONENTS}
    old = find_binaries(version="v1.20.2")
    assert old["etcd"] == on_path / "etcd"
    assert old["kube-apiserver"] == root / "kube-v1.20.2" / "bin" / "kube-apiserver"


def test_a_version_not_provisioned_names_the_command_that_provisions_it(isolated_env) -> None:
    with pytest.raises(BackendError) as excinfo:
        find_binaries(version="v1.31.0")
    assert str(excinfo.value) == (
        f"Kubernetes v1.31.0 is not provisioned (nothing in {isolated_env}/cache/kperf/"
        "kube-v1.31.0/bin); run `kperf local provision --kube-version v1.31.0`"
    )


def test_non_executable_file_is_not_a_binary(isolated_env) -> None:
    directory = isolated_env / "explicit"
    for name in COMPONENTS:
        _fake_binary(directory, name)
    (directory / "etcd").chmod(0o644)
    with pytest.raises(BackendError, match=r"^etcd not found"):
        find_binaries(directory)


def test_credentials_chain_to_the_ca(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID, NameOID

    creds = create_credentials(tmp_path / "pki")
    ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
    serving = x509.load_pem_x509_certificate(creds.serving_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(creds.admin_cert.read_bytes())
    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)
    san = serving.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    orgs = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]
    token_line = creds.token_file.read_text().strip()
    assert token_line.startswith(creds.admin_token + ",") and token_line.endswith(
        '"system:masters"'
    )
    for secret in (creds.serving_key, creds.admin_key, creds.service_account_key, creds.token_file):
        assert os.stat(secret).st_mode & 0o077 == 0, f"{secret} is readable by others"


def _fake_go(directory: Path, go_version: str, needs: str | None) -> None:
    """A `go` that reports ``go_version`` and, for `go list -m`, a module needing ``needs``
    (None: the module proxy is unreachable)."""
    listing = (
        f'echo \'{{"Path": "k8s.io/kubernetes", "GoVersion": "{needs}"}}\''
        if needs
        else "echo 'go: module lookup disabled by GOPROXY=off' >&2; exit 1"
    )
    script = (
        "#!/bin/sh\n"
        f'[ "$1" = env ] && echo go{go_version} && exit 0\n'
        f'[ "$1" = list ] && {{ {listing}; }} && exit 0\n'
        "exit 2\n"
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "go").write_text(script)
    (directory / "go").chmod(0o755)


@pytest.mark.parametrize(
    ("go_version", "needs", "expected"),
    [
        ("1.26.8", "1.25.0", None),
        ("1.24.1", "1.25.0", "Kubernetes {current} needs Go >= 1.25.0, {go} is 1.24.1"),
        ("1.26.8", None, "k8s.io/kubernetes@{current} is not reachable through the module proxy "
         "(go: module lookup disabled by GOPROXY=off)"),
    ],
)  # fmt: skip
def test_the_default_version_is_current_where_this_machine_can_build_it(
    isolated_env, monkeypatch, go_version, needs, expected
) -> None:
    from kperf_plugins.backends.local_control_plane.binaries import (
        CURRENT_KUBE_VERSION,
        DEBIAN_KUBE_VERSION,
    )
    from kperf_plugins.backends.local_control_plane.provisioning import Choice, choose_version

    bin_dir = isolated_env / "go-bin"
    _fake_go(bin_dir, go_version, needs)
    monkeypatch.setenv("PATH", str(bin_dir))
    if expected is None:
        assert choose_version(None) == Choice(CURRENT_KUBE_VERSION)
    else:
        note = expected.format(go=bin_dir / "go", current=CURRENT_KUBE_VERSION)
        assert choose_version(None) == Choice(
            DEBIAN_KUBE_VERSION, f"{note}, so Kubernetes {DEBIAN_KUBE_VERSION} instead"
        )
    # asked for: no checks, no note
    assert choose_version(DEBIAN_KUBE_VERSION) == Choice(DEBIAN_KUBE_VERSION)
