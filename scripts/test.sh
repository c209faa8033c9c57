#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite: lint, types, unit tests and the
# integration tests against a real etcd + kube-apiserver that the suite starts and stops itself —
# the newest Kubernetes provisioned, then the tests marked `every_kube_version` again against
# v1.20.2. Extra arguments go to pytest and make it one pass (add --kube-version to choose).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "[test] ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy kperf_core" >&2
.venv/bin/mypy
# pytest exits 5 when it collected nothing: that is a failure here too.
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
newest=$(scripts/kube-versions.sh newest)
debian=$(scripts/kube-versions.sh debian)
# Both passes run even when the first fails, so one CI run reports on both versions.
status=0
echo "[test] pytest, Kubernetes $newest" >&2
.venv/bin/python -m pytest --kube-version "$newest" || status=$?
if [ "$newest" != "$debian" ]; then
  echo "[test] pytest -m every_kube_version, Kubernetes $debian" >&2
  .venv/bin/python -m pytest --kube-version "$debian" -m every_kube_version || status=$?
fi
exit "$status"
