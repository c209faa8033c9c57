#!/usr/bin/env bash
# From nothing to a real kube-apiserver on loopback: set up, start the local control plane, show
# that it serves, and tear it all down again (also on failure or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

state_dir=$(mktemp -d -t kperf-quickstart.XXXXXX)
cleanup() { .venv/bin/kperf local down --dir "$state_dir" || true; }
trap cleanup EXIT INT TERM

.venv/bin/kperf local up --dir "$state_dir" >/dev/null
.venv/bin/kperf local status --dir "$state_dir"
