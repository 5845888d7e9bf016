"""``junit.xml`` for CI systems: one testcase per scenario, plus one per SLO.

A failed scenario is a ``<failure>`` whose message is its failing verdicts' messages. An unknown
one is an ``<error>``, never ``<skipped>``: CI systems show skipped tests as green, and unknown
must never look like a pass.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.checks.verdict import Status
from harness.report.model import Item, RunData
from harness.slo import SLOResult


def _case(parent: ET.Element, classname: str, name: str, status: Status, time_s: float, messages: list[str]) -> None:
    case = ET.SubElement(parent, "testcase", classname=classname, name=name, time=f"{time_s:.3f}")
    text = "\n".join(messages)
    if status is Status.FAIL:
        ET.SubElement(case, "failure", message=(messages[0] if messages else "failed")[:1000], type="fail").text = text
    elif status is Status.UNKNOWN:
        ET.SubElement(case, "error", message=("unknown: " + (messages[0] if messages else "no verdict"))[:1000],
                      type="unknown").text = text


def _suite(root: ET.Element, name: str, cases: list[tuple[str, Status, float, list[str]]]) -> None:
    failures = sum(1 for c in cases if c[1] is Status.FAIL)
    errors = sum(1 for c in cases if c[1] is Status.UNKNOWN)
    el = ET.SubElement(root, "testsuite", name=name, tests=str(len(cases)), failures=str(failures),
                       errors=str(errors), skipped="0", time=f"{sum(c[2] for c in cases):.3f}")
    for case_name, status, t, messages in cases:
        _case(el, name, case_name, status, t, messages)


def build(data: RunData, slo_results: list[SLOResult]) -> ET.ElementTree:
    root = ET.Element("testsuites", name=f"harness {data.path.name}")
    by_suite: dict[str, list[Item]] = {}
    for item in data.items:
        by_suite.setdefault(item.suite, []).append(item)
    for suite, items in by_suite.items():
        _suite(root, suite, [(i.name, i.status, i.duration_s, i.messages()) for i in items])
    if slo_results:
        _suite(root, "slo", [(r.name, r.status, 0.0, [r.message]) for r in slo_results])
    cases = root.findall("./testsuite/testcase")
    root.set("tests", str(len(cases)))
    root.set("failures", str(len(root.findall("./testsuite/testcase/failure"))))
    root.set("errors", str(len(root.findall("./testsuite/testcase/error"))))
    ET.indent(root)
    return ET.ElementTree(root)


def write(data: RunData, slo_results: list[SLOResult], path: Path) -> Path:
    build(data, slo_results).write(path, encoding="utf-8", xml_declaration=True)
    return path
