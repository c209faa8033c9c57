#!/usr/bin/env bash
# From nothing to a real benchmark: set up, start the local control plane (etcd + kube-apiserver
# on loopback), run examples/profiles/quickstart.yaml against it with `kperf runner run`, print the
# JSON report on stdout (a summary on stderr), and tear everything down again — also on failure
# or Ctrl-C (the report of what was measured until then is still printed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

state_dir=$(mktemp -d -t kperf-quickstart.XXXXXX)
cleanup() {
  .venv/bin/kperf local down --dir "$state_dir" >/dev/null || true
  rm -rf "$state_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "[quickstart] starting the local control plane" >&2
kubeconfig=$(.venv/bin/kperf local up --dir "$state_dir")
echo "[quickstart] running examples/profiles/quickstart.yaml (10 s at 200 req/s)" >&2
.venv/bin/kperf runner run --kubeconfig "$kubeconfig" \
  --config examples/profiles/quickstart.yaml "$@"
