#!/usr/bin/env bash
# `make test`, in three stages:
#   1. the harness's and the reference server's own tests (tests/);
#   2. the CI profile's scenario suites against the embedded reference server, which must PASS;
#   3. the self-test: every planted defect of DEFECTS.md must make its catching suite fail.
# Stages 2 and 3 are one `harness run`, so the self-test reuses stage 2's healthy baseline.
# The last line counts everything: unit tests plus scenarios plus defects caught.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
PY=.venv/bin/python

mkdir -p reports
stamp="$(date +%Y%m%d-%H%M%S)"
unit_xml="reports/unit-$stamp.xml"
run_dir="reports/test-$stamp"

echo "== 1/2 unit and integration tests (tests/)"
$PY -m pytest tests -q -p no:cacheprovider --junitxml="$unit_xml" "$@"
unit_rc=$?

echo "== 2/2 scenario suites and the defect self-test (harness run --profile ci)"
# Judged by ci-integrity.toml: latency thresholds on a shared machine would be wall-clock assertions.
harness run --profile ci --slo harness/slo/ci-integrity.toml --suite conformance,chaos,browser,property,relay,docker,selftest --out "$run_dir"
run_rc=$?

$PY - "$unit_xml" "$run_dir" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
passed = failed = skipped = 0
try:
    root = ET.parse(sys.argv[1]).getroot()
    for suite in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        n, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        passed += n - f - e - s; failed += f + e; skipped += s
except (OSError, ET.ParseError):
    failed += 1
summary = Path(sys.argv[2]) / "summary.json"
if summary.exists():
    counts = json.loads(summary.read_text())["counts"]
    passed += counts.get("pass", 0)
    failed += counts.get("fail", 0) + counts.get("unknown", 0)
else:
    failed += 1
print(f"make test: {passed} passed, {failed} failed, {skipped} skipped")
PY

[ "$unit_rc" -eq 0 ] && [ "$run_rc" -eq 0 ]
