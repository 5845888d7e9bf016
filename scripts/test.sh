#!/usr/bin/env bash
# `make test`: the harness's and the server's own tests, then the scenario suites against the
# embedded reference server (CI profile), then the self-test that proves each planted defect is caught.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
