"""``kperf local provision``: which Kubernetes to build, and running the recipe that builds it.

The recipes themselves live in ``provision-control-plane.sh`` (one per version family); this
module chooses the version (the current release where the machine can build it, Debian's v1.20.2
otherwise — with the reason) and the kwok version the charts are written for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kperf_core.errors import BackendError, ConfigError
from kperf_core.provisioned import kwok_version

from .binaries import (
    CURRENT_KUBE_VERSION,
    DEBIAN_KUBE_VERSION,
    parse_version,
    provisioned_bin_dir,
)

PROVISION_SCRIPT = Path(__file__).with_name("provision-control-plane.sh")
#: The oldest minor the module recipe builds (flowcontrol v1, the flags kperf passes).
MODULE_RECIPE_MIN_MINOR = 29


@dataclass(frozen=True)
class Choice:
    version: str
    #: Why the default is not the current release (None when it is, or when chosen explicitly).
    note: str | None = None


def find_go() -> Path | None:
    """The machine's Go toolchain: PATH first, then where the official tarball installs."""
    hit = shutil.which("go")
    if hit:
        return Path(hit)
    fallback = Path("/usr/local/go/bin/go")
    return fallback if os.access(fallback, os.X_OK) else None


def choose_version(requested: str | None) -> Choice:
    """The version to provision: ``requested`` if given, else the current release when this
    machine can build it (a Go toolchain new enough, the module proxy reachable), else Debian's."""
    if requested is not None:
        minor, _ = parse_version(requested)
        if requested != DEBIAN_KUBE_VERSION and minor < MODULE_RECIPE_MIN_MINOR:
            raise ConfigError(
                f"no recipe for Kubernetes {requested}: kperf builds {DEBIAN_KUBE_VERSION} "
                f"(Debian's source) or v1.{MODULE_RECIPE_MIN_MINOR}.0 and newer (Go modules)"
            )
        return Choice(requested)
    if os.access(provisioned_bin_dir(CURRENT_KUBE_VERSION) / "kube-apiserver", os.X_OK):
        return Choice(CURRENT_KUBE_VERSION)
    reason = _why_current_unbuildable()
    if reason is None:
        return Choice(CURRENT_KUBE_VERSION)
    return Choice(DEBIAN_KUBE_VERSION, f"{reason}, so Kubernetes {DEBIAN_KUBE_VERSION} instead")


def _why_current_unbuildable() -> str | None:
    go = find_go()
    if go is None:
        return f"no Go toolchain (PATH, /usr/local/go) to build Kubernetes {CURRENT_KUBE_VERSION}"
    try:
        # Only the .info/.mod files: the module's go directive says which Go it needs.
        result = subprocess.run(
            [str(go), "list", "-m", "-json", f"k8s.io/kubernetes@{CURRENT_KUBE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "GO111MODULE": "on"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the Go module proxy did not answer ({exc})"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return (
            f"k8s.io/kubernetes@{CURRENT_KUBE_VERSION} is not reachable through the module proxy "
            f"({last})"
        )
    needed = json.loads(result.stdout).get("GoVersion", "0")
    have = _go_version(go)
    if _numbers(have) < _numbers(needed):
        return f"Kubernetes {CURRENT_KUBE_VERSION} needs Go >= {needed}, {go} is {have}"
    return None


def _go_version(go: Path) -> str:
    out = subprocess.run([str(go), "env", "GOVERSION"], capture_output=True, text=True).stdout
    return out.strip().removeprefix("go")


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])


def provision(version: str) -> Path:
    """Run the recipe for ``version`` (and install kwok); return the binary directory."""
    result = subprocess.run(
        ["bash", str(PROVISION_SCRIPT), version, kwok_version()], stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise BackendError(f"provisioning failed (exit {result.returncode}); see the output above")
    return Path(result.stdout.strip().splitlines()[-1])
