"""Codec lookup by name. Every call returns a new codec: one codec instance serves one session."""

from __future__ import annotations

from collections.abc import Callable

from harness.protocols.base import Codec
from harness.protocols.deepgram import DeepgramCodec
from harness.protocols.reference import ReferenceCodec

CODECS: dict[str, Callable[[], Codec]] = {
    "reference": ReferenceCodec,
    "deepgram": DeepgramCodec,
}


def get_codec(name: str) -> Codec:
    """A new codec for ``name``; ValueError listing the known names otherwise."""
    factory = CODECS.get(name)
    if factory is None:
        raise ValueError(f"unknown protocol {name!r}; known protocols: {', '.join(sorted(CODECS))}")
    return factory()


def known_protocols() -> list[str]:
    return sorted(CODECS)
