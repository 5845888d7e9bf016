"""Audio fixtures, WAV validation, chunking and real-time pacing (no sockets here).

The wire format everywhere is 16 kHz mono signed 16-bit little-endian PCM: 32,000 bytes per
second, byte offset / 32 = milliseconds. ``read_pcm`` refuses anything else with an error that
names the file and exactly what is wrong, so a bad fixture never reaches a backend as noise.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import json
import math
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.paths import shipped_fixtures
from harness.errors import UsageError

SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2
BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_WIDTH

KINDS = frozenset({"utterance", "conversation", "silence", "noise", "telephone", "bad"})
FIXTURES_ENV = "HARNESS_FIXTURES"
DEFAULT_FIXTURES_DIR = shipped_fixtures()
MANIFEST_NAME = "manifest.json"

# WAVE format tags (mmreg.h) and the sub-format read from WAVE_FORMAT_EXTENSIBLE.
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class AudioFormatError(UsageError, ValueError):
    """A file is not 16-bit mono PCM WAV at the expected rate; the message names file and fault."""


# --------------------------------------------------------------------------------------------
# Manifest


@dataclass(frozen=True)
class Turn:
    """One speaker turn of a conversation fixture, with its place in the file."""

    voice: str
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Fixture:
    """One audio file and what is known about it (the reference text, where speech starts)."""

    id: str
    file: str
    text: str
    voice: str
    duration_s: float
    speech_onset_s: float | None  # None: there is no speech in the file
    sha256: str
    kind: str
    sample_rate: int = SAMPLE_RATE
    speech_end_s: float | None = None
    defect: str | None = None  # kind "bad" only: what is wrong with the file
    domain: str | None = None  # meeting, medical, support
    turns: tuple[Turn, ...] = ()
    path: Path = field(default=Path(), compare=False)  # resolved against the manifest's folder

    @property
    def speech_onset_ms(self) -> int | None:
        return None if self.speech_onset_s is None else round(self.speech_onset_s * 1000)

    def pcm(self) -> bytes:
        """The file's PCM frames, validated at the fixture's own sample rate."""
        return read_pcm(self.path, sample_rate=self.sample_rate)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "file": self.file,
            "kind": self.kind,
            "text": self.text,
            "voice": self.voice,
            "sample_rate": self.sample_rate,
            "duration_s": self.duration_s,
            "speech_onset_s": self.speech_onset_s,
            "speech_end_s": self.speech_end_s,
            "sha256": self.sha256,
        }
        if self.defect is not None:
            out["defect"] = self.defect
        if self.domain is not None:
            out["domain"] = self.domain
        if self.turns:
            out["turns"] = [t.__dict__.copy() for t in self.turns]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path) -> Fixture:
        fid = data.get("id", "<no id>")
        required = ("id", "file", "text", "voice", "duration_s", "speech_onset_s", "sha256", "kind")
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"fixture {fid!r} in {folder / MANIFEST_NAME}: missing field(s) {', '.join(missing)}")
        if data["kind"] not in KINDS:
            raise ValueError(
                f"fixture {fid!r} in {folder / MANIFEST_NAME}: unknown kind {data['kind']!r} "
                f"(known: {', '.join(sorted(KINDS))})"
            )
        turns = tuple(Turn(**t) for t in data.get("turns", ()))
        return cls(
            id=data["id"],
            file=data["file"],
            text=data["text"],
            voice=data["voice"],
            duration_s=float(data["duration_s"]),
            speech_onset_s=data["speech_onset_s"],
            sha256=data["sha256"],
            kind=data["kind"],
            sample_rate=int(data.get("sample_rate", SAMPLE_RATE)),
            speech_end_s=data.get("speech_end_s"),
            defect=data.get("defect"),
            domain=data.get("domain"),
            turns=turns,
            path=folder / data["file"],
        )


@dataclass(frozen=True)
class Manifest:
    """The fixtures of one folder, in manifest order."""

    folder: Path
    fixtures: tuple[Fixture, ...]
    generator: dict[str, Any] = field(default_factory=dict)

    def get(self, fixture_id: str) -> Fixture:
        for f in self.fixtures:
            if f.id == fixture_id:
                return f
        raise KeyError(f"no fixture {fixture_id!r} in {self.folder / MANIFEST_NAME}; known: {', '.join(self.ids())}")

    def of_kind(self, kind: str) -> list[Fixture]:
        if kind not in KINDS:
            raise ValueError(f"unknown fixture kind {kind!r} (known: {', '.join(sorted(KINDS))})")
        return [f for f in self.fixtures if f.kind == kind]

    def ids(self) -> list[str]:
        return [f.id for f in self.fixtures]

    def __iter__(self) -> Iterator[Fixture]:
        return iter(self.fixtures)

    def __len__(self) -> int:
        return len(self.fixtures)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "generator": self.generator, "fixtures": [f.to_dict() for f in self.fixtures]}


def default_fixtures_dir() -> Path:
    """$HARNESS_FIXTURES if set (a user's own fixtures), else the repository's fixtures/audio."""
    env = os.environ.get(FIXTURES_ENV)
    return Path(env) if env else DEFAULT_FIXTURES_DIR


def load_manifest(dir: Path | str | None = None) -> Manifest:  # noqa: A002 - the documented name
    """Read ``manifest.json`` from ``dir`` (default: ``default_fixtures_dir()``)."""
    folder = Path(dir) if dir is not None else default_fixtures_dir()
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no fixture manifest at {path} (generate one with `harness fixtures --out {folder}`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("fixtures"), list):
        raise ValueError(f"{path}: expected an object with a 'fixtures' list")
    fixtures = tuple(Fixture.from_dict(d, folder) for d in data["fixtures"])
    seen: set[str] = set()
    for f in fixtures:
        if f.id in seen:
            raise ValueError(f"{path}: fixture id {f.id!r} appears twice")
        seen.add(f.id)
    return Manifest(folder=folder, fixtures=fixtures, generator=data.get("generator", {}))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify_manifest(manifest: Manifest) -> list[str]:
    """One line per fixture whose file is missing or whose sha256 differs from the manifest."""
    problems = []
    for f in manifest:
        if not f.path.is_file():
            problems.append(f"{f.id}: {f.file} is missing")
        elif (actual := sha256_file(f.path)) != f.sha256:
            problems.append(f"{f.id}: {f.file} sha256 {actual} does not match the manifest's {f.sha256}")
    return problems


# --------------------------------------------------------------------------------------------
# WAV validation


@dataclass(frozen=True)
class WavFormat:
    """What a RIFF/WAVE file's ``fmt `` chunk says, and where its ``data`` chunk lies."""

    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    data_offset: int | None = None  # None: the file has no data chunk
    data_size: int = 0  # as declared by the chunk header

    @property
    def is_float(self) -> bool:
        return self.format_tag == _WAVE_FORMAT_IEEE_FLOAT

    @property
    def is_pcm(self) -> bool:
        return self.format_tag == _WAVE_FORMAT_PCM


def parse_wav(data: bytes, name: str = "<bytes>") -> WavFormat:
    """Walk the RIFF chunks of a WAVE file: the ``fmt `` fields (resolving WAVE_FORMAT_EXTENSIBLE)
    and the position of ``data``.

    The stdlib ``wave`` module of Python 3.11 says only "unknown format: 3" for a float file and
    cannot read WAVE_FORMAT_EXTENSIBLE at all, so the chunks are walked here, which lets every
    refusal name its cause.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if data[:4] == b"RIFF" and len(data) < 12:
            raise AudioFormatError(f"{name}: truncated header ({len(data)} bytes, a RIFF/WAVE header needs 12)")
        raise AudioFormatError(f"{name}: not a WAV file (starts with {data[:12]!r})")
    fmt: WavFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if size < 16 or len(body) < 16:
                raise AudioFormatError(f"{name}: truncated header ('fmt ' chunk has {len(body)} of 16 bytes)")
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_FORMAT_EXTENSIBLE:
                if len(body) < 26:
                    raise AudioFormatError(f"{name}: truncated header (extensible 'fmt ' chunk lacks its sub-format)")
                tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the sub-format GUID
            fmt = WavFormat(format_tag=tag, channels=channels, sample_rate=rate, bits=bits)
        elif chunk_id == b"data" and fmt is not None:
            return WavFormat(fmt.format_tag, fmt.channels, fmt.sample_rate, fmt.bits, data_offset=pos + 8, data_size=size)
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    if fmt is None:
        raise AudioFormatError(f"{name}: truncated header (no complete 'fmt ' chunk in {len(data)} bytes)")
    return fmt


def format_problems(fmt: WavFormat, sample_rate: int = SAMPLE_RATE) -> list[str]:
    """Every way ``fmt`` differs from mono s16le PCM at ``sample_rate`` (empty when it fits)."""
    problems = []
    if fmt.channels == 2:
        problems.append("stereo: 2 channels, expected 1")
    elif fmt.channels != 1:
        problems.append(f"{fmt.channels} channels, expected 1")
    if fmt.sample_rate != sample_rate:
        problems.append(f"{fmt.sample_rate} Hz, expected {sample_rate}")
    if fmt.is_float:
        problems.append(f"{fmt.bits}-bit float, expected 16-bit PCM")
    elif not fmt.is_pcm:
        problems.append(f"format tag 0x{fmt.format_tag:04x} (compressed or unknown), expected 16-bit PCM")
    elif fmt.bits != 16:
        problems.append(f"{fmt.bits}-bit PCM, expected 16-bit PCM")
    return problems


def read_pcm(path: Path | str, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The PCM frames of a mono 16-bit WAV at ``sample_rate`` Hz; ``AudioFormatError`` otherwise."""
    path = Path(path)
    data = path.read_bytes()
    fmt = parse_wav(data, str(path))
    problems = format_problems(fmt, sample_rate)
    if problems:
        raise AudioFormatError(f"{path}: {'; '.join(problems)}")
    if fmt.data_offset is None:
        raise AudioFormatError(f"{path}: no 'data' chunk after the 'fmt ' chunk")
    frames = data[fmt.data_offset : fmt.data_offset + fmt.data_size]
    if len(frames) < fmt.data_size:
        raise AudioFormatError(f"{path}: truncated data (header declares {fmt.data_size} bytes, file holds {len(frames)})")
    return frames[: len(frames) - len(frames) % SAMPLE_WIDTH]  # whole samples only


def pcm_duration_s(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> float:
    return len(pcm) / (sample_rate * SAMPLE_WIDTH)


# --------------------------------------------------------------------------------------------
# Chunking


def chunk_bytes(chunk_ms: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Bytes in ``chunk_ms`` of audio: whole samples, so always even and at least one sample."""
    if not chunk_ms > 0:
        raise ValueError(f"chunk_ms must be positive, got {chunk_ms!r}")
    return max(1, round(sample_rate * chunk_ms / 1000)) * SAMPLE_WIDTH


def chunks(pcm: bytes, chunk_ms: float = 100, start: int = 0, sample_rate: int = SAMPLE_RATE) -> Iterator[tuple[int, bytes]]:
    """``(byte_offset, payload)`` pairs covering ``pcm[start:]``; the last one may be shorter."""
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"PCM length {len(pcm)} is odd: s16le audio comes in 2-byte samples")
    if start % SAMPLE_WIDTH or not 0 <= start <= len(pcm):
        raise ValueError(f"start offset {start} must be even and within 0..{len(pcm)}")
    size = chunk_bytes(chunk_ms, sample_rate)
    for offset in range(start, len(pcm), size):
        yield offset, pcm[offset : offset + size]


# --------------------------------------------------------------------------------------------
# Pacing


@dataclass(frozen=True)
class PacingStats:
    """Pacing error (actual send time minus ideal, in ms) over the chunks of new audio."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (the value at rank ceil(q/100 * n)); NaN for no values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Pacer:
    """The clock arithmetic shared by the asyncio and the blocking pacer.

    The first offset seen anchors the schedule: offset ``o`` is due ``(o - o0) / bytes_per_second
    / pace`` seconds after the first call. An offset at or below the highest one already paced is
    a resend (after a reconnect or an ``audio_gap``): it is due at once and is not counted as
    pacing error, since catching up is not lateness. ``pace=0`` never waits and records nothing.
    """

    def __init__(
        self,
        pace: float = 1.0,
        bytes_per_second: int = BYTES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not pace >= 0 or math.isinf(pace):
            raise ValueError(f"pace must be a finite number >= 0 (0 = as fast as possible), got {pace!r}")
        if bytes_per_second <= 0:
            raise ValueError(f"bytes_per_second must be positive, got {bytes_per_second!r}")
        self.pace = pace
        self.bytes_per_second = bytes_per_second
        self.clock = clock
        self._t0: float | None = None
        self._offset0 = 0
        self._high = -1
        self.errors_ms = array.array("d")  # compact: a soak can pace tens of thousands of chunks

    def due(self, offset: int) -> float | None:
        """When ``offset`` should go out (clock seconds), or None if it may go now unmeasured."""
        if self.pace == 0:
            return None
        if self._t0 is None:
            self._t0, self._offset0 = self.clock(), offset
        if offset <= self._high:
            return None
        return self._t0 + (offset - self._offset0) / self.bytes_per_second / self.pace

    def mark_sent(self, offset: int, due: float | None) -> None:
        """Record that ``offset`` went out now; ``due`` is what ``due(offset)`` returned.

        For drivers that keep their own loop (sans-I/O): ask ``due``, wait however they wait,
        send, then call this. ``wait_until``/``sleep_until`` do all three.
        """
        self._record(offset, due)

    def _record(self, offset: int, due: float | None) -> None:
        if due is not None:
            self.errors_ms.append((self.clock() - due) * 1000)
        self._high = max(self._high, offset)

    def stats(self) -> PacingStats:
        values = sorted(self.errors_ms)
        if not values:
            return PacingStats(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return PacingStats(
            count=len(values),
            mean_ms=sum(values) / len(values),
            p50_ms=percentile(values, 50),
            p95_ms=percentile(values, 95),
            p99_ms=percentile(values, 99),
            max_ms=values[-1],
        )


class RealtimePacer(Pacer):
    """Paces an asyncio sender: ``await pacer.wait_until(offset)`` before sending each chunk."""

    async def wait_until(self, offset: int) -> None:
        due = self.due(offset)
        if due is not None:
            delay = due - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
        self._record(offset, due)


class SyncPacer(Pacer):
    """Paces a blocking sender: ``pacer.sleep_until(offset)`` before sending each chunk.

    ``time.sleep`` is looked up on every call, so under gevent's monkey-patching (Locust) the
    patched, cooperative sleep is the one used.
    """

    def sleep_until(self, offset: int) -> None:
        due = self.due(offset)
        if due is not None:
            delay = due - self.clock()
            if delay > 0:
                time.sleep(delay)
        self._record(offset, due)
