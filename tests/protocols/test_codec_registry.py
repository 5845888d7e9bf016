from __future__ import annotations

import pytest

from harness.protocols import get_codec, known_protocols
from harness.protocols.base import Codec


def test_each_name_gives_a_fresh_codec() -> None:
    for name in known_protocols():
        a, b = get_codec(name), get_codec(name)
        assert isinstance(a, Codec) and a.name == name
        assert a is not b  # codecs keep per-session state: never shared


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown protocol 'vosk'; known protocols: assemblyai, deepgram, openai-realtime, reference, "
                       r"socketio, speechmatics, wyoming, wyoming-ws"):
        get_codec("vosk")
