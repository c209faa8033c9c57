#!/usr/bin/env bash
# Set up everything kperf needs on a fresh Debian machine, idempotently:
#   1. Debian packages the tests use: prometheus-pushgateway (the prometheus sink's push test) and
#      chromium (the HTML report is opened in headless Chromium);
#   2. a virtualenv in .venv with kperf (editable) and its test tools;
#   3. the local control plane's binaries (`kperf local provision`: etcd from Debian, kube-apiserver,
#      kube-controller-manager and kube-scheduler built from Debian's Kubernetes source; cached).
# A second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: kperf needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

APT_PACKAGES=(prometheus-pushgateway chromium)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}" >&2
  SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${missing[@]}" >/dev/null \
    || { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
echo "[setup] installing kperf and its test tools into .venv" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "[setup] provisioning the local control plane's binaries" >&2
.venv/bin/kperf local provision >/dev/null
echo "[setup] done" >&2
