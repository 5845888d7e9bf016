"""A synthetic one-hour scripted session, built on paper: what a long meeting's history looks like
to the checks (36,000 audio frames, 12,000 words, 2,400 finals, an ack every 200 ms)."""

from __future__ import annotations

from harness.checks.integrity import expected_scripted_words
from harness.history import History
from harness.protocols.events import Ack, Closed, Final, Partial, PipelineEvent, Ready, Word

SCRIPT = "we need to send the report to the client by friday"
T0 = 10**12
MS = 10**6
WORD_MS, CHUNK_MS, SEGMENT_WORDS = 300, 100, 5


def one_hour_history(seconds: int = 3600) -> tuple[History, list[str]]:
    """(history, expected words). Partials 15 ms and finals 25 ms after their audio is sent."""
    script = SCRIPT.split()
    h = History(session_id="one-hour", meta={"speech_onset_ms": 0, "fixture_id": "synthetic"}, t0_ns=T0)

    def at(ms: float) -> int:
        return T0 + int(ms * MS)

    h.add("http", t_ns=at(10), method="POST", path="/v1/sessions", status=201, latency_ms=10.0, error=None)
    h.add("connect", t_ns=at(11), attempt=0, url="ws://127.0.0.1/v1/stream", last_segment_id=-1)
    h.add("connected", t_ns=at(15), attempt=0, latency_ms=4.0)
    h.add_event(Ready(session_id="one-hour"), t_ns=at(16))
    words: list[Word] = []
    seg = 0
    n_chunks = seconds * 1000 // CHUNK_MS
    for c in range(n_chunks):
        t = 20 + c * CHUNK_MS
        h.add("audio_sent", t_ns=at(t), offset=c * CHUNK_MS * 32, length=CHUNK_MS * 32)
        end_ms = (c + 1) * CHUNK_MS
        if end_ms % WORD_MS == 0:
            i = end_ms // WORD_MS - 1
            words.append(Word(script[i % len(script)], i * WORD_MS, end_ms, 1.0))
            h.add_event(Partial(seg, " ".join(w.word for w in words), words[0].start_ms, end_ms), t_ns=at(t + 15))
            if len(words) == SEGMENT_WORDS:
                h.add_event(Final(seg, " ".join(w.word for w in words), words[0].start_ms, end_ms, tuple(words)),
                            t_ns=at(t + 25))
                seg, words = seg + 1, []
        if c % 2 == 1:
            h.add_event(Ack(received_offset=(c + 1) * CHUNK_MS * 32, durable_offset=0), t_ns=at(t + 5))
    end = 20 + n_chunks * CHUNK_MS
    h.add("control_sent", t_ns=at(end + 5), message="finalize")
    for k, name in enumerate(("session_finalized", "refinement_started", "refinement_ready", "dashboard_refresh")):
        h.add_event(PipelineEvent(name=name), t_ns=at(end + 50 + 10 * k))
    h.add_event(Closed(1000), t_ns=at(end + 100))
    h.records.sort(key=lambda r: r.t_ns)
    return h, expected_scripted_words(SCRIPT, n_chunks * CHUNK_MS * 32, WORD_MS)
