"""Session -> sample lines: the checks' definitions, the fast word path against the full checks."""

from __future__ import annotations

import pytest
from load_history import SCRIPT, WORD_MS, expected, session

from harness.load.measure import SessionMeta, _exact_match, session_lines, word_counts


def meta(n_words: int = 10, script: str | None = SCRIPT) -> SessionMeta:
    return SessionMeta("scripted", "unit", script, n_words * WORD_MS * 32)


def by_kind(lines, kind):
    return [ln for ln in lines if ln["kind"] == kind]


def test_healthy_session_gives_every_step_and_no_failure():
    lines = session_lines(session(10), meta(), completed=True, error=None, pacing_ms=[0.5, 1.5])
    names = [ln["name"] for ln in by_kind(lines, "request")]
    assert names.count("session_create") == 1 and names.count("connect") == 1
    assert names.count("final") == 2 and {"first_partial", "finalize", "pipeline"} <= set(names)
    assert by_kind(lines, "failure") == []
    (sess,) = by_kind(lines, "session")
    assert sess["status"] == "ok" and sess["lost_words"] == 0 and sess["duplicated_words"] == 0
    assert sess["pacing_ms"] == [0.5, 1.5]
    # the mid-session final: last byte of word 4 sent at 50 + 1400 ms, final 40 ms later
    finals = [ln["ms"] for ln in by_kind(lines, "request") if ln["name"] == "final"]
    assert finals[0] == pytest.approx(40.0)
    create = next(ln for ln in lines if ln["name"] == "session_create")
    assert create["t"] == pytest.approx(1_700_000_000.0 + 0.020)  # wall clock of the answer


def test_doubled_word_is_a_words_failure_with_the_checks_count():
    words = expected(10)
    emitted = words[:3] + [words[2]] + words[3:]  # "the" taken twice
    h = session(10, emitted=emitted)
    assert not _exact_match(h, words)
    counts, problem = word_counts(h, meta())
    assert counts["duplicated_words"] == 1 and counts["lost_words"] == 0
    lines = session_lines(h, meta(), completed=True, error=None)
    (failure,) = by_kind(lines, "failure")
    assert failure["name"] == "words" and "duplicated" in failure["error"]
    assert by_kind(lines, "session")[0]["status"] == "failed"


def test_lost_word_is_counted():
    words = expected(10)
    counts, problem = word_counts(session(10, emitted=words[:4] + words[5:]), meta())
    assert counts["lost_words"] == 1 and problem


def test_fast_path_agrees_with_the_checks_on_a_clean_session():
    h = session(12)
    assert _exact_match(h, expected(12))
    from harness.checks import integrity

    assert integrity.completeness(h, expected(12)).metrics["lost_words"] == 0
    assert integrity.duplicates(h, expected(12)).metrics["duplicated_words"] == 0


def test_errored_session_is_a_session_failure_and_words_are_not_judged():
    lines = session_lines(session(10, close_code=1011), meta(), completed=False, error="stream ended: 1011")
    (failure,) = by_kind(lines, "failure")
    assert failure["name"] == "session" and "1011" in failure["error"]
    assert by_kind(lines, "session")[0]["lost_words"] is None


def test_interrupted_session_is_flagged_not_failed():
    lines = session_lines(session(10), meta(), completed=False, error=None, interrupted=True)
    assert by_kind(lines, "failure") == []
    assert all(ln.get("interrupted") for ln in by_kind(lines, "request"))
    assert by_kind(lines, "session")[0]["status"] == "interrupted"


def test_a_real_engine_has_no_exact_words():
    counts, problem = word_counts(session(10), meta(script=None))
    assert counts == {"lost_words": None, "duplicated_words": None, "lost_segments": None} and problem is None


def test_fast_final_latencies_equal_the_check():
    from harness.checks import latency
    from harness.load.measure import final_latencies

    for h in (session(10), session(23, final_delay_ms=120.0)):
        check = [(s.t_ns, s.ms) for s, _ in latency.final_latency_samples(h)]
        assert final_latencies(h) == check and len(check) >= 2
    # a resend (offsets going back) takes the check's own path, with the same answer
    h = session(10)
    h.add("audio_sent", t_ns=h.records[-1].t_ns + 1, offset=0, length=3200)
    assert final_latencies(h) == [(s.t_ns, s.ms) for s, _ in latency.final_latency_samples(h)]
