"""Hand-made histories for the check tests: a scripted-engine session with exact timings.

``scripted_history`` plays both sides on paper: the client sends paced audio, the "server" emits
a partial per word and a final every ``segment_words`` words, acks every 250 ms, then the
finalize final, the pipeline events and close 1000. Arguments bend it into a broken session.
All times are given in ms from ``T0``.
"""

from __future__ import annotations

from harness.history import FaultWindow, History
from harness.protocols.events import Ack, Closed, Error, Final, Partial, PipelineEvent, Ready, Word

T0 = 1_000_000_000_000
MS = 1_000_000
STEPS = ("refinement", "analytics", "tasks", "summary")
SCRIPT = "send the patient home with the new dosage and follow up next week"


def at(ms: float) -> int:
    return T0 + int(ms * MS)


def pipeline_names() -> list[str]:
    names = ["session_finalized"]
    for s in STEPS:
        names += [f"{s}_started", f"{s}_ready"]
    return names + ["post_transcription_reveal", "dashboard_refresh"]


def scripted_history(
    n_words: int = 10,
    script: str = SCRIPT,
    emitted: list[str] | None = None,
    word_ms: int = 300,
    segment_words: int = 5,
    chunk_ms: int = 100,
    start_ms: float = 50.0,
    final_delay_ms: float = 40.0,
    partial_delay_ms: float = 20.0,
    create_ms: float = 20.0,
    finalize: bool = True,
    pipeline: list[str] | None = None,
    close_code: int | None = 1000,
    session_id: str = "s-1",
    speech_onset_ms: float = 0.0,
    suppress_partials: bool = False,
) -> History:
    """A healthy scripted session unless told otherwise.

    ``emitted``: the words the server emits (default: the script cycled over ``n_words``), so a
    lost or doubled word is a shorter or longer list. ``pipeline``: event names (default: all).
    ``suppress_partials``: no partials after the first final (the ``stream-gap`` symptom).
    """
    words_script = script.split()
    expected = [words_script[i % len(words_script)] for i in range(n_words)]
    emitted = expected if emitted is None else emitted
    h = History(
        session_id=session_id,
        meta={"engine": "scripted", "script": script, "expected_text": " ".join(expected),
              "speech_onset_ms": speech_onset_ms, "audio_bytes": n_words * word_ms * 32, "scenario": "unit"},
        t0_ns=T0,
    )
    h.add("http", t_ns=at(create_ms), method="POST", path="/v1/sessions", status=201, latency_ms=create_ms, error=None)
    h.add("connect", t_ns=at(create_ms + 1), attempt=0, url="ws://127.0.0.1/v1/stream", last_segment_id=-1)
    h.add("connected", t_ns=at(create_ms + 6), attempt=0, latency_ms=5.0)
    h.add_event(Ready(session_id=session_id), t_ns=at(create_ms + 7))
    audio_ms = n_words * word_ms
    chunk = chunk_ms * 32
    for i, off in enumerate(range(0, audio_ms * 32, chunk)):
        h.add("audio_sent", t_ns=at(start_ms + i * chunk_ms), offset=off, length=min(chunk, audio_ms * 32 - off))
    # acks every 250 ms while audio flows
    t = 250.0
    while t < start_ms + audio_ms:
        received = min(int((t - start_ms) / chunk_ms + 1) * chunk, audio_ms * 32)
        h.add_event(Ack(received_offset=received, durable_offset=0), t_ns=at(t))
        t += 250.0
    # words: word i's audio is all sent when chunk containing its last byte goes out
    seg, seg_words, first_final_done = 0, [], False
    for i, text in enumerate(emitted):
        start, end = i * word_ms, (i + 1) * word_ms
        last_byte = end * 32 - 1
        sent_ms = start_ms + (last_byte // chunk) * chunk_ms
        seg_words.append(Word(text, start, end, 1.0))
        if not (suppress_partials and first_final_done):
            h.add_event(Partial(seg, " ".join(w.word for w in seg_words), seg_words[0].start_ms, end),
                        t_ns=at(sent_ms + partial_delay_ms))
        if len(seg_words) == segment_words and i < len(emitted) - 1:
            h.add_event(Final(seg, " ".join(w.word for w in seg_words), seg_words[0].start_ms, end, tuple(seg_words)),
                        t_ns=at(sent_ms + final_delay_ms))
            seg, seg_words, first_final_done = seg + 1, [], True
    end_audio = start_ms + audio_ms
    if finalize:
        h.add("control_sent", t_ns=at(end_audio + 10), message="finalize")
        if seg_words:
            h.add_event(Final(seg, " ".join(w.word for w in seg_words), seg_words[0].start_ms, seg_words[-1].end_ms,
                              tuple(seg_words)), t_ns=at(end_audio + 60))
        names = pipeline_names() if pipeline is None else pipeline
        for k, name in enumerate(names):
            h.add_event(PipelineEvent(name=name), t_ns=at(end_audio + 100 + 10 * k))
        if close_code is not None:
            h.add_event(Closed(close_code), t_ns=at(end_audio + 100 + 10 * len(names) + 5))
    return sort_records(h)


def add_fault(h: History, start_ms: float, end_ms: float | None, kind: str = "latency", target: str = "stream") -> None:
    h.faults.append(FaultWindow(kind=kind, params={"latency_ms": 1000}, start_ns=at(start_ms),
                                end_ns=None if end_ms is None else at(end_ms), target=target))


def audio_gap(h: History, ms: float, expected_offset: int | None) -> None:
    details = {} if expected_offset is None else {"expected_offset": expected_offset}
    h.add_event(Error(code="audio_gap", message="gap", retryable=True, details=details), t_ns=at(ms))


def sort_records(h: History) -> History:
    h.records.sort(key=lambda r: r.t_ns)
    return h
