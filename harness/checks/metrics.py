"""The metric names every check, SLO file and report agree on.

A Verdict's ``metrics`` maps one of these names to a list of raw samples (rates as 0/1 samples)
or a single number. SLOs aggregate every sample of a name across all verdicts of a run, so a
name means the same thing wherever it appears. Times are milliseconds measured on the harness's
monotonic clock, i.e. what a client of the backend experiences.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    definition: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("session_create_ms", "ms", "POST /v1/sessions sent -> its answer received, per session."),
        Metric("connect_ms", "ms", "WebSocket connection attempt started -> handshake completed, per connection."),
        Metric(
            "first_partial_ms",
            "ms",
            "The audio byte at the fixture's speech onset sent -> the first hypothesis (partial or final "
            "with text) received after it.",
        ),
        Metric(
            "final_latency_ms",
            "ms",
            "The last audio byte of a segment (its end_ms) sent -> that segment's final received, per "
            "segment (first copy; replays are not latency).",
        ),
        Metric("finalize_final_ms", "ms", "finalize sent -> the last final received after it."),
        Metric("pipeline_ms", "ms", "finalize sent -> the last pipeline event received."),
        Metric("session_success", "0/1", "1 for a session that completed with every check passing, else 0."),
        Metric("completeness", "0..1", "Baseline words found, in order, in the transcript / baseline words."),
        Metric("lost_words", "words", "Baseline words with no match in the transcript (alignment deletions and substitutions)."),
        Metric(
            "duplicated_words",
            "words",
            "Transcript words that the baseline does not have (alignment insertions): doubled runs and "
            "audio taken twice.",
        ),
        Metric("lost_segments", "segments", "Holes in the segment ids, and segments partially seen but never finalized."),
        Metric("wer", "0..", "Word error rate against the fixture's text after normalization (jiwer)."),
        Metric("recovery_ms", "ms", "A fault window's end -> the next ack received (where the server acks nothing: "
               "the next transcript result)."),
        Metric("fault_lost_words", "words", "Without resume: words of the clean baseline run inside a fault's window "
               "(harness.checks.reconnect) that the faulted session did not deliver."),
        Metric("fault_extra_words", "words", "Without resume: words inside a fault's window that the clean baseline "
               "run does not have."),
        Metric("added_latency_ms", "ms", "A latency under fault minus the same latency's median without fault."),
        Metric("partial_gap_ms", "ms", "Time between consecutive hypotheses (partials or finals) while speech flows."),
    )
}

LATENCY_METRICS: tuple[str, ...] = (
    "session_create_ms",
    "connect_ms",
    "first_partial_ms",
    "final_latency_ms",
    "finalize_final_ms",
    "pipeline_ms",
)


def describe(name: str) -> str:
    """The definition of a metric, or an empty string for a name outside the convention."""
    metric = METRICS.get(name)
    return metric.definition if metric else ""
