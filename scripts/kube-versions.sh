#!/usr/bin/env bash
# Print a Kubernetes version kperf knows, for the shell scripts (the Python code is its one source):
#   debian  - the release built from Debian's source (what every machine can provision)
#   newest  - the newest release provisioned on this machine
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python - "$1" <<'PY'
import sys

from kperf_plugins.backends.local_control_plane.binaries import (
    DEBIAN_KUBE_VERSION,
    provisioned_versions,
)

which = sys.argv[1]
if which == "debian":
    print(DEBIAN_KUBE_VERSION)
elif which == "newest":
    print(provisioned_versions()[0])
else:
    sys.exit(f"kube-versions.sh: unknown {which!r} (debian, newest)")
PY
