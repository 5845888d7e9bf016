"""Text normalization shared by the accuracy and integrity checks.

The normalization (applied to reference and hypothesis alike, so neither side is favoured):

1. lower-case;
2. strip punctuation: every Unicode punctuation character is removed (``don't`` -> ``dont``,
   ``post-op`` -> ``postop``), so a refined transcript's casing and periods do not count as errors;
3. numbers as written: digits are not spelled out and number words are not turned into digits,
   because fixture texts are written the way the engine is expected to say them;
4. collapse whitespace and strip the ends.

It is built from jiwer's own transforms so that WER figures are comparable with other jiwer users.
"""

from __future__ import annotations

import jiwer

NORMALIZE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def words(text: str | None) -> list[str]:
    """The normalized words of ``text`` (empty for None or blank text)."""
    if not text or not text.strip():
        return []
    out = NORMALIZE(text)
    return [w for w in out[0] if w] if out else []


def normalized(text: str | None) -> str:
    return " ".join(words(text))
