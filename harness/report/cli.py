"""``harness report RUN_DIR [--baseline RUN_DIR] [--slo FILE] [--open]``: render a run again.

Exit status is the gate's: 0 pass, 1 fail or unknown (unknown never passes), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import webbrowser
from pathlib import Path

from harness.cli import HarnessError


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (reports/<run-id> or reports/latest)")
    p.add_argument("--baseline", metavar="RUN_DIR", help="an earlier run to compare with (flipped scenarios, SLO deltas)")
    p.add_argument("--history", metavar="DIR",
                   help="folder of earlier run directories: show each SLO's trend, what flipped since the "
                        "previous run and each suite's time")
    p.add_argument("--history-last", type=int, default=10, metavar="N", help="earlier runs to show (default 10)")
    p.add_argument("--slo", metavar="FILE", help="SLO file (TOML); default: the run's, else its profile's")
    p.add_argument("--open", action="store_true", help="open report.html in the default browser afterwards")


def _run_dir(value: str, what: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise HarnessError(f"{what} {value} is not a directory")
    if not (path / "results.jsonl").is_file():
        raise HarnessError(f"{what} {value} is not a run directory: it has no results.jsonl")
    return path


def main(args: argparse.Namespace) -> int:
    from harness.report.render import render
    from harness.slo import SLOFileError

    run = _run_dir(args.run_dir, "RUN_DIR")
    base = _run_dir(args.baseline, "--baseline") if args.baseline else None
    if args.slo and not Path(args.slo).is_file():
        raise HarnessError(f"SLO file {args.slo} does not exist")
    history = getattr(args, "history", None)
    last = getattr(args, "history_last", 10)
    if history and not Path(history).is_dir():
        raise HarnessError(f"--history {history} is not a directory (a folder of earlier run directories)")
    if last < 1:
        raise HarnessError(f"--history-last must be at least 1, not {last}")
    try:
        paths = render(run, baseline=base, slo_file=args.slo, history=history, history_last=last)
    except SLOFileError as exc:
        raise HarnessError(str(exc)) from exc
    except (FileNotFoundError, ValueError) as exc:
        raise HarnessError(f"cannot render {run}: {exc}") from exc
    out = sys.stdout
    print(f"{paths.status.value.upper()}", file=out)
    for reason in paths.reasons:
        print(f"  {reason}", file=out)
    if base is not None:
        changes = json.loads(paths.summary.read_text(encoding="utf-8")).get("changes_since_baseline", {})
        flipped = changes.get("flipped", [])
        print(f"Changes since {base}: {len(flipped)} scenario(s) flipped", file=out)
        for f in flipped:
            print(f"  {f['scenario']}: {f['before']} -> {f['after']}", file=out)
        for s in changes.get("slo", []):
            if s.get("delta") is not None and s["delta"] != 0 or s.get("before") != s.get("after"):
                delta = f"{s['delta']:+.1f}" if s.get("delta") is not None else "n/a"
                print(f"  SLO {s['name']}: {s.get('before')} -> {s['after']} (measured {delta})", file=out)
    if history:
        trend = json.loads(paths.summary.read_text(encoding="utf-8")).get("trend", {})
        prev = trend.get("since_previous")
        print(f"Trend: {len(trend.get('runs', []))} run(s) from {history}", file=out)
        if prev:
            print(f"  {len(prev['flipped'])} scenario(s) flipped since {prev['previous']}", file=out)
            for f in prev["flipped"]:
                print(f"  {f['scenario']}: {f['before']} -> {f['after']}", file=out)
    print(f"Report: {paths.html}\nSummary: {paths.summary}\nJUnit: {paths.junit}", file=out)
    if args.open:
        webbrowser.open(paths.html.resolve().as_uri())
    return paths.exit_code
