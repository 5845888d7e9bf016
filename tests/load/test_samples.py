"""Sample files and the exact statistics made from them."""

from __future__ import annotations

import json
import os

import pytest

from harness.checks.verdict import Status
from harness.load.samples import (
    LoadSamples,
    SampleWriter,
    StepCriteria,
    concurrency_curve,
    distribution,
    judge_step,
    parse_lines,
    peak_concurrency,
    percentile,
    read_samples,
    summarize,
    timeline,
    verdicts,
)


def req(t, name, ms, **kw):
    return {"kind": "request", "t": t, "name": name, "type": "WS", "ms": ms, "session": "s", **kw}


def sess(t0, t1, status="ok", pacing=(), **kw):
    return {"kind": "session", "t0": t0, "t1": t1, "session": f"s{t0}", "status": status, "audio_bytes": 32_000,
            "lost_words": 0, "duplicated_words": 0, "lost_segments": 0, "pacing_ms": list(pacing), **kw}


def test_nearest_rank_percentiles_are_real_samples():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 95) == 95.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
    d = distribution([10.0, 20.0, 30.0, 40.0])
    assert d["count"] == 4 and d["p50"] == 20.0 and d["p95"] == 40.0 and d["mean"] == 25.0
    assert distribution([]) == {"count": 0}


def test_files_of_several_workers_aggregate_and_broken_lines_are_reported(tmp_path):
    (tmp_path / "samples-1.jsonl").write_text("\n".join(json.dumps(x) for x in [
        req(10.0, "final", 5.0), req(11.0, "final", 15.0), sess(9.0, 12.0, pacing=[1.0, 2.0])]) + "\n")
    sub = tmp_path / "step-2"
    sub.mkdir()
    (sub / "samples-2.jsonl").write_text(json.dumps(req(10.5, "final", 25.0)) + "\n" + '{"kind": "req')
    s = read_samples(tmp_path)
    assert sorted(s.values("final")) == [5.0, 15.0, 25.0]
    assert len(s.files) == 2 and len(s.bad_lines) == 1 and "samples-2.jsonl:2" in s.bad_lines[0]


def test_interrupted_samples_are_kept_apart():
    s = parse_lines([json.dumps(req(1.0, "final", 900.0, interrupted=True)), json.dumps(req(1.0, "final", 5.0)),
                     json.dumps(sess(0.0, 2.0, status="interrupted", pacing=[300.0])),
                     json.dumps(sess(0.0, 2.0, pacing=[1.0]))])
    assert s.values("final") == [5.0] and len(s.interrupted_requests) == 1
    summary = summarize(s)
    assert summary["pacing_ms"]["max"] == 1.0 and summary["sessions"]["interrupted"] == 1


def test_unknown_kind_and_missing_fields_are_bad_lines():
    s = parse_lines(['{"kind": "bogus"}', '{"kind": "request", "t": 1}', "[1, 2]"])
    assert len(s.bad_lines) == 3 and not s.requests


def test_concurrency_and_timeline():
    sessions = [sess(0.0, 10.0), sess(2.0, 4.0), sess(3.0, 12.0), sess(10.0, 11.0)]
    assert peak_concurrency(sessions) == 3
    # an end and a start at the same instant: the end counts first, so 10.0 is not a peak of 4
    assert max(level for t, level in concurrency_curve(sessions) if t == 10.0) == 2
    samples = LoadSamples(requests=[req(0.5, "final", 10.0), req(5.5, "final", 30.0), req(5.6, "final", 50.0)],
                          sessions=sessions)
    rows = timeline(samples, start=0.0, bucket_s=5.0)
    assert [r["t_s"] for r in rows] == [0.0, 5.0, 10.0]
    assert rows[0]["open_sessions"] == 3 and rows[0]["sessions_started"] == 3 and rows[0]["final_p95_ms"] == 10.0
    assert rows[1]["final_p50_ms"] == 30.0 and rows[1]["final_p95_ms"] == 50.0
    assert rows[2]["sessions_ended"] == 3


def test_summary_throughput_and_words():
    s = LoadSamples(requests=[req(1.0, "session_create", 3.0), req(2.0, "final", 7.0)],
                    sessions=[sess(0.0, 5.0, pacing=[1.0] * 99 + [40.0], lost_words=2), sess(5.0, 10.0)])
    out = summarize(s, start=0.0, end=10.0)
    assert out["throughput"]["duration_s"] == 10.0 and out["throughput"]["sessions_per_min"] == 12.0
    assert out["throughput"]["audio_s_per_s"] == 0.2  # 2 s of audio in 10 s
    assert out["words"]["lost_words"] == 2
    assert out["pacing_ms"]["p99"] == 1.0 and out["pacing_ms"]["max"] == 40.0
    assert out["steps"]["final"]["count"] == 1 and out["steps"]["connect"] == {"count": 0}


def test_verdicts_fail_on_any_failure_and_carry_raw_samples():
    failure = {"kind": "failure", "t": 3.0, "name": "words", "type": "WS", "ms": 1.0, "session": "sX",
               "error": "1 duplicated word(s)"}
    s = LoadSamples(requests=[req(1.0, "final", 7.0)], failures=[failure],
                    sessions=[sess(0.0, 3.0, status="failed", duplicated_words=1), sess(0.0, 3.0, pacing=[2.0])])
    v = {x.name: x for x in verdicts(s)}
    assert v["load.sessions"].status is Status.FAIL and "sX" in v["load.sessions"].message
    assert v["load.sessions"].metrics["session_success"] == [0, 1]
    assert v["load.sessions"].metrics["duplicated_words"] == [1, 0]
    assert v["load.latency"].metrics["final_latency_ms"] == [7.0]
    assert v["load.pacing"].status is Status.PASS


def test_pacing_over_the_limit_makes_the_run_unknown_and_no_session_is_unknown():
    s = LoadSamples(sessions=[sess(0.0, 3.0, pacing=[1.0] * 98 + [30.0, 30.0])])
    v = {x.name: x for x in verdicts(s, pacing_p99_limit_ms=10.0)}
    assert v["load.pacing"].status is Status.UNKNOWN and "30.00 ms" in v["load.pacing"].message
    assert v["load.sessions"].status is Status.PASS
    v = {x.name: x for x in verdicts(LoadSamples(sessions=[sess(0.0, 1.0, status="interrupted")]))}
    assert v["load.sessions"].status is Status.UNKNOWN


@pytest.mark.parametrize("finals, failures, verdict", [
    ([10.0] * 20, 0, "held"), ([10.0] * 18 + [900.0] * 2, 0, "broke"), ([10.0] * 20, 1, "broke"),
    ([10.0] * 3, 0, "unknown"),
])
def test_step_judgement(finals, failures, verdict):
    s = LoadSamples(requests=[req(1.0, "final", v) for v in finals],
                    failures=[{"kind": "failure", "t": 1.0, "name": "session", "error": "x"}] * failures)
    got, why, figures = judge_step(s, StepCriteria(final_p95_ms=500.0, min_finals=5))
    assert got == verdict and figures["finals"] == len(finals)


def test_writer_keeps_one_file_per_process(tmp_path):
    w = SampleWriter(tmp_path / "samples")
    w.write([req(1.0, "final", 1.0)])
    w.write([req(2.0, "final", 2.0), sess(0.0, 2.0)])
    w.close()
    path = tmp_path / "samples" / f"samples-{os.getpid()}.jsonl"
    assert len(path.read_text().splitlines()) == 3
    assert read_samples(tmp_path).values("final") == [1.0, 2.0]
