#!/usr/bin/env bash
# Flake hunt: run the unit tests and the CI profile N times against the healthy embedded server and
# count every test or scenario that did not pass. On a healthy commit every one of those is a false
# alarm, i.e. a flake, i.e. a defect of the harness or of its tests.
#
#   scripts/flake_hunt.sh N [--no-unit] [--suite conformance,chaos,...] [--slo FILE]
#
# By default it runs what `make test` runs (the same suites but the self-test, judged by the same
# latency-free SLO file), so a false alarm found here is one the gate could raise.
#
# Writes reports/flake-hunt-<stamp>/ (one folder per run, and flakes.txt) and prints the tally:
#   "flake hunt: 0 false alarms in 5 runs (4,180 test and scenario results)".
# Exit 0 when nothing flaked, 1 otherwise, 2 on bad arguments.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
PY=.venv/bin/python

runs="${1:-}"
shift || true
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]] || [ "$runs" -gt 100 ]; then
  echo "usage: scripts/flake_hunt.sh N [--no-unit] [--suite a,b] [--slo FILE]   (N: number of runs, 1-100; got '${runs}')" >&2
  exit 2
fi
unit=1
suites="conformance,chaos,browser,property,relay,docker"
slo="harness/slo/ci-integrity.toml"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-unit) unit=0 ;;
    --suite) suites="${2:?--suite needs a comma-separated list}"; shift ;;
    --slo) slo="${2:?--slo needs an SLO file}"; shift ;;
    *) echo "flake_hunt.sh: unknown option '$1' (known: --no-unit, --suite LIST, --slo FILE)" >&2; exit 2 ;;
  esac
  shift
done
if [ ! -f "$slo" ]; then
  echo "flake_hunt.sh: SLO file '$slo' does not exist" >&2
  exit 2
fi

out="reports/flake-hunt-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  run="$out/run-$i"
  mkdir -p "$run"
  echo "== flake hunt run $i/$runs"
  if [ "$unit" = 1 ]; then
    $PY -m pytest tests -q -p no:cacheprovider --junitxml="$run/unit.xml" >"$run/unit.log" 2>&1
    echo "   unit tests: exit $? (log: $run/unit.log)"
  fi
  harness run --profile ci --slo "$slo" --suite "$suites" --out "$run/ci" >"$run/ci.log" 2>&1
  echo "   harness run --profile ci --slo $slo --suite $suites: exit $? (report: $run/ci/report.html)"
done

$PY - "$out" "$runs" "$unit" <<'PY'
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

out, runs, unit = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
results = 0
flakes: Counter[str] = Counter()
missing: list[str] = []
for i in range(1, runs + 1):
    xmls = ([out / f"run-{i}" / "unit.xml"] if unit else []) + [out / f"run-{i}" / "ci" / "junit.xml"]
    for xml in xmls:
        try:
            root = ET.parse(xml).getroot()
        except (OSError, ET.ParseError) as exc:
            missing.append(f"run {i}: {xml} unreadable ({exc}): the run itself broke")
            continue
        for case in root.iter("testcase"):
            results += 1
            if case.find("failure") is not None or case.find("error") is not None:
                flakes[f"{case.get('classname', '')}::{case.get('name', '')}"] += 1
lines = [f"{n}/{runs} runs  {name}" for name, n in flakes.most_common()] + missing
(out / "flakes.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
alarms = sum(flakes.values()) + len(missing)
print(f"flake hunt: {alarms} false alarm(s) in {runs} run(s) ({results:,} test and scenario results)")
for line in lines:
    print("  " + line)
sys.exit(1 if alarms else 0)
PY
