"""The CI examples (``examples/ci/``) parse, upload the three report files, show JUnit as test
results, and run only commands the README documents: a ``harness`` subcommand with options that
the README's row for it names, or a ``make`` target the README names."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "ci"
REPORT_FILES = ("report.html", "summary.json", "junit.xml")


def readme_commands(readme: str) -> dict[str, set[str]]:
    """``harness <sub>`` -> the options the README shows for it (its CLI table row and its examples)."""
    out: dict[str, set[str]] = {}
    for line in readme.splitlines():
        for m in re.finditer(r"harness (run|serve|load|report|fixtures|doctor|image)\b", line):
            out.setdefault(m.group(1), set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line[m.start():]))
    return out


def undocumented(lines: list[str], readme: str) -> list[str]:
    """Every ``harness`` or ``make`` invocation in ``lines`` that the README does not document."""
    documented = readme_commands(readme)
    problems = []
    for line in lines:
        for part in re.split(r"&&|\|\||;|\|", line):
            try:
                words = shlex.split(part.replace("${{", "").replace("}}", ""))
            except ValueError as exc:
                problems.append(f"{part.strip()!r}: does not parse as a shell command ({exc})")
                continue
            if not words:
                continue
            cmd = Path(words[0]).name
            if cmd == "make":
                for target in (w for w in words[1:] if not w.startswith("-")):
                    if f"make {target}" not in readme:
                        problems.append(f"make {target}: not a target the README documents")
            elif cmd == "harness":
                sub = words[1] if len(words) > 1 else ""
                if sub not in documented:
                    problems.append(f"harness {sub}: not a subcommand the README documents")
                    continue
                for opt in (w.split("=", 1)[0] for w in words[2:] if w.startswith("--")):
                    if opt not in documented[sub]:
                        problems.append(f"harness {sub} {opt}: the README does not document this option")
    return problems


def github_lines(doc: dict[str, Any]) -> list[str]:
    return [ln for job in doc["jobs"].values() for step in job["steps"] for ln in str(step.get("run", "")).splitlines()]


def gitlab_lines(doc: dict[str, Any]) -> list[str]:
    lines = list(doc.get("before_script", []))
    for job in (v for v in doc.values() if isinstance(v, dict) and "script" in v):
        lines += job.get("before_script", []) + job["script"] + job.get("after_script", [])
    return lines


@pytest.fixture(scope="module")
def readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def test_github_workflow_gates_prs_runs_nightly_and_uploads_the_report(readme):
    doc = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and triggers["schedule"][0]["cron"]
    lines = github_lines(doc)
    assert any("harness run --profile ci" in ln for ln in lines)
    assert any("harness run --profile nightly" in ln and "--history" in ln for ln in lines)
    for job in doc["jobs"].values():
        uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
        assert uploads and uploads[0].get("if") == "always()"
        assert all(name in uploads[0]["with"]["path"] for name in REPORT_FILES)
        junit = [s for s in job["steps"] if "junit" in str(s.get("uses", ""))]
        assert junit and junit[0]["with"]["report_paths"].endswith("junit.xml")
    assert undocumented(lines, readme) == []


def test_gitlab_jobs_gate_mrs_run_on_schedule_and_keep_the_report(readme):
    doc = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    gate, nightly = doc["harness-gate"], doc["harness-nightly"]
    assert "merge_request_event" in gate["rules"][0]["if"] and "schedule" in nightly["rules"][0]["if"]
    for job in (gate, nightly):
        assert job["artifacts"]["when"] == "always"
        assert job["artifacts"]["reports"]["junit"].endswith("junit.xml")
    assert all(any(name in p for p in gate["artifacts"]["paths"]) for name in REPORT_FILES)
    assert any("--history" in ln for ln in nightly["script"])
    assert undocumented(gitlab_lines(doc), readme) == []


def test_the_check_catches_undocumented_commands(readme):
    bad = ["make deploy", ".venv/bin/harness run --profile ci --no-such-flag", "harness teleport now",
           "echo ok && harness report reports/latest --history reports --sparkle"]
    problems = undocumented(bad, readme)
    assert problems == ["make deploy: not a target the README documents",
                        "harness run --no-such-flag: the README does not document this option",
                        "harness teleport: not a subcommand the README documents",
                        "harness report --sparkle: the README does not document this option"]
    assert undocumented(["make bootstrap", "harness report reports/latest --history reports"], readme) == []
