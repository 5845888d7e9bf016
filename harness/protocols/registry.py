"""Codec loading: built-in names, installed plugins, and codecs the user writes.

``--protocol`` takes any of:

- a name registered in the ``transcription_harness.codecs`` entry-point group (the built-in
  ``reference`` and ``deepgram`` are registered there too, and found without the metadata in a
  bare checkout); a package adds a codec with one line of its pyproject.toml::

      [project.entry-points."transcription_harness.codecs"]
      mybackend = "mypackage.codec:MyCodec"

- ``module:Class``, a class in an importable module;
- ``path/to/codec.py:Class``, a class in a file (relative to the current directory).

The class is checked once, when loaded: it must have a ``name``, ``capabilities`` (known names
from ``harness.protocols.capabilities``) and every method of the Codec interface, or a CodecError
names what is missing. The drivers' flags (``supports_resume``, ``has_offsets``, ``sends_ready``,
``http_finalize``) are derived from the capabilities when the class does not set them. Every
:func:`get_codec` call returns a new instance: one codec instance serves one session.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from harness.errors import CodecError
from harness.protocols.base import Codec
from harness.protocols.capabilities import check_names

ENTRY_POINT_GROUP = "transcription_harness.codecs"
BUILTIN: dict[str, str] = {
    "reference": "harness.protocols.reference:ReferenceCodec",
    "deepgram": "harness.protocols.deepgram:DeepgramCodec",
    "assemblyai": "harness.protocols.assemblyai:AssemblyAICodec",
    "openai-realtime": "harness.protocols.openai_realtime:OpenAIRealtimeCodec",
    "speechmatics": "harness.protocols.speechmatics:SpeechmaticsCodec",
    "socketio": "harness.protocols.socketio:SocketIOCodec",
    "wyoming": "harness.protocols.wyoming:WyomingCodec",
    "wyoming-ws": "harness.protocols.wyoming:WyomingWsCodec",
}
METHODS = ("create_session_request", "parse_session_created", "local_session", "connect_request", "encode_audio",
           "encode_control", "decode", "closed", "close_events", "finalize_request", "get_session_request")
# driver flag -> the capability it follows when a codec does not set it itself
DRIVER_FLAGS = {"supports_resume": "replay", "has_offsets": "offsets", "sends_ready": "ready",
                "http_finalize": "http_finalize"}


def registered() -> dict[str, str]:
    """name -> "module:Class" of every built-in and installed codec."""
    out = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, ep.value)
    return out


def known_protocols() -> list[str]:
    return sorted(registered())


def _import_target(spec: str) -> Any:
    """The object a ``module:Class`` or ``file.py:Class`` spec names."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise CodecError(f"unknown protocol {spec!r}; known protocols: {', '.join(known_protocols())} "
                         "(or give module:Class or path/to/codec.py:Class)")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise CodecError(f"--protocol {spec!r}: codec file {path} does not exist")
        mod_name = f"harness_user_codec_{abs(hash(str(path)))}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise CodecError(f"--protocol {spec!r}: {path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module  # dataclasses and pickling look modules up by name
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise CodecError(f"--protocol {spec!r}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise CodecError(f"--protocol {spec!r}: module {where!r} cannot be imported: "
                             f"{type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise CodecError(f"--protocol {spec!r}: {where} has no {attr!r}") from None


def validate(cls: Any, spec: str) -> type:
    """``cls`` if it is a usable codec class (filling in derived driver flags); CodecError otherwise."""
    if not isinstance(cls, type):
        raise CodecError(f"--protocol {spec!r} names {cls!r}, not a class")
    problems = [f"no {m}()" for m in METHODS if not callable(getattr(cls, m, None))]
    if not isinstance(getattr(cls, "name", None), str):
        problems.append("no name (a str class attribute)")
    caps = getattr(cls, "capabilities", None)
    if not isinstance(caps, (frozenset, set, tuple, list)):
        problems.append("no capabilities (a frozenset of capability names, see docs/writing-a-codec.md)")
    if problems:
        raise CodecError(f"--protocol {spec!r}: {cls.__qualname__} is not a codec: {'; '.join(problems)}")
    try:
        cls.capabilities = check_names(caps, f"{cls.__qualname__}.capabilities")
    except ValueError as exc:
        raise CodecError(str(exc)) from None
    for flag, cap in DRIVER_FLAGS.items():
        if not hasattr(cls, flag):
            setattr(cls, flag, cap in cls.capabilities)
    if not hasattr(cls, "finalize_control"):
        cls.finalize_control = "finalize"
    return cls


@functools.lru_cache(maxsize=None)
def codec_class(spec: str) -> type:
    """The validated codec class for a name or spec (loaded once per process)."""
    known = registered()
    return validate(_import_target(known.get(spec, spec)), spec)


def get_codec(spec: str) -> Codec:
    """A new codec for ``spec`` (a name, module:Class or file.py:Class); CodecError otherwise."""
    return codec_class(spec)()


def capabilities_of(spec: str) -> frozenset[str]:
    return codec_class(spec).capabilities
