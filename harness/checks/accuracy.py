"""Accuracy: word error rate of the transcript against the fixture's known text, with jiwer.

Normalization (the same for reference and hypothesis, see ``harness.checks.text``): lower-case;
strip every punctuation character; numbers as written (no spelling out, no digit conversion);
collapse whitespace. WER = (substitutions + deletions + insertions) / reference words, from
jiwer's Levenshtein alignment. An empty reference gives WER 0 for an empty transcript and
``inf`` otherwise (jiwer refuses an empty reference).
"""

from __future__ import annotations

import math

import jiwer

from harness.checks import text as _text
from harness.checks._common import session_label, verdict
from harness.checks.verdict import Status, Verdict
from harness.history import History

_WORDS = jiwer.ReduceToListOfListOfWords()


def word_error_rate(reference: str, hypothesis: str) -> tuple[float, dict[str, int]]:
    """WER after normalization, and the counts it came from."""
    ref, hyp = _text.normalized(reference), _text.normalized(hypothesis)
    if not ref:
        n = len(hyp.split())
        return (0.0 if n == 0 else math.inf), {"hits": 0, "substitutions": 0, "deletions": 0, "insertions": n, "reference_words": 0}
    if not hyp:
        n = len(ref.split())
        return 1.0, {"hits": 0, "substitutions": 0, "deletions": n, "insertions": 0, "reference_words": n}
    out = jiwer.process_words(ref, hyp, _WORDS, _WORDS)
    counts = {
        "hits": out.hits,
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "reference_words": out.hits + out.substitutions + out.deletions,
    }
    return out.wer, counts


def wer(history: History, reference: str | None = None, max_wer: float | None = None) -> Verdict:
    """WER of the session's transcript (first copy of each final) against ``reference``.

    ``reference`` defaults to ``meta.expected_text``; without one the verdict is ``unknown``.
    Fails only when ``max_wer`` is given and exceeded; the ``wer`` metric is there for SLOs.
    """
    name, who = "accuracy.wer", session_label(history)
    if reference is None:
        reference = history.meta.get("expected_text")
    if reference is None:
        return verdict(name, Status.UNKNOWN, f"{who}: no reference text to compute WER against", {})
    hypothesis = history.transcript()
    value, counts = word_error_rate(reference, hypothesis)
    evidence = {**counts, "reference": _text.normalized(reference), "hypothesis": _text.normalized(hypothesis)}
    metrics = {"wer": value if math.isfinite(value) else None}
    if not math.isfinite(value):
        return verdict(name, Status.FAIL, f"{who}: transcript {hypothesis[:60]!r} for a reference with no words", {}, evidence)
    text = (f"WER {value:.3f} ({counts['substitutions']} substituted, {counts['deletions']} deleted, "
            f"{counts['insertions']} inserted of {counts['reference_words']} words)")
    if max_wer is not None and value > max_wer:
        return verdict(name, Status.FAIL, f"{who}: {text} exceeds {max_wer:.3f}; heard {hypothesis[:80]!r}", metrics, evidence)
    return verdict(name, Status.PASS, f"{who}: {text}", metrics, evidence)
