"""The pocketsphinx engine on the committed speech fixtures, streamed as a client would."""

from __future__ import annotations

import array
import json
import random
import re
import wave
from pathlib import Path

import jiwer
import pytest

from reference_server.engines import EngineConfig, FinalResult, PartialResult, create_engine
from reference_server.engines.decoder_pool import DecoderPool
from reference_server.engines.pocketsphinx_engine import PocketSphinxEngine, clean_word

MANIFEST = Path(__file__).resolve().parents[3] / "fixtures" / "audio" / "manifest.json"
CHUNK = 3200  # 100 ms


def _fixtures() -> list[dict]:
    if not MANIFEST.exists():
        pytest.skip(f"{MANIFEST} is missing: run `harness fixtures`")
    return json.loads(MANIFEST.read_text())["fixtures"]


def _pcm(entry: dict) -> bytes:
    with wave.open(str(MANIFEST.parent / entry["file"])) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2), entry["id"]
        return wav.readframes(wav.getnframes())


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(seconds * 16000)


@pytest.fixture(scope="module")
def utterances() -> list[dict]:
    """Two single-voice utterances from the committed fixtures (each with lead and trail silence)."""
    chosen = [f for f in _fixtures() if f["kind"] == "utterance" and f.get("voice") == "rms"][:2]
    if len(chosen) < 2:
        pytest.skip("the fixture manifest has fewer than two rms utterances")
    return chosen


@pytest.fixture(scope="module")
def speech(utterances) -> bytes:
    """The two utterances back to back: the trail of one and the lead of the next make the pause."""
    return b"".join(_pcm(entry) for entry in utterances)


@pytest.fixture(scope="module")
def pool() -> DecoderPool:
    return DecoderPool(max_idle=2)


def run(pcm: bytes, chunk: int = CHUNK, pool: DecoderPool | None = None, **config) -> list:
    engine = PocketSphinxEngine(EngineConfig(**config), pool=pool)
    try:
        results = []
        for start in range(0, len(pcm), chunk):
            results += engine.accept(pcm[start : start + chunk])
        return results + engine.flush()
    finally:
        engine.close()


def finals(results) -> list[FinalResult]:
    return [r for r in results if isinstance(r, FinalResult)]


def normalize(text: str) -> str:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).strip()


@pytest.fixture(scope="module")
def streamed(speech, pool) -> list:
    return run(speech, pool=pool)


def test_transcript_is_accurate(streamed, utterances):
    hypothesis = " ".join(f.text for f in finals(streamed))
    reference = " ".join(entry["text"] for entry in utterances)
    wer = jiwer.wer(normalize(reference), normalize(hypothesis))
    assert wer < 0.15, f"WER {wer:.2f}: {hypothesis!r}"


def test_each_sentence_ends_in_its_own_final_at_the_pause(streamed):
    first, second = finals(streamed)
    gap_start_ms = first.end_ms
    assert second.start_ms - gap_start_ms >= 500, (first, second)


def test_partials_flow_before_the_first_final(streamed):
    first_final = next(i for i, r in enumerate(streamed) if isinstance(r, FinalResult))
    partials = [r for r in streamed[:first_final] if isinstance(r, PartialResult)]
    assert len(partials) >= 5
    # A partial at least every 500 ms of speech audio.
    ends = [p.end_ms for p in partials]
    assert max(b - a for a, b in zip(ends, ends[1:])) <= 500
    assert all(p.start_ms == partials[0].start_ms for p in partials)


def test_word_times_are_monotonic_and_inside_their_segment(streamed):
    for final in finals(streamed):
        assert final.words, final
        previous_end = final.start_ms
        for word in final.words:
            assert previous_end <= word.start_ms < word.end_ms <= final.end_ms, (word, final)
            assert 0.0 <= word.confidence <= 1.0
            previous_end = word.end_ms
        assert final.text == " ".join(w.word for w in final.words)


def test_segments_do_not_overlap_and_boundaries_match_their_ends(streamed, speech):
    previous_boundary = 0
    for final in finals(streamed):
        assert final.start_ms * 32 >= previous_boundary
        assert final.boundary_offset == final.end_ms * 32
        previous_boundary = final.boundary_offset
    assert previous_boundary <= len(speech)


def test_no_silence_or_filler_tokens_reach_the_words(streamed):
    for final in finals(streamed):
        for word in final.words:
            assert clean_word(word.word) == word.word
            assert not re.search(r"[<>\[\]()+]", word.word)


@pytest.mark.parametrize("token", ["<s>", "</s>", "<sil>", "[NOISE]", "[BREATH]", "++GARBAGE++"])
def test_clean_word_drops_fillers(token):
    assert clean_word(token) is None


def test_clean_word_strips_pronunciation_variants():
    assert clean_word("to(2)") == "to"


def test_results_are_the_same_however_the_audio_is_chunked(speech, streamed, pool):
    cut = speech[: 3 * 32000]  # speech from the first utterance, then a flush mid-sentence
    reference = run(cut, chunk=CHUNK, pool=pool)
    assert finals(reference)
    assert run(cut, chunk=2, pool=pool) == reference  # one sample at a time
    assert run(cut, chunk=32768, pool=pool) == reference


def test_silence_gives_no_results(pool):
    assert run(silence(3.0), pool=pool) == []


def test_silence_fixture_gives_no_results(pool):
    (entry,) = [f for f in _fixtures() if f["kind"] == "silence"][:1]
    assert run(_pcm(entry), pool=pool) == []


def test_noise_gives_no_final(pool):
    (entry,) = [f for f in _fixtures() if f["kind"] == "noise"][:1]
    assert finals(run(_pcm(entry), pool=pool)) == []
    # Louder, white: the voice activity detector takes it for speech, the decoder must not.
    rng = random.Random(7)
    loud = array.array("h", (int(rng.uniform(-0.1, 0.1) * 32767) for _ in range(16000 * 3)))
    assert finals(run(loud.tobytes(), pool=pool)) == []


def test_max_segment_s_forces_finals_during_long_speech(speech, utterances, pool):
    first_utterance = speech[: round(utterances[0]["duration_s"] * 16000) * 2]
    segments = finals(run(first_utterance, pool=pool, max_segment_s=1.0))
    assert len(segments) >= 3
    for final in segments:
        assert final.end_ms - final.start_ms <= 1000
    # Inside one sentence a forced final hands over to the next segment with no gap.
    contiguous = [b for a, b in zip(segments, segments[1:]) if b.start_ms * 32 == a.boundary_offset]
    assert contiguous


def test_flush_mid_speech_accounts_for_every_byte_sent_and_the_stream_goes_on(speech, pool):
    # 64 whole endpointer frames: the flush has no partial frame left to hand over.
    sent = 64 * 960
    engine = PocketSphinxEngine(EngineConfig(), pool=pool)
    try:
        results = []
        for start in range(0, sent, CHUNK):
            results += engine.accept(speech[start : min(start + CHUNK, sent)])
        (flushed,) = engine.flush()
        assert isinstance(flushed, FinalResult)
        assert flushed.boundary_offset == sent
        assert flushed.text
        later = []
        for start in range(sent, len(speech), CHUNK):
            later += engine.accept(speech[start : start + CHUNK])
        later = finals(later + engine.flush())
    finally:
        engine.close()
    assert later, "no final after the flush"
    assert later[0].start_ms * 32 >= sent
    assert later[-1].boundary_offset <= len(speech)


def test_resume_at_a_boundary_continues_with_stream_times(speech, streamed, pool):
    first, second = finals(streamed)
    resumed = finals(run(speech[first.boundary_offset :], pool=pool, start_offset=first.boundary_offset))
    # A resumed engine has not adapted to the speaker (cepstral mean) nor the noise floor (VAD)
    # yet, so words and edges may differ a little; the segment must be the same, in stream times.
    (again,) = resumed
    assert jiwer.wer(normalize(second.text), normalize(again.text)) < 0.5
    assert first.end_ms <= again.start_ms <= again.words[0].start_ms
    assert abs(again.words[0].start_ms - second.words[0].start_ms) <= 60
    assert abs(again.words[-1].end_ms - second.words[-1].end_ms) <= 60
    assert abs(again.boundary_offset - second.boundary_offset) <= 60 * 32


def test_a_reused_decoder_gives_the_same_results_as_a_fresh_one(speech, pool):
    cut = speech[: 3 * 32000]
    fresh = run(cut, pool=DecoderPool(max_idle=0))
    rng = random.Random(3)
    noise = array.array("h", (int(rng.uniform(-0.3, 0.3) * 32767) for _ in range(16000)))
    run(noise.tobytes() + cut, pool=pool)  # leave the pooled decoders with other audio's state
    assert run(cut, pool=pool) == fresh


def test_two_live_engines_never_share_a_decoder(pool):
    a = PocketSphinxEngine(EngineConfig(), pool=pool)
    b = PocketSphinxEngine(EngineConfig(), pool=pool)
    try:
        assert a._decoder is not b._decoder
        assert pool.in_use() == 2
    finally:
        a.close()
        b.close()
    assert pool.in_use() == 0


def test_engine_closes_twice_and_refuses_audio_afterwards(pool):
    engine = create_engine("pocketsphinx", EngineConfig())
    engine.close()
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.accept(b"\x00\x00")


def test_odd_length_audio_is_refused(pool):
    engine = PocketSphinxEngine(EngineConfig(), pool=pool)
    try:
        with pytest.raises(ValueError, match="even length"):
            engine.accept(b"\x00" * 5)
    finally:
        engine.close()


def test_a_pause_ended_segment_ends_where_the_engine_decided(speech, pool):
    """The segment spans the pause the endpointer listened to, so final latency is measured from
    the moment the engine could know the segment was over, not from the last word."""
    segments = finals(run(speech, pool=pool))
    first, second = segments[0], segments[1]
    pause_heard_ms = first.end_ms - first.words[-1].end_ms
    assert 300 <= pause_heard_ms <= 1500
    assert first.boundary_offset == first.end_ms * 32
    assert second.start_ms * 32 >= first.boundary_offset


def test_partials_are_not_a_window_behind_the_stream(speech, pool):
    """The endpointer hands its audio back a whole window late; the decoder must not hear it that
    late, or every partial (and the first one most) lags the stream by the window."""
    engine = PocketSphinxEngine(EngineConfig(), pool=pool)
    lags = []
    try:
        for start in range(0, len(speech), CHUNK):
            received_ms = (start + len(speech[start : start + CHUNK])) // 32
            lags += [received_ms - r.end_ms for r in engine.accept(speech[start : start + CHUNK])
                     if isinstance(r, PartialResult)]
        engine.flush()
    finally:
        engine.close()
    assert lags, "no partial was emitted"
    # At most a chunk and an endpointer frame behind what was received (the window is 600 ms).
    assert max(lags) <= 100 + 30, lags


def test_the_first_partial_comes_with_the_speech_decision(utterances, pool):
    """No cadence wait after the endpointer said speech: the first partial with words is emitted
    within a chunk or two (of audio) of the decision, not a 300 ms cadence later."""
    entry = utterances[0]
    pcm = _pcm(entry)
    engine = PocketSphinxEngine(EngineConfig(), pool=pool)
    decided_ms = first_ms = None
    try:
        for start in range(0, len(pcm), CHUNK):
            out = engine.accept(pcm[start : start + CHUNK])
            at_ms = (start + CHUNK) // 32
            if decided_ms is None and engine._in_utt:
                decided_ms = at_ms
            if first_ms is None and any(isinstance(r, PartialResult) and r.text for r in out):
                first_ms = at_ms
                break
    finally:
        engine.close()
    assert decided_ms is not None and first_ms is not None, (decided_ms, first_ms)
    assert first_ms - decided_ms <= 200, (decided_ms, first_ms)
    assert first_ms - entry["speech_onset_s"] * 1000 < 800, (entry["id"], first_ms)


def test_decoding_starts_within_the_start_window_of_the_onset(pool):
    """Speech is decided by the short start window (0.24 s), not the 0.6 s window that ends
    segments: on every utterance fixture the first partial with words is in the audio before
    0.5 s past the onset (audio time, so the machine's speed does not enter)."""
    late = {}
    for entry in [f for f in _fixtures() if f["kind"] == "utterance"]:
        pcm = _pcm(entry)
        engine = PocketSphinxEngine(EngineConfig(), pool=pool)
        first_ms = None
        try:
            for start in range(0, len(pcm), CHUNK):
                out = engine.accept(pcm[start : start + CHUNK])
                if any(isinstance(r, PartialResult) and r.text for r in out):
                    first_ms = (start + len(pcm[start : start + CHUNK])) // 32
                    break
        finally:
            engine.close()
        after_onset = None if first_ms is None else first_ms - entry["speech_onset_s"] * 1000
        if after_onset is None or after_onset >= 500:
            late[entry["id"]] = after_onset
    assert not late, f"first partial not within 500 ms of audio after the onset: {late}"


def test_a_short_burst_is_decoded_and_ended_by_the_start_window(utterances, pool):
    """Speech shorter than the 0.6 s window (the long endpointer never says speech) is still
    decoded from the short window's decision, and its segment closes when that window hears
    silence again, before any flush: no partial is left waiting for its final."""
    entry = utterances[0]
    pcm = _pcm(entry)
    onset = round(entry["speech_onset_s"] * 16000) * 2
    burst = pcm[:onset] + pcm[onset : onset + 4800] + silence(1.5)  # 0.15 s of speech
    engine = PocketSphinxEngine(EngineConfig(), pool=pool)
    results, confirmed = [], False
    try:
        for start in range(0, len(burst), CHUNK):
            results += engine.accept(burst[start : start + CHUNK])
            confirmed = confirmed or engine._endpointer.in_speech
    finally:
        engine.close()
    assert not confirmed, "the burst was long enough for the 0.6 s window: it does not test the start window"
    partial_segments = {r.start_ms for r in results if isinstance(r, PartialResult) and r.text}
    final_segments = {r.start_ms for r in finals(results)}
    assert final_segments, "the burst gave no final before the flush"
    assert partial_segments <= final_segments, (partial_segments, final_segments)
