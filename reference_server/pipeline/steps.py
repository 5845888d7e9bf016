"""The four post-transcription steps: pure, deterministic functions of a session's finals.

Each step takes a ``PipelineInput`` and returns a JSON-ready dict; none calls out to a service,
so the same transcript always gives the same results and a test can pin them exactly. The
orchestration (events, failures, exactly-once) lives elsewhere and calls ``STEPS`` in order.
Every step accepts an empty transcript (zero segments) and returns empty results for it.

The rules are heuristics for lower-case ASR output, written down where they are applied.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class PipelineInput:
    finals: list[dict]  # {segment_id, text, start_ms, end_ms, words: [{word, start_ms, end_ms, confidence}]}
    audio_ms: int
    refined: dict | None = None  # output of refinement, filled in for the later steps


# --------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class _Tok:
    text: str  # as displayed (case kept, surrounding punctuation dropped)
    norm: str  # lower case, for matching

    @classmethod
    def of(cls, raw: str) -> _Tok | None:
        text = raw.strip(".,;:!?\"()[]{}")
        norm = re.sub(r"[^\w'-]", "", text.lower()).strip("'-")
        return cls(text, norm) if norm else None


def _tokens(text: str) -> list[_Tok]:
    return [t for t in map(_Tok.of, text.split()) if t is not None]


def _segment_text(final: dict, index: int) -> str:
    if not isinstance(final, dict):
        raise ValueError(f"final #{index} is a {type(final).__name__}, expected a dict")
    text = final.get("text")
    if isinstance(text, str):
        return text
    words = final.get("words")
    if isinstance(words, list):
        return " ".join(str(w.get("word", "")) for w in words if isinstance(w, dict))
    raise ValueError(f"final #{index} (segment_id={final.get('segment_id')!r}) has neither 'text' nor 'words'")


def _ms(final: dict, key: str, index: int) -> int:
    if not isinstance(final, dict):
        raise ValueError(f"final #{index} is a {type(final).__name__}, expected a dict")
    value = final.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"final #{index} (segment_id={final.get('segment_id')!r}) has no numeric {key!r}: {value!r}")
    return int(value)


def _span(final: dict, index: int) -> tuple[int, int]:
    """Where the segment's speech is: its first word's start to its last word's end when the
    engine gives word times (a segment's own bounds include the silence an endpointer waited
    through), else the segment's bounds."""
    start, end = _ms(final, "start_ms", index), _ms(final, "end_ms", index)
    words = [w for w in final.get("words") or () if isinstance(w, dict)]
    times = [(w.get("start_ms"), w.get("end_ms")) for w in words]
    if times and all(isinstance(a, (int, float)) and isinstance(b, (int, float)) for a, b in times):
        return int(times[0][0]), int(times[-1][1])
    return start, end


# --------------------------------------------------------------------------------------------
# Refinement

FILLERS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "mm", "mhm"})
# "like" is a filler after these words ("so like we need…"), but not in "I would like to".
_LIKE_AFTER = frozenset({"so", "and", "but", "or", "well", "okay", "ok", "yeah"}) | FILLERS
_LIKE_KEPT_BEFORE = frozenset({"to", "that", "this", "i", "when", "if", "what", "how"})
_APPROX_AFTER = frozenset({"was", "is", "were", "it's", "that's", "about", "took", "takes"})
_NUMBERS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty "
    "sixty seventy eighty ninety hundred thousand a an".split()
)
# "you know" is a verb after these ("do you know", "let you know"), a filler elsewhere.
_KNOW_VERB_AFTER = frozenset(
    {"do", "did", "don't", "didn't", "if", "whether", "as", "would", "will", "could", "can", "should",
     "let", "to", "that", "what", "how", "when", "where", "who", "why", "you'll", "we'll", "i'll", "think",
     "guess", "hope", "sure", "bet", "because"}
)
_KNOW_VERB_BEFORE = frozenset(
    {"what", "how", "where", "who", "when", "why", "whether", "if", "that", "about", "him", "her", "it",
     "them", "me", "us", "everything", "anything", "something", "nothing"}
)
# Doubled on purpose often enough ("I know that that is wrong", "had had") to leave alone.
_REPEAT_OK = frozenset({"that", "had"})
_INTERROGATIVES = frozenset(
    "what where when why who whom whose which how is are am was were do does did can could will would "
    "should shall isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't wouldn't "
    "shouldn't".split()
)
_PROPER = {
    w: w.capitalize()
    for w in "monday tuesday wednesday thursday friday saturday sunday january february march april june "
    "july august september october november december".split()
}
_FIRST_PERSON = {"i": "I", "i'm": "I'm", "i'll": "I'll", "i've": "I've", "i'd": "I'd"}


def _drop_fillers(toks: list[_Tok]) -> tuple[list[_Tok], int]:
    out: list[_Tok] = []
    removed = 0
    i = 0
    while i < len(toks):
        t = toks[i]
        prev = out[-1].norm if out else None
        nxt = toks[i + 1].norm if i + 1 < len(toks) else None
        after = toks[i + 2].norm if i + 2 < len(toks) else None
        if t.norm in FILLERS:
            removed += 1
            i += 1
            continue
        if t.norm == "like" and nxt is not None and (
            ((prev is None or prev in _LIKE_AFTER) and nxt not in _LIKE_KEPT_BEFORE)  # "so like we…"
            or (prev in _APPROX_AFTER and (nxt in _NUMBERS or nxt.isdigit()))  # "it was like ten…"
            or nxt in FILLERS  # "like um"
        ):
            removed += 1
            i += 1
            continue
        if t.norm == "you" and nxt == "know" and prev not in _KNOW_VERB_AFTER and after not in _KNOW_VERB_BEFORE:
            removed += 2
            i += 2
            continue
        out.append(t)
        i += 1
    return out, removed


def _collapse_repeats(toks: list[_Tok]) -> tuple[list[_Tok], int]:
    out: list[_Tok] = []
    for t in toks:
        if out and out[-1].norm == t.norm and t.norm not in _REPEAT_OK:
            continue
        out.append(t)
    return out, len(toks) - len(out)


def _is_name(tok: _Tok) -> bool:
    """A word that can address someone ("john can you…"): alphabetic and not a common word."""
    return tok.norm.isalpha() and len(tok.norm) > 1 and tok.norm not in _COMMON_WORDS


_OPENERS = frozenset({"so", "okay", "ok", "and", "hey", "hi", "well", "now", "alright", "right"})


def _vocative(toks: list[_Tok]) -> int | None:
    """Where the name is when a sentence opens by addressing someone, then asking them to do
    something ("so john can you…" -> 1); None otherwise."""
    at = 0
    while at < len(toks) and toks[at].norm in _OPENERS:
        at += 1
    if len(toks) - at < 3 or not _is_name(toks[at]):
        return None
    match = _match_trigger(toks, at + 1)
    return at if match is not None and _TRIGGERS[match[0]] == "addressee" else None


def _sentence(toks: list[_Tok]) -> str:
    """Casing and punctuation for one sentence: "so john can you…" -> "So John, can you…?"."""
    words = [_FIRST_PERSON.get(t.norm) or _PROPER.get(t.norm) or t.text for t in toks]
    body = 0
    name = _vocative(toks)
    if name is not None:
        words[name] = words[name][:1].upper() + words[name][1:] + ","
        body = name + 1
    first = toks[body].norm
    nxt = toks[body + 1].norm if body + 1 < len(toks) else None
    question = first in _INTERROGATIVES and nxt != "not"  # "do not forget…" is an instruction
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words) + ("?" if question else ".")


SENTENCE_GAP_MS = 500  # segments closer than this are one sentence cut by a forced or early final


def _sentences(finals: list[dict]) -> list[list[int]]:
    """Indexes of the finals grouped into sentences: a new one starts after a pause."""
    groups: list[list[int]] = []
    last_end: int | None = None
    for i, final in enumerate(finals):
        start, end = _span(final, i)
        if last_end is None or start - last_end >= SENTENCE_GAP_MS:
            groups.append([])
        groups[-1].append(i)
        last_end = end
    return groups


def refinement(inp: PipelineInput) -> dict[str, Any]:
    """Fillers out, stutters collapsed, casing and end punctuation in.

    Segments that follow each other without a pause (a final forced by ``max_segment_s``, or
    the scripted engine's fixed-size segments) are joined into one sentence; each refined
    segment lists the ``segment_ids`` it covers.
    """
    segments = []
    fillers = repeats = 0
    for group in _sentences(inp.finals):
        raw = [tok for i in group for tok in _tokens(_segment_text(inp.finals[i], i))]
        toks, dropped = _drop_fillers(raw)
        toks, doubled = _collapse_repeats(toks)
        fillers += dropped
        repeats += doubled
        if not toks:
            continue  # fillers only say nothing
        ids = [inp.finals[i].get("segment_id", i) for i in group]
        segments.append(
            {
                "segment_id": ids[0],
                "segment_ids": ids,
                "text": _sentence(toks),
                "start_ms": _ms(inp.finals[group[0]], "start_ms", group[0]),
                "end_ms": _ms(inp.finals[group[-1]], "end_ms", group[-1]),
            }
        )
    return {
        "text": " ".join(s["text"] for s in segments),
        "segments": segments,
        "removed": {"fillers": fillers, "repeats": repeats},
    }


# --------------------------------------------------------------------------------------------
# Analytics

PAUSE_MS = 1000  # a gap between segments longer than this is a pause


def analytics(inp: PipelineInput) -> dict[str, Any]:
    """Duration, word count, speaking rate over speech time, pauses between segments, confidence.

    Speech time and pauses come from word times where the engine gives them (see ``_span``).
    """
    word_count = 0
    confidences: list[float] = []
    speech_ms = 0
    spans: list[tuple[Any, int, int]] = []
    for i, final in enumerate(inp.finals):
        start, end = _span(final, i)
        words = final.get("words")
        if isinstance(words, list) and words:
            word_count += len(words)
            confidences += [float(w["confidence"]) for w in words if isinstance(w, dict) and isinstance(w.get("confidence"), (int, float))]
        else:
            word_count += len(_tokens(_segment_text(final, i)))
        speech_ms += max(0, end - start)
        spans.append((final.get("segment_id", i), start, end))
    gaps = [
        {"after_segment_id": a_id, "start_ms": a_end, "end_ms": b_start, "duration_ms": b_start - a_end}
        for (a_id, _a_start, a_end), (_b_id, b_start, _b_end) in zip(spans, spans[1:])
        if b_start - a_end > PAUSE_MS
    ]
    return {
        "duration_s": round(max(0, inp.audio_ms) / 1000, 3),
        "speech_s": round(speech_ms / 1000, 3),
        "word_count": word_count,
        "speaking_rate_wpm": round(word_count / (speech_ms / 60_000), 1) if speech_ms else 0.0,
        "pauses": {"count": len(gaps), "longest_ms": max((g["duration_ms"] for g in gaps), default=0), "gaps": gaps},
        "mean_confidence": round(sum(confidences) / len(confidences), 4) if confidences else None,
        "segments": len(inp.finals),
    }


# --------------------------------------------------------------------------------------------
# Tasks

# Phrase -> whose task it is: "speaker" (first person), "addressee" (the person named before it,
# if any), or None (the group: "we need to", "let's").
_TRIGGERS: dict[tuple[str, ...], str | None] = {
    ("we", "need", "to"): None,
    ("we", "have", "to"): None,
    ("we", "should"): None,
    ("we", "must"): None,
    ("we", "will"): None,
    ("we'll",): None,
    ("let's",): None,
    ("let", "us"): None,
    ("i", "will"): "speaker",
    ("i'll",): "speaker",
    ("i", "need", "to"): "speaker",
    ("i", "have", "to"): "speaker",
    ("i'm", "going", "to"): "speaker",
    ("i", "am", "going", "to"): "speaker",
    ("let", "me"): "speaker",
    ("please",): "addressee",
    ("can", "you"): "addressee",
    ("could", "you"): "addressee",
    ("would", "you"): "addressee",
    ("will", "you"): "addressee",
    ("you", "need", "to"): "addressee",
    ("you", "should"): "addressee",
    ("make", "sure"): "addressee",
    ("don't", "forget", "to"): "addressee",
    ("remember", "to"): "addressee",
}
_LONGEST_FIRST = sorted(_TRIGGERS, key=len, reverse=True)
# Phrases that are themselves the action ("make sure the build passes"), kept in the item's text.
_ACTION_PHRASES = frozenset({("make", "sure"), ("don't", "forget", "to"), ("remember", "to")})
_ADVERBS = frozenset({"also", "really", "still", "just", "definitely", "all", "actually", "then", "quickly"})
_WH = frozenset({"what", "how", "where", "when", "why", "who", "which", "whom", "whose"})
# An action item ends at the next trigger or at one of these clause breaks.
_BREAKS = frozenset({"yes", "no", "okay", "ok", "thanks", "thank", "but", "so", "because"})
_DANGLING = frozenset({"and", "or", "then", "also", "to"})

_NUM = r"(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|\d+)"
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_DUE = re.compile(
    r"\b(?:(?:by|before|until|on)\s+)?(?:"
    r"(?:the\s+)?end\s+of\s+(?:the\s+)?(?:day|week|month|quarter|year)"
    r"|eod|noon|midnight"
    r"|(?:tomorrow|today|tonight)(?:\s+(?:morning|afternoon|evening|night))?"
    r"|(?:next|this)\s+(?:week|month|quarter|year|morning|afternoon|evening|" + _DAYS + r")"
    r"|(?:" + _DAYS + r")(?:\s+(?:morning|afternoon|evening))?"
    r"|(?:within|in)\s+" + _NUM + r"\s+(?:hours?|days?|weeks?|months?)"
    r")\b",
    re.IGNORECASE,
)


def _match_trigger(toks: list[_Tok], i: int) -> tuple[tuple[str, ...], int] | None:
    """The trigger phrase starting at ``toks[i]`` and the index just past it, or None.

    An adverb may sit inside the phrase ("we also need to", "I will just check").
    """
    if i > 0 and toks[i - 1].norm in _WH and toks[i].norm in {"can", "could", "would", "will"}:
        return None  # "how can you…" asks, it does not request
    for phrase in _LONGEST_FIRST:
        k = i
        for n, word in enumerate(phrase):
            while n > 0 and k < len(toks) and toks[k].norm in _ADVERBS and toks[k].norm != word:
                k += 1
            if k >= len(toks) or toks[k].norm != word:
                break
            k += 1
        else:
            while k < len(toks) and toks[k].norm in _ADVERBS:
                k += 1
            return phrase, k
    return None


def _due(text: str) -> str | None:
    """The first deadline phrase in an action item, as written ("by Friday", "next week")."""
    m = _DUE.search(text)
    return m.group(0) if m else None


def _items_in(segment: dict) -> list[dict[str, Any]]:
    toks = _tokens(segment["text"])
    name = _vocative(toks)
    addressee = None if name is None else toks[name].text[:1].upper() + toks[name].text[1:]
    found: list[tuple[int, int, tuple[str, ...]]] = []  # (trigger start, item start, trigger)
    i = 0
    while i < len(toks):
        match = _match_trigger(toks, i)
        if match is None:
            i += 1
            continue
        phrase, past = match
        found.append((i, i if phrase in _ACTION_PHRASES else past, phrase))
        i = past + 1  # "please make sure X": one item, "make sure X"
    items = []
    for n, (_at, start, phrase) in enumerate(found):
        end = found[n + 1][0] if n + 1 < len(found) else len(toks)
        for k in range(start + 1, end):
            if toks[k].norm in _BREAKS:
                end = k
                break
        while end > start and toks[end - 1].norm in _DANGLING:
            end -= 1  # "meet next week and | I will…": the "and" belongs to neither
        action = [t.text for t in toks[start:end]]
        if not action:
            continue  # a trailing "please" asks for nothing
        text = " ".join(action)
        text = text[:1].upper() + text[1:]
        owner = _TRIGGERS[phrase]
        items.append(
            {
                "text": text,
                "owner": addressee if owner == "addressee" else owner,
                "due": _due(text),
                "segment_id": segment["segment_id"],
                "trigger": " ".join(phrase),
            }
        )
    return items


def tasks(inp: PipelineInput) -> dict[str, Any]:
    """Action items ("we need to…", "please…", "can you…", "I will…") with owner and due phrase."""
    refined = inp.refined if inp.refined is not None else refinement(inp)
    return {"items": [item for seg in refined["segments"] for item in _items_in(seg)]}


# --------------------------------------------------------------------------------------------
# Summary

_COMMON_WORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't
    down during each else even ever every everyone everybody everything few for from further get gets got
    had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
    how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let let's like maybe me more
    most much must mustn't my myself no nor not now of off on once only or other ought our ours ourselves
    out over own please really same shall shan't she she'd she'll she's should shouldn't so some such than
    thank thanks that that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those though through to too under until up us very was wasn't we we'd we'll we're
    we've well were weren't what what's when when's where where's which while who who's whom why why's will
    with won't would wouldn't yes yeah okay ok you you'd you'll you're you've your yours yourself
    yourselves hey hi hello sure right good great also actually anyway still yet already one two
    team guys folks""".split()
) | FILLERS


def _summary_size(n: int) -> int:
    """1 sentence for up to 4, 2 for up to 9, 3 beyond: a summary should stay a glance."""
    return 0 if n == 0 else min(3, 1 + n // 5)


def summary(inp: PipelineInput) -> dict[str, Any]:
    """Extractive: the 1-3 sentences whose content words are most frequent, in original order.

    A sentence scores the sum of its content words' frequencies (relative to the most frequent
    word) over the square root of its length, so a long sentence is not chosen for length alone.
    Ties go to the earlier sentence.
    """
    refined = inp.refined if inp.refined is not None else refinement(inp)
    sentences = [s["text"] for s in refined["segments"]]
    content = [[t.norm for t in _tokens(s) if t.norm not in _COMMON_WORDS] for s in sentences]
    freq = Counter(w for words in content for w in words)
    top = max(freq.values(), default=1)
    scores = [
        sum(freq[w] / top for w in words) / math.sqrt(len(words)) if words else 0.0 for words in content
    ]
    k = _summary_size(len(sentences))
    chosen = sorted(sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:k])
    return {
        "text": " ".join(sentences[i] for i in chosen),
        "sentences": len(chosen),
        "segment_ids": [sid for i in chosen for sid in refined["segments"][i].get("segment_ids", [refined["segments"][i]["segment_id"]])],
    }


STEPS: list[tuple[str, Callable[[PipelineInput], dict]]] = [
    ("refinement", refinement),
    ("analytics", analytics),
    ("tasks", tasks),
    ("summary", summary),
]
