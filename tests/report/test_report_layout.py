"""The report as a reader sees it, in a real Chromium: at 1400 px nothing runs past the page and the
chaos and defects tables fit their column; on a phone-width viewport the page itself never scrolls
sideways (a wide table scrolls inside its own box). Screenshots of both are kept as test
artifacts (``reports/test-artifacts/report-layout/``, or ``$HARNESS_TEST_ARTIFACTS``) to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from runbuild import build_run

from harness.browser import chromium_problem, chromium_path
from harness.checks.verdict import Status, Verdict
from harness.report import render
from harness.results import ScenarioResult

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]
LONG_SESSION = "s-" + "9f3c2a71b84d4e0f" * 4  # one long unbreakable token, as real session ids are


def artifacts_dir() -> Path:
    path = Path(os.environ.get("HARNESS_TEST_ARTIFACTS") or REPO / "reports" / "test-artifacts") / "report-layout"
    path.mkdir(parents=True, exist_ok=True)
    return path


def wide_run(root: Path) -> Path:
    """Three runs; the last has the chaos matrix's real case names and parameters and defect
    symptoms as long as the real ones."""
    for n, broken in ((1, False), (2, False), (3, True)):
        run = build_run(root / f"run-{n}", broken=broken, t_shift_ms=n)
        run.write_run_info({"started_at": f"2024-05-0{n}T02:00:00",
                            "suite_durations": {"conformance": 60.0 + n, "chaos": 100.0 + n}})
    for case, fault, params in (
            ("bandwidth-below-audio-rate", "bandwidth", {"stream": "upstream", "rate_kb_s": 16}),
            ("slicer", "slicer", {"stream": "both", "average_size": 64, "size_variation": 32, "delay_us": 200}),
            ("latency-spike-on-finalize", "latency", {"stream": "both", "latency_ms": 1000, "at": "finalize"}),
            ("ws-close-1011", "ws_close", {"code": 1011, "after": "ack 8"})):
        run.add_result(ScenarioResult(
            "chaos", f"test_fault_matrix.py::test_fault[{case}-conversation-pocketsphinx-s3]",
            [Verdict("integrity.completeness", Status.FAIL,
                     f"session {LONG_SESSION}: 3 word(s) lost after the fault window at offsets 48000-96000",
                     metrics={"completeness": 0.9, "lost_words": 3, "recovery_ms": [812.0]})],
            sessions=[LONG_SESSION], duration_s=0.01,
            params={"fault": fault, "fault_params": params, "layer": "toxiproxy", "duration_s": 7.3}))
    run.append_record({"record": "selftest", "defect": "final-lost-on-close", "suites": ["chaos"], "caught": True,
                       "counted": True, "healthy_passed": True, "harness_error": None,
                       "failing": [{"suite": "chaos", "status": "fail",
                                    "scenario": "test_fault_matrix.py::test_fault[slow-close-on-finalize-conversation]",
                                    "messages": [f"FAIL integrity.finals: session {LONG_SESSION}: final segment 3 "
                                                 f"never arrived: /v1/sessions/{LONG_SESSION}/finalize answered 200"]}]})
    return render(run.path, history=root).html


@pytest.fixture(scope="module")
def page():
    problem = chromium_problem()
    if problem:
        pytest.fail(problem)  # bootstrap installs Chromium: its absence is a broken machine, not a skip
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


OVERFLOW = """() => {
  const doc = document.documentElement;
  const wide = [...document.querySelectorAll('.scroll')].filter(w => w.scrollWidth > w.clientWidth + 1)
      .map(w => (w.previousElementSibling && w.previousElementSibling.id) || w.querySelector('th').textContent);
  return {page: doc.scrollWidth, view: window.innerWidth, wide};
}"""


@pytest.mark.parametrize("width,height,name", [(1400, 900, "desktop-1400"), (390, 844, "phone-390")])
def test_report_fits_the_viewport(page, tmp_path, width, height, name):
    html = wide_run(tmp_path / "reports")
    context = page.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    try:
        tab = context.new_page()
        tab.goto(html.as_uri())
        tab.wait_for_selector("#trend", timeout=15_000)
        shot = artifacts_dir() / f"{name}.png"
        tab.screenshot(path=str(shot), full_page=True)
        for section in ("chaos", "defects", "trend"):
            tab.locator(f"#{section}").scroll_into_view_if_needed()
            tab.screenshot(path=str(artifacts_dir() / f"{name}-{section}.png"))
        found = tab.evaluate(OVERFLOW)
    finally:
        context.close()
    assert shot.stat().st_size > 10_000
    assert found["page"] <= found["view"], f"the page is {found['page']} px wide in a {found['view']} px viewport"
    if width >= 1400:
        assert found["wide"] == [], f"tables wider than the page at {width} px: {found['wide']}"
