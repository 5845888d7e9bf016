"""A hand-made scripted-engine session for the load tests: paced audio, a final every five words,
finalize, the pipeline's events and close 1000. ``emitted`` bends it (a lost or doubled word)."""

from __future__ import annotations

from harness.history import History
from harness.protocols.events import Closed, Final, Partial, PipelineEvent, Ready, Word

T0 = 5_000_000_000_000
MS = 1_000_000
SCRIPT = "send the patient home with the new dosage and follow up next week"
WORD_MS = 300


def at(ms: float) -> int:
    return T0 + int(ms * MS)


def expected(n_words: int, script: str = SCRIPT) -> list[str]:
    words = script.split()
    return [words[i % len(words)] for i in range(n_words)]


def session(n_words: int = 10, emitted: list[str] | None = None, close_code: int = 1000,
            final_delay_ms: float = 40.0, wall_t0: float = 1_700_000_000.0) -> History:
    emitted = expected(n_words) if emitted is None else emitted
    h = History(session_id="s-1", meta={"speech_onset_ms": 0}, t0_ns=T0, wall_t0=wall_t0)
    h.add("http", t_ns=at(20), method="POST", path="/v1/sessions", status=201, latency_ms=20.0, error=None)
    h.add("connect", t_ns=at(21), attempt=0, url="ws://127.0.0.1/v1/stream", last_segment_id=-1)
    h.add("connected", t_ns=at(26), attempt=0, latency_ms=5.0)
    h.add_event(Ready(session_id="s-1"), t_ns=at(27))
    start, chunk_ms, audio_ms = 50.0, 100, n_words * WORD_MS
    for i, off in enumerate(range(0, audio_ms * 32, chunk_ms * 32)):
        h.add("audio_sent", t_ns=at(start + i * chunk_ms), offset=off, length=chunk_ms * 32)
    seg, words = 0, []
    for i, text in enumerate(emitted):
        end = (i + 1) * WORD_MS
        sent = start + ((end * 32 - 1) // (chunk_ms * 32)) * chunk_ms
        words.append(Word(text, i * WORD_MS, end, 1.0))
        h.add_event(Partial(seg, " ".join(w.word for w in words), words[0].start_ms, end), t_ns=at(sent + 20))
        if len(words) == 5 and i < len(emitted) - 1:
            h.add_event(Final(seg, " ".join(w.word for w in words), words[0].start_ms, end, tuple(words)),
                        t_ns=at(sent + final_delay_ms))
            seg, words = seg + 1, []
    end_audio = start + audio_ms
    h.add("control_sent", t_ns=at(end_audio + 10), message="finalize")
    if words:
        h.add_event(Final(seg, " ".join(w.word for w in words), words[0].start_ms, words[-1].end_ms, tuple(words)),
                    t_ns=at(end_audio + 60))
    h.add_event(PipelineEvent(name="session_finalized"), t_ns=at(end_audio + 100))
    h.add_event(PipelineEvent(name="dashboard_refresh"), t_ns=at(end_audio + 300))
    h.add_event(Closed(close_code), t_ns=at(end_audio + 310))
    h.records.sort(key=lambda r: r.t_ns)
    return h
