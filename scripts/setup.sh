#!/usr/bin/env bash
# Set up everything kperf needs on a fresh Debian machine, idempotently:
#   1. Debian packages the tests use: prometheus-pushgateway (the prometheus sink's push test) and
#      chromium (the HTML report is opened in headless Chromium);
#   2. a virtualenv in .venv with kperf (editable) and its test tools;
#   3. the native transport (native/, a Rust extension) when cargo is present;
#   4. the local control plane's binaries (`kperf local provision`, cached): the current Kubernetes
#      release built from the Go module proxy (where Go and the proxy allow; else a note), v1.20.2
#      built from Debian's source (the tests run against both), and the kwok controller.
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

# The native transport (native/, Rust): optional — kperf runs everything on libcurl without it.
# A fresh build takes ~2 min on 2 cores; a second run only checks that nothing changed.
if [ -n "${KPERF_NO_NATIVE:-}" ]; then
  echo "[setup] KPERF_NO_NATIVE is set: not building the native transport" >&2
elif ! command -v cargo >/dev/null 2>&1; then
  echo "[setup] note: no cargo on PATH, so no native transport (kperf uses libcurl for all specs)" >&2
else
  echo "[setup] building the native transport (native/) into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check 'maturin>=1.5,<2'
  build_log=$(mktemp)
  if ! VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --quiet --release --locked \
    --manifest-path native/Cargo.toml >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    echo "setup: building native/ failed (above); KPERF_NO_NATIVE=1 skips it" >&2
    exit 1
  fi
  rm -f "$build_log"
fi

echo "[setup] provisioning the local control plane's binaries" >&2
.venv/bin/kperf local provision >/dev/null
.venv/bin/kperf local provision --kube-version "$(scripts/kube-versions.sh debian)" >/dev/null
echo "[setup] done" >&2
