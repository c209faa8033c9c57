"""Finding the control-plane binaries: an explicit directory, the cache that ``kperf local
provision`` fills (one directory per Kubernetes version), PATH, KUBEBUILDER_ASSETS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from kperf_core.errors import BackendError, ConfigError
from kperf_core.provisioned import cache_root

#: The current release ``kperf local provision`` builds by default, from the Go module proxy.
CURRENT_KUBE_VERSION = "v1.35.4"
#: The release Debian's source package builds: what a machine without a current Go or without
#: the module proxy gets.
DEBIAN_KUBE_VERSION = "v1.20.2"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BIN_DIR_ENV = "KPERF_BIN_DIR"
_VERSION = re.compile(r"^v1\.(\d+)\.(\d+)$")


def provisioned_bin_dir(version: str) -> Path:
    """Where ``kperf local provision --kube-version VERSION`` caches the binaries it builds."""
    return cache_root() / f"kube-{version}" / "bin"


def parse_version(version: str) -> tuple[int, int]:
    """(minor, patch) of ``v1.MINOR.PATCH``; anything else is a ConfigError naming the form."""
    match = _VERSION.match(version)
    if not match:
        raise ConfigError(f"Kubernetes version {version!r}: expected v1.MINOR.PATCH, e.g. v1.35.4")
    return int(match[1]), int(match[2])


def provisioned_versions() -> list[str]:
    """Versions whose binaries ``kperf local provision`` has built, newest first."""
    found = []
    for directory in cache_root().glob("kube-v1.*"):
        version = directory.name.removeprefix("kube-")
        if _VERSION.match(version) and os.access(directory / "bin" / "kube-apiserver", os.X_OK):
            found.append(version)
    return sorted(found, key=parse_version, reverse=True)


def search_path(bin_dir: Path | None, version: str | None) -> list[tuple[str, Path | None]]:
    """Places searched, in order, as (label, directory); a None directory means PATH.

    The versioned cache comes before PATH: with two versions provisioned, the etcd on PATH
    (Debian's 3.4) belongs to v1.20 only, while a current release's cache holds its own etcd.
    """
    places: list[tuple[str, Path | None]] = []
    explicit = bin_dir or (Path(os.environ[BIN_DIR_ENV]) if os.environ.get(BIN_DIR_ENV) else None)
    if explicit is not None:
        places.append((f"--bin-dir/{BIN_DIR_ENV} {explicit}", explicit))
    if version is not None:
        cache = provisioned_bin_dir(version)
        places.append((f"provisioned cache {cache}", cache))
    places.append(("PATH", None))
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        places.append((f"KUBEBUILDER_ASSETS {assets}", Path(assets)))
    return places


def find_binaries(bin_dir: Path | None = None, version: str | None = None) -> dict[str, Path]:
    """Locate every component; one error lists all that are missing and how to get them.

    :param version: the Kubernetes version wanted (its provisioned cache is searched); None means
        the newest one provisioned, if any.
    """
    explicit = bin_dir is not None or bool(os.environ.get(BIN_DIR_ENV))
    if version is None:
        version = next(iter(provisioned_versions()), None)
    elif not explicit and version not in provisioned_versions():
        raise BackendError(
            f"Kubernetes {version} is not provisioned (nothing in {provisioned_bin_dir(version)}); "
            f"run `kperf local provision --kube-version {version}`"
        )
    places = search_path(bin_dir, version)
    found: dict[str, Path] = {}
    for component in COMPONENTS:
        for _label, directory in places:
            if directory is None:
                hit = shutil.which(component)
                if hit:
                    found[component] = Path(hit)
                    break
            elif os.access(directory / component, os.X_OK):
                found[component] = directory / component
                break
    missing = [c for c in COMPONENTS if c not in found]
    if missing:
        looked = ", ".join(label for label, _ in places)
        how = f" --kube-version {version}" if version else ""
        raise BackendError(
            f"{', '.join(missing)} not found (looked in: {looked}); "
            f"run `kperf local provision{how}` to install/build them, or pass --bin-dir"
        )
    return found


def binary_version(path: Path) -> str:
    """The ``vX.Y.Z`` a Kubernetes binary reports (``kube-apiserver --version``)."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"{path} --version: {exc}") from None
    match = re.search(r"v1\.\d+\.\d+", out)
    if not match:
        raise BackendError(f"{path} --version printed no Kubernetes version: {out.strip()!r}")
    return match[0]
