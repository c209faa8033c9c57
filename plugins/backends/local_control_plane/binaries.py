"""Finding the control-plane binaries: an explicit directory, PATH, KUBEBUILDER_ASSETS, or the
cache that ``kperf local provision`` fills."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kperf_core.errors import BackendError

#: Kubernetes version the bundled provisioning script builds.
KUBE_VERSION = "v1.20.2"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BIN_DIR_ENV = "KPERF_BIN_DIR"


def provisioned_bin_dir() -> Path:
    """Where ``kperf local provision`` caches the binaries it builds."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kperf" / f"kube-{KUBE_VERSION}" / "bin"


def search_path(bin_dir: Path | None) -> list[tuple[str, Path | None]]:
    """Places searched, in order, as (label, directory); a None directory means PATH."""
    places: list[tuple[str, Path | None]] = []
    explicit = bin_dir or (Path(os.environ[BIN_DIR_ENV]) if os.environ.get(BIN_DIR_ENV) else None)
    if explicit is not None:
        places.append((f"--bin-dir/{BIN_DIR_ENV} {explicit}", explicit))
    places.append(("PATH", None))
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        places.append((f"KUBEBUILDER_ASSETS {assets}", Path(assets)))
    places.append((f"provisioned cache {provisioned_bin_dir()}", provisioned_bin_dir()))
    return places


def find_binaries(bin_dir: Path | None = None) -> dict[str, Path]:
    """Locate every component; one error lists all that are missing and how to get them."""
    places = search_path(bin_dir)
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
        raise BackendError(
            f"{', '.join(missing)} not found (looked in: {looked}); "
            "run `kperf local provision` to install/build them, or pass --bin-dir"
        )
    return found
