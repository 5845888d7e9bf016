"""Integrity checks: is every word there exactly once, in order, and every byte taken once?

The transcript is compared with a baseline at the word level: the scripted engine's expected
words (``expected_scripted_words``), a fault-free run's transcript, or the fixture's text. The
alignment is jiwer's (Levenshtein over normalized words, see ``harness.checks.text``):

* a baseline word with no match (deletion or substitution) is a *lost* word;
* a transcript word the baseline does not have (insertion) is a *duplicated* word: with the
  scripted engine a word can only appear because its audio was taken twice; a run that repeats
  the words next to it (``send the the patient``) is labelled ``doubled``, others ``extra``.

The baseline is the ``baseline`` argument, else ``meta.baseline_text``, else ``meta.expected_text``;
without one the word checks are ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jiwer

from harness.checks import text as _text
from harness.checks._common import session_label, short, verdict
from harness.checks.delivery import finals_once_per_connection
from harness.checks.verdict import Status, Verdict, safe_check
from harness.history import History
from harness.protocols.events import Ack, Error, Final

CONTEXT = 3  # words of context shown around a lost or duplicated run


def expected_scripted_words(
    script: str, audio_bytes: int, word_ms: int = 300, sample_rate: int = 16000
) -> list[str]:
    """The words the scripted engine emits for ``audio_bytes`` of audio taken exactly once.

    Word i covers bytes ``[i*W, (i+1)*W)`` and its text is ``script[i % len(script)]``; a
    trailing partial word is not emitted at finalize.
    """
    script_words = script.split()
    if not script_words:
        raise ValueError("the script is empty: the scripted engine needs at least one word")
    word_bytes = int(sample_rate * 2 * word_ms / 1000)
    return [script_words[i % len(script_words)] for i in range(audio_bytes // word_bytes)]


@dataclass(frozen=True)
class HypWord:
    word: str
    segment_id: int
    start_ms: int


def transcript_words(history: History) -> list[HypWord]:
    """The normalized words of the first copy of every final, in segment order, with their place."""
    out: list[HypWord] = []
    for final in history.unique_finals():
        if final.words:
            for w in final.words:
                out += [HypWord(n, final.segment_id, w.start_ms) for n in _text.words(w.word)]
        else:
            out += [HypWord(n, final.segment_id, final.start_ms) for n in _text.words(final.text)]
    return out


def _baseline(history: History, baseline: str | list[str] | None) -> list[str] | None:
    if baseline is None:
        baseline = history.meta.get("baseline_text", history.meta.get("expected_text"))
    if baseline is None:
        return None
    return _text.words(" ".join(baseline) if isinstance(baseline, list) else baseline)


@dataclass
class Alignment:
    ref: list[str]
    hyp: list[HypWord]
    hits: int
    lost: list[dict[str, Any]]  # runs of baseline words with no match
    extra: list[dict[str, Any]]  # runs of transcript words the baseline lacks


def align(ref: list[str], hyp: list[HypWord]) -> Alignment:
    """Word alignment of transcript against baseline, as runs of lost and extra words."""
    hyp_words = [h.word for h in hyp]
    if not ref or not hyp_words:
        lost = [_run(ref, 0, len(ref), hyp, 0, "deleted")] if ref else []
        extra = [_extra_run(hyp, 0, len(hyp), ref, 0)] if hyp_words else []
        return Alignment(ref, hyp, 0, lost, extra)
    out = jiwer.process_words(" ".join(ref), " ".join(hyp_words), jiwer.ReduceToListOfListOfWords(), jiwer.ReduceToListOfListOfWords())
    lost, extra = [], []
    for chunk in out.alignments[0]:
        if chunk.type in ("delete", "substitute"):
            lost.append(_run(ref, chunk.ref_start_idx, chunk.ref_end_idx, hyp, chunk.hyp_start_idx,
                             "deleted" if chunk.type == "delete" else "substituted",
                             hyp_words[chunk.hyp_start_idx:chunk.hyp_end_idx]))
        elif chunk.type == "insert":
            extra.append(_extra_run(hyp, chunk.hyp_start_idx, chunk.hyp_end_idx, ref, chunk.ref_start_idx))
    return Alignment(ref, hyp, out.hits, lost, extra)


def _run(ref: list[str], start: int, end: int, hyp: list[HypWord], hyp_at: int, kind: str,
         heard: list[str] | None = None) -> dict[str, Any]:
    near = hyp[min(hyp_at, len(hyp) - 1)] if hyp else None
    run: dict[str, Any] = {
        "kind": kind,
        "positions": [start, end - 1],
        "words": " ".join(ref[start:end]),
        "after": " ".join(ref[max(0, start - CONTEXT):start]),
        "near_segment": near.segment_id if near else None,
        "near_ms": near.start_ms if near else None,
    }
    if heard:
        run["heard_instead"] = " ".join(heard)
    return run


def _extra_run(hyp: list[HypWord], start: int, end: int, ref: list[str], ref_at: int) -> dict[str, Any]:
    words = [h.word for h in hyp]
    k = end - start
    run_words = words[start:end]
    beside_itself = all(
        (j > 0 and words[j - 1] == words[j]) or (j + 1 < len(words) and words[j + 1] == words[j]) for j in range(start, end)
    )
    doubled = words[max(0, start - k):start] == run_words or words[end:end + k] == run_words or beside_itself
    return {
        "kind": "doubled" if doubled else "extra",
        "positions": [start, end - 1],
        "words": " ".join(run_words),
        "context": " ".join(words[max(0, start - CONTEXT):min(len(words), end + CONTEXT)]),
        "segment_id": hyp[start].segment_id,
        "start_ms": hyp[start].start_ms,
        "baseline_position": ref_at,
    }


def _describe_lost(run: dict[str, Any]) -> str:
    a, b = run["positions"]
    where = f"word {a}" if a == b else f"words {a}-{b}"
    near = f", near segment {run['near_segment']} at {run['near_ms']} ms" if run["near_segment"] is not None else ""
    instead = f" (heard {run['heard_instead']!r})" if run.get("heard_instead") else ""
    return f"{run['words']!r} at {where}{instead} after {run['after']!r}{near}"


def _describe_extra(run: dict[str, Any]) -> str:
    return f"{run['kind']} {run['words']!r} in segment {run['segment_id']} at {run['start_ms']} ms ({run['context']!r})"


def completeness(history: History, baseline: str | list[str] | None = None, min_completeness: float = 1.0) -> Verdict:
    """Share of baseline words present, in order (``completeness``, ``lost_words``)."""
    name, who = "integrity.completeness", session_label(history)
    ref = _baseline(history, baseline)
    if ref is None:
        return verdict(name, Status.UNKNOWN, f"{who}: no baseline transcript to compare with", {})
    hyp = transcript_words(history)
    if not ref:
        return verdict(name, Status.PASS, f"{who}: empty baseline", {"completeness": 1.0, "lost_words": 0})
    al = align(ref, hyp)
    lost = sum(r["positions"][1] - r["positions"][0] + 1 for r in al.lost)
    ratio = al.hits / len(ref)
    metrics = {"completeness": round(ratio, 6), "lost_words": lost}
    evidence = {"lost": al.lost, "baseline_words": len(ref), "transcript_words": len(hyp),
                "transcript": " ".join(h.word for h in hyp)[:2000]}
    if ratio < min_completeness:
        return verdict(
            name, Status.FAIL,
            f"{who}: lost {lost} of {len(ref)} words (completeness {ratio:.1%}): "
            + short([_describe_lost(r) for r in al.lost], 3),
            metrics, evidence,
        )
    return verdict(name, Status.PASS, f"{who}: {al.hits} of {len(ref)} words present ({ratio:.1%})", metrics, evidence)


def duplicates(history: History, baseline: str | list[str] | None = None, max_duplicated: int = 0) -> Verdict:
    """Words present more often than in the baseline (``duplicated_words``)."""
    name, who = "integrity.duplicates", session_label(history)
    ref = _baseline(history, baseline)
    if ref is None:
        return verdict(name, Status.UNKNOWN, f"{who}: no baseline transcript to compare with", {})
    al = align(ref, transcript_words(history))
    count = sum(r["positions"][1] - r["positions"][0] + 1 for r in al.extra)
    metrics = {"duplicated_words": count}
    if count > max_duplicated:
        return verdict(
            name, Status.FAIL,
            f"{who}: {count} duplicated word(s) against the baseline: " + short([_describe_extra(r) for r in al.extra], 3),
            metrics, {"duplicated": al.extra},
        )
    return verdict(name, Status.PASS, f"{who}: no word taken twice", metrics, {"duplicated": al.extra})


def _session_ended(history: History) -> bool:
    """The session was finalized or closed normally, so every open segment should have its final."""
    if any(r.kind == "control_sent" and "finalize" in str(r.data.get("message", "")).lower() for r in history.records):
        return True
    return any(getattr(e, "code", None) == 1000 for _, e in history.events("closed"))


def segments(history: History) -> Verdict:
    """Segment ids 0, 1, 2 … with no holes, and no segment left with partials but no final."""
    name, who = "integrity.segments", session_label(history)
    finals = history.unique_finals()
    ids = [f.segment_id for f in finals]
    first = int(history.meta.get("first_segment_id", 0))
    holes = sorted(set(range(first, max(ids) + 1)) - set(ids)) if ids else []
    open_segments: list[int] = []
    if _session_ended(history):
        partial_ids = {p.segment_id for _, p in history.events("partial") if p.text.strip()}  # type: ignore[union-attr]
        open_segments = sorted(partial_ids - set(ids) - set(holes))
    metrics = {"lost_segments": len(holes) + len(open_segments)}
    evidence = {"segment_ids": ids, "holes": holes, "never_finalized": open_segments}
    if holes or open_segments:
        parts = []
        if holes:
            around = {h: ([i for i in ids if i < h][-1:] or [None])[0] for h in holes}
            parts.append("missing segment id(s) " + short([f"{h} (after {around[h]})" for h in holes]))
        if open_segments:
            texts = {p.segment_id: p.text for _, p in history.events("partial")}  # type: ignore[union-attr]
            parts.append("segment(s) with partials but no final " + short([f"{s} ({texts.get(s)!r})" for s in open_segments]))
        return verdict(name, Status.FAIL, f"{who}: " + "; ".join(parts), metrics, evidence)
    if not ids:
        return verdict(name, Status.UNKNOWN, f"{who}: no finals received", metrics, evidence)
    return verdict(name, Status.PASS, f"{who}: segments {ids[0]}..{ids[-1]} complete", metrics, evidence)


def replays(history: History) -> Verdict:
    """A final received again (replay after reconnect) must be identical to its first copy."""
    name, who = "integrity.replays", session_label(history)
    first: dict[int, tuple[int, Final]] = {}
    diffs, replayed = [], 0
    for t, f in history.finals():
        if f.segment_id not in first:
            first[f.segment_id] = (t, f)
            continue
        replayed += 1
        t0, f0 = first[f.segment_id]
        if (f0.text, f0.start_ms, f0.end_ms) != (f.text, f.start_ms, f.end_ms):
            diffs.append({
                "segment_id": f.segment_id,
                "first": {"t_ms": history.ms_since_t0(t0), "text": f0.text, "start_ms": f0.start_ms, "end_ms": f0.end_ms},
                "replay": {"t_ms": history.ms_since_t0(t), "text": f.text, "start_ms": f.start_ms, "end_ms": f.end_ms},
            })
    evidence = {"replayed_finals": replayed, "differing": diffs}
    if diffs:
        d = diffs[0]
        return verdict(
            name, Status.FAIL,
            f"{who}: {len(diffs)} replayed final(s) differ from the first copy; segment {d['segment_id']} was "
            f"{d['first']['text']!r} ({d['first']['start_ms']}-{d['first']['end_ms']} ms) at +{d['first']['t_ms']:.0f} ms, "
            f"replayed as {d['replay']['text']!r} ({d['replay']['start_ms']}-{d['replay']['end_ms']} ms) at +{d['replay']['t_ms']:.0f} ms",
            {}, evidence,
        )
    return verdict(name, Status.PASS, f"{who}: {replayed} replayed final(s), all identical", {}, evidence)


def ordering(history: History) -> Verdict:
    """Times never go backwards: segment k+1 starts at or after segment k ends; words in order."""
    name, who = "integrity.ordering", session_label(history)
    finals = history.unique_finals()
    problems: list[str] = []
    for prev, nxt in zip(finals, finals[1:]):
        if nxt.start_ms < prev.end_ms:
            problems.append(f"segment {nxt.segment_id} starts at {nxt.start_ms} ms before segment "
                            f"{prev.segment_id} ends at {prev.end_ms} ms")
    for f in finals:
        if f.end_ms < f.start_ms:
            problems.append(f"segment {f.segment_id} ends ({f.end_ms} ms) before it starts ({f.start_ms} ms)")
        for a, b in zip(f.words, f.words[1:]):
            if b.start_ms < a.start_ms:
                problems.append(f"segment {f.segment_id}: word {b.word!r} at {b.start_ms} ms comes after "
                                f"{a.word!r} at {a.start_ms} ms")
        for w in f.words:
            if w.end_ms < w.start_ms:
                problems.append(f"segment {f.segment_id}: word {w.word!r} ends ({w.end_ms} ms) before it starts ({w.start_ms} ms)")
    evidence = {"segments": [[f.segment_id, f.start_ms, f.end_ms] for f in finals], "problems": problems}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: time goes backwards: " + short(problems, 3), {}, evidence)
    if not finals:
        return verdict(name, Status.UNKNOWN, f"{who}: no finals to order", {}, evidence)
    return verdict(name, Status.PASS, f"{who}: {len(finals)} segment(s) in order", {}, evidence)


def _expected_offset(error: Error) -> int | None:
    value = error.details.get("expected_offset")
    return int(value) if value is not None else None


def audio_gaps(history: History) -> Verdict:
    """Every ``audio_gap`` error is closed: the client resent from its ``expected_offset``, or a
    frame it had already sent (held back by the network: a reordering) filled the gap, which a
    later ack past ``expected_offset`` proves (the server takes audio only in order)."""
    name, who = "integrity.audio_gaps", session_label(history)
    sends = history.of_kind("audio_sent")
    acks = [(t, e.received_offset) for t, e in history.events("ack") if isinstance(e, Ack)]
    gaps, unresolved = [], []
    for t, e in history.events("error"):
        if not isinstance(e, Error) or e.code != "audio_gap":
            continue
        expected = _expected_offset(e)
        gaps.append({"t_ms": history.ms_since_t0(t), "expected_offset": expected})
        if expected is None:
            unresolved.append(f"audio_gap at +{history.ms_since_t0(t):.0f} ms without expected_offset")
            continue
        covers = [r for r in sends if r.data["offset"] <= expected < r.data["offset"] + max(r.data["length"], 1)]
        resent = any(r.t_ns > t for r in covers)
        filled_late = bool(covers) and any(at > t and received > expected for at, received in acks)
        if not (resent or filled_late):
            unresolved.append(f"audio_gap at +{history.ms_since_t0(t):.0f} ms expecting offset {expected} was never resent")
    evidence = {"audio_gaps": gaps, "unresolved": unresolved}
    if unresolved:
        return verdict(name, Status.FAIL, f"{who}: audio skipped: " + short(unresolved, 3), {}, evidence)
    return verdict(name, Status.PASS, f"{who}: {len(gaps)} audio gap(s), each resent or filled by a late frame",
                   {}, evidence)


def final_recovery(history: History) -> Verdict:
    """Every final the stream was seen to lose (a hole in the segment ids) came back, and how:
    by its replay on the stream after a reconnect, or from the session's record (``GET``) when it
    was lost after finalize, where no reconnect can replay it (the client's notes say which)."""
    name, who = "integrity.final_recovery", session_label(history)
    missing: list[int] = []
    ways: dict[int, str] = {}
    for r in history.of_kind("note"):
        missing += [m for m in r.data.get("missing", []) if m not in missing]
        if r.data.get("recovered_segment") is not None:
            ways.setdefault(int(r.data["recovered_segment"]), str(r.data.get("recovered_from")))
    how = {"replay": "by replay on the stream", "record": "from the session's record (GET) after finalize"}
    came = [f"final {k} {how.get(ways[k], ways[k])}" for k in sorted(ways)]
    lost = sorted(set(missing) - set(ways))
    evidence = {"missing": sorted(set(missing)), "recovered": {str(k): v for k, v in sorted(ways.items())}}
    if lost:
        return verdict(name, Status.FAIL, f"{who}: final(s) {short(lost)} went missing on the stream and never came "
                       "back" + (f" ({'; '.join(came)})" if came else ""), {}, evidence)
    if not missing:
        return verdict(name, Status.PASS, f"{who}: no final went missing on the stream", {}, evidence)
    return verdict(name, Status.PASS, f"{who}: every lost final came back: " + "; ".join(came), {}, evidence)


def all_checks(history: History, baseline: str | list[str] | None = None, segment_ids: bool = True) -> list[Verdict]:
    """Every integrity check; one that raises is an ``unknown`` verdict naming it, and the others
    still run. ``segment_ids``: whether the protocol's finals carry the server's ids."""
    return [
        safe_check(completeness, history, baseline),
        safe_check(duplicates, history, baseline),
        safe_check(segments, history),
        safe_check(replays, history),
        safe_check(finals_once_per_connection, history, segment_ids),
        safe_check(ordering, history),
        safe_check(audio_gaps, history),
    ]
