"""The scripted engine's semantics, exactly as the integrity checks rely on them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_server.engines import EngineConfig, FinalResult, PartialResult, create_engine
from reference_server.engines.scripted import ScriptedEngine

W = 9600  # bytes per word at the default 300 ms
SCRIPT = "alpha bravo charlie"


def engine(**kwargs) -> ScriptedEngine:
    kwargs.setdefault("script", SCRIPT)
    return ScriptedEngine(EngineConfig(**kwargs))


def audio(n_bytes: int) -> bytes:
    return b"\x01\x00" * (n_bytes // 2)


def finals(results) -> list[FinalResult]:
    return [r for r in results if isinstance(r, FinalResult)]


def feed(eng, total: int, chunk: int) -> list:
    out = []
    for start in range(0, total, chunk):
        out += eng.accept(audio(min(chunk, total - start)))
    return out


def test_a_word_is_emitted_only_once_its_last_byte_has_arrived():
    eng = engine()
    assert eng.accept(audio(W - 2)) == []
    assert eng.accept(audio(2)) == [PartialResult(text="alpha", start_ms=0, end_ms=300)]


def test_words_cycle_through_the_script_and_segments_close_every_five_words():
    results = engine().accept(audio(7 * W))
    assert [r.text for r in results] == [
        "alpha",
        "alpha bravo",
        "alpha bravo charlie",
        "alpha bravo charlie alpha",
        "alpha bravo charlie alpha bravo",  # the fifth word closes the segment: a final
        "charlie",
        "charlie alpha",
    ]
    assert [type(r) for r in results].count(FinalResult) == 1
    final = results[4]
    assert isinstance(final, FinalResult)
    assert (final.start_ms, final.end_ms, final.boundary_offset) == (0, 1500, 5 * W)
    assert [(w.word, w.start_ms, w.end_ms, w.confidence) for w in final.words] == [
        ("alpha", 0, 300, 1.0),
        ("bravo", 300, 600, 1.0),
        ("charlie", 600, 900, 1.0),
        ("alpha", 900, 1200, 1.0),
        ("bravo", 1200, 1500, 1.0),
    ]


def test_partials_span_the_open_segment():
    results = engine().accept(audio(7 * W))
    assert results[6] == PartialResult(text="charlie alpha", start_ms=1500, end_ms=2100)


def test_flush_closes_the_open_segment_without_the_trailing_partial_word():
    eng = engine()
    eng.accept(audio(7 * W + W // 2))
    (final,) = eng.flush()
    assert isinstance(final, FinalResult)
    assert final.text == "charlie alpha"
    assert (final.start_ms, final.end_ms, final.boundary_offset) == (1500, 2100, 7 * W)


def test_flush_with_no_complete_word_returns_nothing():
    eng = engine()
    eng.accept(audio(W - 2))
    assert eng.flush() == []


def test_audio_taken_twice_shows_up_as_extra_words():
    once = engine().accept(audio(3 * W))
    doubled = engine().accept(audio(6 * W))  # the same three words' audio, taken twice
    assert finals(once) == [] and once[-1].text == "alpha bravo charlie"
    assert [f.text for f in finals(doubled)] == ["alpha bravo charlie alpha bravo"]
    assert doubled[-1].text == "charlie"


def test_the_stream_goes_on_after_a_flush():
    eng = engine()
    eng.accept(audio(2 * W + 100))
    assert [f.text for f in eng.flush()] == ["alpha bravo"]
    results = eng.accept(audio(W - 100))  # completes word 2, begun before the flush
    assert results == [PartialResult(text="charlie", start_ms=600, end_ms=900)]


def test_resume_at_start_offset_continues_the_word_index():
    eng = engine(start_offset=5 * W)
    results = eng.accept(audio(5 * W))
    (final,) = finals(results)
    assert final.text == "charlie alpha bravo charlie alpha"
    assert (final.start_ms, final.end_ms, final.boundary_offset) == (1500, 3000, 10 * W)
    assert final.words[0].start_ms == 1500


def test_resume_mid_word_emits_that_word_once_its_end_arrives():
    eng = engine(start_offset=5 * W + W // 2)
    assert eng.accept(audio(W // 2 - 2)) == []
    assert eng.accept(audio(2)) == [PartialResult(text="charlie", start_ms=1500, end_ms=1800)]


def test_max_segment_s_closes_segments_before_the_word_count():
    eng = engine(script_segment_words=100, max_segment_s=1.0)  # room for 3 words of 300 ms
    results = eng.accept(audio(7 * W))
    assert [(f.text, f.boundary_offset) for f in finals(results)] == [
        ("alpha bravo charlie", 3 * W),
        ("alpha bravo charlie", 6 * W),
    ]


def test_word_duration_and_segment_size_come_from_the_config():
    eng = engine(script_word_ms=100, script_segment_words=2)
    results = eng.accept(audio(4 * 3200))
    assert [(f.text, f.end_ms, f.boundary_offset) for f in finals(results)] == [
        ("alpha bravo", 200, 6400),
        ("charlie alpha", 400, 12800),
    ]


def test_a_word_longer_than_max_segment_still_gets_a_segment_of_its_own():
    results = engine(script_word_ms=2000, max_segment_s=1.0).accept(audio(2 * 64000))
    assert [f.text for f in finals(results)] == ["alpha", "bravo"]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=16384), min_size=1, max_size=60),
    total_words=st.integers(min_value=0, max_value=23),
)
def test_results_do_not_depend_on_chunking(sizes, total_words):
    total = total_words * W + 4800
    reference = engine()
    expected = reference.accept(audio(total)) + reference.flush()

    eng, got, sent, i = engine(), [], 0, 0
    while sent < total:
        n = min(sizes[i % len(sizes)] * 2, total - sent)  # even sizes, 2 B to 32 KB
        got += eng.accept(audio(n))
        sent += n
        i += 1
    got += eng.flush()
    assert got == expected


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"script": "   "}, "script"),
        ({"script_word_ms": 0}, "script_word_ms"),
        ({"script_word_ms": 250.5}, "script_word_ms"),
        ({"script_segment_words": 0}, "script_segment_words"),
        ({"sample_rate": 8000}, "sample_rate"),
        ({"start_offset": 3}, "start_offset"),
        ({"max_segment_s": 0}, "max_segment_s"),
    ],
)
def test_bad_config_is_refused_with_the_field_named(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        engine(**kwargs)


def test_odd_length_audio_is_refused():
    with pytest.raises(ValueError, match="even length"):
        engine().accept(b"\x00" * 3)


def test_closed_engine_refuses_audio_and_closes_twice_quietly():
    eng = engine()
    eng.close()
    eng.close()
    with pytest.raises(RuntimeError, match="closed"):
        eng.accept(audio(2))


def test_create_engine_builds_the_scripted_engine_and_names_unknown_ones():
    eng = create_engine("scripted", EngineConfig(script="x"))
    assert eng.name == "scripted"
    with pytest.raises(ValueError, match="'nope'.*pocketsphinx, scripted"):
        create_engine("nope", EngineConfig())
