"""``harness codec-check``: try a codec before a whole suite depends on it.

Two checks, either or both:

- **live**: one short session through the asyncio driver, against the reference server started
  here (every built-in protocol has an endpoint there) or against ``--target URL`` (the user's own
  backend). Every frame the server sent is passed through the codec and tallied: frames the codec
  raised on, frames it turned into no event at all (ignored: often a message the codec does not
  know yet), and the events it made. With the ``scripted_engine`` capability the transcript must
  be the scripted words exactly; otherwise at least one final must arrive.
- **recorded**: ``--frames FILE``, frames the user recorded from their backend (browser devtools,
  ``websocat``, a proxy log), one per line: a text frame as it was received, or
  ``{"binary_b64": "..."}`` for a binary frame. Blank lines and lines starting with ``#`` are
  skipped. Each frame is decoded by a new codec in order and a frame that raises is reported with
  its line number, so a codec can be fixed against the backend's real traffic without a backend.

Exit 0 when nothing failed, 1 when the codec raised on a frame or the live session did not give
what it should, 2 on bad input (unknown codec, unreadable file).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError

SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel"
WORD_MS = 300
WORD_BYTES = WORD_MS * 32  # 16 kHz s16le, as the conformance suite's scripted audio
MAX_FRAMES_FILE_BYTES = 50 * 1024 * 1024


@dataclass
class FrameTally:
    """What a codec made of the frames it was given."""

    frames: int = 0
    events: Counter = field(default_factory=Counter)  # event class name -> count
    ignored: list[str] = field(default_factory=list)  # frames that gave no event (first few kept)
    ignored_count: int = 0
    errors: list[str] = field(default_factory=list)  # "line 7: ProtocolError: ..." / "frame 3: ..."

    def add(self, where: str, frame: bytes | str, decode: Any) -> list[Any]:
        self.frames += 1
        try:
            events = decode(frame)
        except Exception as exc:  # a codec's bug or a frame that breaks the protocol: both reported
            self.errors.append(f"{where}: {type(exc).__name__}: {exc}")
            return []
        if not events:
            self.ignored_count += 1
            if len(self.ignored) < 5:
                self.ignored.append(f"{where}: {_preview(frame)}")
        for event in events:
            self.events[type(event).__name__] += 1
        return events

    def lines(self) -> list[str]:
        made = ", ".join(f"{n} {k}" for k, n in sorted(self.events.items())) or "no events"
        out = [f"{self.frames} frame(s) decoded: {made}; {self.ignored_count} gave no event; "
               f"{len(self.errors)} raised"]
        out += [f"  raised   {e}" for e in self.errors[:20]]
        out += [f"  no event {e}" for e in self.ignored]
        return out


def _preview(frame: bytes | str, limit: int = 120) -> str:
    text = frame if isinstance(frame, str) else f"<{len(frame)} binary bytes: {frame[:16].hex()}...>"
    return text if len(text) <= limit else text[:limit] + "..."


class TappedCodec:
    """A codec that tallies every frame it decodes; everything else goes to the codec it wraps."""

    def __init__(self, codec: Any, tally: FrameTally) -> None:
        self._codec = codec
        self._tally = tally

    def decode(self, frame: bytes | str) -> list[Any]:
        where = f"frame {self._tally.frames + 1}"
        before = len(self._tally.errors)
        events = self._tally.add(where, frame, self._codec.decode)
        if len(self._tally.errors) > before:
            self._codec.decode(frame)  # raise it again, so the driver handles it as it would
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._codec, name)


# --- recorded frames --------------------------------------------------------------------------


def read_frames(path: Path) -> list[tuple[int, bytes | str]]:
    """(line number, frame) of every frame in a frames file; UsageError naming the bad line."""
    try:
        size = path.stat().st_size
        if size > MAX_FRAMES_FILE_BYTES:
            raise UsageError(f"--frames {path}: {size:,} bytes is more than the {MAX_FRAMES_FILE_BYTES:,} read")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--frames {path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--frames {path}: not UTF-8 text at byte {exc.start} (binary frames go in as "
                         '{"binary_b64": "..."} lines)') from None
    frames: list[tuple[int, bytes | str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith('{"binary_b64"'):
            try:
                frames.append((number, base64.b64decode(json.loads(stripped)["binary_b64"], validate=True)))
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"--frames {path}, line {number}: a binary_b64 line that is not "
                                 f'{{"binary_b64": "<base64>"}}: {exc}') from None
        else:
            frames.append((number, stripped))
    if not frames:
        raise UsageError(f"--frames {path}: no frames in it (one frame per line; see harness codec-check --help)")
    return frames


def check_recorded(spec: str, path: Path) -> FrameTally:
    from harness.protocols.registry import get_codec

    codec = get_codec(spec)
    tally = FrameTally()
    for number, frame in read_frames(path):
        tally.add(f"line {number}", frame, codec.decode)
    return tally


# --- one live session -------------------------------------------------------------------------


@dataclass
class LiveResult:
    where: str
    tally: FrameTally
    problems: list[str]
    transcript: str
    words_expected: list[str] | None

    def lines(self) -> list[str]:
        out = [f"live session against {self.where}:"]
        out += ["  " + line for line in self.tally.lines()]
        out.append(f"  transcript: {self.transcript!r}")
        if self.words_expected is not None:
            out.append(f"  expected (scripted engine): {' '.join(self.words_expected)!r}")
        out += [f"  FAIL {p}" for p in self.problems] or ["  ok"]
        return out


def scripted_pcm(words: int) -> bytes:
    pattern = bytes((i % 7) * 2 for i in range(64))  # never silent: a dropped chunk shows in a dump
    total = words * WORD_BYTES
    return (pattern * (total // len(pattern) + 1))[:total]


async def _live_session(spec: str, http_url: str, api_key: str, pcm: bytes, script: str | None,
                        pace: float, allow_remote: bool, stream_url: str | None = None) -> tuple[Any, FrameTally]:
    from harness.drivers.asyncio_driver import AsyncSessionClient
    from harness.drivers.session import SessionPlan
    from harness.history import History
    from harness.protocols import SessionParams, StreamTarget
    from harness.protocols.registry import get_codec

    tally = FrameTally()
    codec = TappedCodec(get_codec(spec), tally)
    params = SessionParams(engine="scripted", script=script) if script else SessionParams(engine="pocketsphinx")
    plan = SessionPlan(pcm=pcm, params=params, pace=pace, allow_remote=allow_remote, max_reconnects=0,
                       deadline_s=len(pcm) / 32_000 / max(pace, 0.1) + 30)
    target = StreamTarget(http_url=http_url, api_key=api_key, stream_base_url=stream_url)
    outcome = await AsyncSessionClient(codec, target, plan,
                                       History(meta={"protocol": spec})).run()
    return outcome, tally


def check_live(spec: str, *, target: str | None, api_key: str | None, fixture: str | None,
               allow_remote: bool = False, stream_url: str | None = None) -> LiveResult:
    from harness.audio import load_manifest
    from harness.checks.integrity import expected_scripted_words
    from harness.protocols.registry import capabilities_of, codec_class
    from harness.services import ReferenceServer

    scripted = "scripted_engine" in capabilities_of(spec)
    if scripted and fixture is None:
        pcm, script, pace = scripted_pcm(len(SCRIPT.split())), SCRIPT, 4.0
        expected: list[str] | None = expected_scripted_words(SCRIPT, len(pcm), WORD_MS)
    else:
        manifest = load_manifest()
        fx = manifest.get(fixture) if fixture else manifest.of_kind("utterance")[0]
        pcm, script, pace, expected = fx.pcm(), None, 1.0, None

    server = None
    try:
        if target is None:
            server = ReferenceServer(engine="scripted" if script else "pocketsphinx").start()
            server.wait_healthy()
            http_url, key, where = server.url, server.api_key, f"the reference server ({server.url})"
            if stream_url is None and getattr(codec_class(spec), "stream_transport", None) == "tcp":
                stream_url = server.wyoming_url  # its plain-TCP listener (Wyoming)
        else:
            http_url, key, where = target, api_key or os.environ.get("HARNESS_API_KEY", ""), target
        outcome, tally = asyncio.run(_live_session(spec, http_url, key, pcm, script, pace, allow_remote, stream_url))
    finally:
        if server is not None:
            server.stop()

    problems = []
    if tally.errors:
        problems.append(f"the codec raised on {len(tally.errors)} of {tally.frames} frame(s) the server sent")
    if not outcome.ok:
        problems.append(f"the session did not complete: {outcome.error or f'close code {outcome.close_code}'}")
    if expected is not None and outcome.transcript.split() != expected:
        problems.append(f"the transcript is not the scripted words ({len(outcome.transcript.split())} of "
                        f"{len(expected)} words, or in another order)")
    if expected is None and not tally.events.get("Final"):
        problems.append("no final arrived (the codec made no Final event of any frame)")
    return LiveResult(where, tally, problems, outcome.transcript, expected)


# --- the command ------------------------------------------------------------------------------


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", required=True,
                   help="the codec: a built-in or installed name, module:Class or path/to/codec.py:Class")
    p.add_argument("--frames", type=Path, help="frames recorded from your backend, one per line "
                   '(a text frame as received, or {"binary_b64": "..."})')
    p.add_argument("--target", help="run the live session against this backend instead of the reference server")
    p.add_argument("--api-key", help="API key for --target (default: $HARNESS_API_KEY)")
    p.add_argument("--stream-url", help="where the stream goes when not to --target's address "
                   "(tcp://host:port for Wyoming over TCP)")
    p.add_argument("--fixture", help="audio fixture id for the live session (default: scripted audio when the "
                   "codec has the scripted_engine capability, else the first fixture with a transcript)")
    p.add_argument("--no-live", action="store_true", help="only check --frames; start no session")
    p.add_argument("--allow-remote", action="store_true", help="allow a --target that is not loopback")


def main(args: argparse.Namespace) -> int:
    from harness.protocols.registry import codec_class

    codec_class(args.protocol)  # an unknown or broken codec is a CodecError (exit 2) before anything runs
    if args.no_live and args.frames is None:
        raise UsageError("--no-live leaves nothing to check: give --frames FILE too")
    failed = False
    if args.frames is not None:
        tally = check_recorded(args.protocol, args.frames)
        print(f"recorded frames from {args.frames}:")
        print("\n".join("  " + line for line in tally.lines()))
        failed |= bool(tally.errors)
    if not args.no_live:
        live = check_live(args.protocol, target=args.target, api_key=args.api_key, fixture=args.fixture,
                          allow_remote=args.allow_remote, stream_url=args.stream_url)
        print("\n".join(live.lines()))
        failed |= bool(live.problems)
    print(f"codec-check {args.protocol}: {'FAIL' if failed else 'PASS'}")
    return 1 if failed else 0
