"""A run directory built by hand with every record kind the report knows, from real checks on
hand-made histories (no backend involved)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from histbuild import SCRIPT, add_fault, scripted_history

from harness.checks import accuracy, integrity, latency, lifecycle, recovery
from harness.checks.session import session_success
from harness.checks.verdict import Status, Verdict
from harness.results import RunDir, ScenarioResult


def tiny_png(width: int = 40, height: int = 24) -> bytes:
    """A valid PNG (a flat blue image) without any imaging library."""
    raw = b"".join(b"\x00" + bytes([59, 110, 165]) * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def session_verdicts(h):
    vs = latency.all_checks(h) + integrity.all_checks(h) + [lifecycle.pipeline_events(h), accuracy.wer(h)]
    return vs + [session_success(h, vs)]


def scenario(run: RunDir, suite: str, name: str, histories, extra=(), **kw) -> ScenarioResult:
    verdicts = [v for h in histories for v in session_verdicts(h)] + list(extra)
    rels = [run.save_history(h) for h in histories]
    result = ScenarioResult(suite, name, verdicts, sessions=[h.session_id for h in histories], histories=rels,
                            duration_s=3.2, started_at="2024-05-01T10:00:00", **kw)
    run.add_result(result)
    return result


def build_run(path: Path, *, broken: bool = True, t_shift_ms: int = 0) -> RunDir:
    """``broken``: a doubled word, a unknown scenario, a missed defect; otherwise all healthy."""
    run = RunDir.create(path)
    run.write_run_info({"target": "embedded reference server", "protocol": "reference", "profile": "ci",
                        "engine": "scripted", "defects": [], "started_at": "2024-05-01T10:00:00",
                        "command": "harness run --profile ci"})
    shift = t_shift_ms * 1_000_000
    healthy = scripted_history(n_words=20, session_id="s-ok")
    healthy.t0_ns += shift
    for r in healthy.records:
        r.t_ns += shift
    scenario(run, "conformance", "test_stream_happy_path", [healthy])
    words = SCRIPT.split()
    expected = [words[i % len(words)] for i in range(20)]
    if broken:
        doubled = scripted_history(n_words=20, session_id="s-dup", emitted=expected[:2] + ["the"] + expected[2:19],
                                   final_delay_ms=420)
        scenario(run, "conformance", "test_duplicate_engine_race", [doubled])
        run.add_result(ScenarioResult("conformance", "test_health_truthful", [], error="ServiceError: server did not start"))
    else:
        scenario(run, "conformance", "test_duplicate_engine_race", [scripted_history(n_words=20, session_id="s-dup")])
        run.add_result(ScenarioResult("conformance", "test_health_truthful",
                                      [Verdict("health.truthful", Status.PASS, "3 snapshot(s) well-typed")]))
    chaos = scripted_history(n_words=20, session_id="s-chaos")
    add_fault(chaos, 1400, 1700, kind="latency", target="toxiproxy:stream")
    scenario(run, "chaos", "test_latency_spike", [chaos], extra=[recovery.recovery(chaos), recovery.added_latency(chaos)],
             params={"fault": {"kind": "latency", "latency_ms": 1000}}, faults=list(chaos.faults))
    chaos2 = scripted_history(n_words=20, session_id="s-reset")
    add_fault(chaos2, 2000, 2100, kind="reset_peer", target="toxiproxy:stream")
    scenario(run, "chaos", "test_reset_peer", [chaos2], extra=[recovery.recovery(chaos2)], params={"fault": "reset_peer"})
    shot = run.artifact_path("browser/live.png")
    shot.write_bytes(tiny_png())
    run.add_result(ScenarioResult("browser", "test_live_recording", [Verdict("browser.console", Status.PASS, "no console errors")],
                                  artifacts={"screenshot": run.relative(shot), "trace": "artifacts/browser/trace.zip"}))
    run.append_record({"record": "load", "name": "steady 20 users", "users": 20, "duration_s": 60, "rps": 3.1,
                       "stats": [{"name": "POST /v1/sessions", "num_requests": 180, "num_failures": 0, "median_ms": 21,
                                  "p95_ms": 44}],
                       "verdicts": [{"name": "load.sessions", "status": "pass", "message": "180 sessions",
                                     "metrics": {"session_create_ms": [21.0] * 10, "session_success": [1] * 10}}],
                       "artifacts": {"locust html": "artifacts/load/locust.html"}})
    run.append_record({"record": "benchmark", "name": "test_codec_decode_final", "group": "codec",
                       "stats": {"min": 0.00001, "max": 0.00004, "mean": 0.000012, "median": 0.000011,
                                 "stddev": 0.000002, "iqr": 0.000001, "rounds": 5000, "ops": 83000.0}})
    run.append_record({"record": "benchmark", "name": "final latency at 8 sessions", "median_ms": 41.5, "p95_ms": 88.0,
                       "sessions": 8})
    run.append_record({"record": "selftest", "defect": "duplicate-engine-race", "suites": ["conformance"], "caught": True,
                       "counted": True, "healthy_passed": True, "harness_error": None,
                       "failing": [{"suite": "conformance", "scenario": "test_duplicate_engine_race", "status": "fail",
                                    "messages": ["FAIL integrity.duplicates: session s-dup: 1 duplicated word(s)"]}]})
    run.append_record({"record": "selftest", "defect": "health-lies", "suites": ["conformance"], "caught": not broken,
                       "counted": not broken, "healthy_passed": True if not broken else None, "harness_error": None,
                       "failing": [] if broken else [{"suite": "conformance", "scenario": "test_health_truthful",
                                                      "status": "fail", "messages": ["FAIL health.truthful: count stays up"]}]})
    run.append_record({"record": "selftest_summary", "duration_s": 80.0, "defects": 2, "caught": 1 if broken else 2,
                       "skipped": {"client-no-reconnect": "browser suite not installed"}})
    return run
