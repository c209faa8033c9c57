#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite: lint, types, unit tests and the
# integration tests against a real etcd + kube-apiserver that the suite starts and stops itself.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "[test] ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] mypy kperf_core" >&2
.venv/bin/mypy
echo "[test] pytest" >&2
# pytest exits 5 when it collected nothing: that is a failure here too.
exec .venv/bin/python -m pytest "$@"
