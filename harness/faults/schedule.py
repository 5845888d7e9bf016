"""Fault schedules as data: which faults, when (triggers) and on which connections (targets).

A schedule is a list of steps; each step is a fault (any registered type, with its fields), a
trigger, an optional duration and a target. In TOML::

    [[fault]]
    type = "vendor_error"             # a registered fault type (harness.faults.base.known_faults())
    preset = "deepgram-net-0000"      # the fault's own fields, beside the step's keys
    at = { audio_ms = 2000 }          # trigger (default: "connect")
    target = { every = 2 }            # target (default: "all")
    duration_ms = 1500                # optional: stop it after this long (default: until the end)

and the same as Python values: ``Schedule.from_data({"fault": [{...}]})`` or
``Schedule([Step(VendorError(preset="deepgram-net-0000"), AfterAudio(ms=2000), target=Every(2))])``.

Triggers (``at``): ``"connect"``; ``{ audio_ms = N }`` or ``{ audio_bytes = N }`` of audio
received (or sent, for a client-side runner); ``{ elapsed_ms = N }`` after the connection opened;
``{ result = N }``: once the Nth transcript result went to the client; ``"finalize"``: when the
client asks to flush or end (``Finalize``, ``CloseStream``, ``Terminate``, ``EndOfStream``,
``input_audio_buffer.commit``, ``finalize``).

Targets (``target``): ``"all"``; ``{ nth = N }`` (the Nth connection, 1-based); ``{ every = N }``
(the Nth, 2Nth …); ``{ first = N }`` (connections 1..N); ``{ tag = "x" }`` (connections with that
tag: Deepgram's ``tag`` query parameter, or the proxy's tag header).

A file with an unknown fault, trigger, target or field is refused before anything starts, with
the line of the offending key and the names that are known (tomllib gives no line numbers, so
they are found in the text).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from harness.errors import UsageError
from harness.faults.base import Fault, fault_type, known_faults, parameters

BYTES_PER_MS = 32  # 16 kHz, mono, s16le: the default when the stream does not say otherwise


class ScheduleError(UsageError, ValueError):
    """A schedule that cannot run; the message names the file, the line and what is known."""


class Progress(Protocol):
    """What triggers read: one connection's (or one session's) progress so far."""

    audio_bytes: int
    bytes_per_ms: int
    results: int
    finalized: bool
    elapsed_ms: float


# --- triggers -----------------------------------------------------------------------------------
TRIGGERS: dict[str, type[Trigger]] = {}


class Trigger:
    """When a step's fault starts. ``key`` is its name in a schedule file."""

    key: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        TRIGGERS[cls.key] = cls

    def reached(self, p: Progress) -> bool:
        raise NotImplementedError

    def describe(self) -> str | dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class AtConnect(Trigger):
    key: ClassVar[str] = "connect"

    def reached(self, p: Progress) -> bool:
        return True

    def describe(self) -> str:
        return "connect"


@dataclass(frozen=True)
class AfterAudio(Trigger):
    """After ``ms`` of audio (at the stream's rate: 32 bytes per ms unless it says otherwise)."""

    key: ClassVar[str] = "audio_ms"
    ms: int

    def reached(self, p: Progress) -> bool:
        return p.audio_bytes >= self.ms * p.bytes_per_ms

    def describe(self) -> dict[str, Any]:
        return {"audio_ms": self.ms}


@dataclass(frozen=True)
class AfterBytes(Trigger):
    key: ClassVar[str] = "audio_bytes"
    n: int

    def reached(self, p: Progress) -> bool:
        return p.audio_bytes >= self.n

    def describe(self) -> dict[str, Any]:
        return {"audio_bytes": self.n}


@dataclass(frozen=True)
class AfterElapsed(Trigger):
    """``ms`` of wall time after the connection opened (the session started, for a runner)."""

    key: ClassVar[str] = "elapsed_ms"
    ms: int

    def reached(self, p: Progress) -> bool:
        return p.elapsed_ms >= self.ms

    def describe(self) -> dict[str, Any]:
        return {"elapsed_ms": self.ms}


@dataclass(frozen=True)
class AtResult(Trigger):
    """Once the ``n``-th transcript result (interim or final) was relayed."""

    key: ClassVar[str] = "result"
    n: int

    def reached(self, p: Progress) -> bool:
        return p.results >= self.n

    def describe(self) -> dict[str, Any]:
        return {"result": self.n}


@dataclass(frozen=True)
class AtFinalize(Trigger):
    key: ClassVar[str] = "finalize"

    def reached(self, p: Progress) -> bool:
        return p.finalized

    def describe(self) -> str:
        return "finalize"


# --- targets ------------------------------------------------------------------------------------
TARGETS: dict[str, type[Target]] = {}


class Target:
    """Which connections a step applies to (``index`` is 1-based, in order of arrival)."""

    key: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        TARGETS[cls.key] = cls

    def matches(self, index: int, tags: Sequence[str] = ()) -> bool:
        raise NotImplementedError

    def describe(self) -> str | dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class All(Target):
    key: ClassVar[str] = "all"

    def matches(self, index: int, tags: Sequence[str] = ()) -> bool:
        return True

    def describe(self) -> str:
        return "all"


@dataclass(frozen=True)
class Nth(Target):
    key: ClassVar[str] = "nth"
    n: int

    def matches(self, index: int, tags: Sequence[str] = ()) -> bool:
        return index == self.n

    def describe(self) -> dict[str, Any]:
        return {"nth": self.n}


@dataclass(frozen=True)
class Every(Target):
    key: ClassVar[str] = "every"
    n: int

    def matches(self, index: int, tags: Sequence[str] = ()) -> bool:
        return index % self.n == 0

    def describe(self) -> dict[str, Any]:
        return {"every": self.n}


@dataclass(frozen=True)
class First(Target):
    key: ClassVar[str] = "first"
    n: int

    def matches(self, index: int, tags: Sequence[str] = ()) -> bool:
        return index <= self.n

    def describe(self) -> dict[str, Any]:
        return {"first": self.n}


@dataclass(frozen=True)
class Tagged(Target):
    key: ClassVar[str] = "tag"
    tag: str

    def matches(self, index: int, tags: Sequence[str] = ()) -> bool:
        return self.tag in tags

    def describe(self) -> dict[str, Any]:
        return {"tag": self.tag}


# --- steps and schedules --------------------------------------------------------------------------
STEP_KEYS = ("type", "at", "target", "duration_ms")


@dataclass
class Step:
    """One fault of a schedule. ``duration_ms`` None: until the connection (or session) ends."""

    fault: Fault
    at: Trigger = field(default_factory=AtConnect)
    duration_ms: int | None = None
    target: Target = field(default_factory=All)

    def __post_init__(self) -> None:
        if self.duration_ms is not None and (isinstance(self.duration_ms, bool) or not isinstance(self.duration_ms, int)
                                             or self.duration_ms < 0):
            raise ValueError(f"duration_ms must be a whole number >= 0, got {self.duration_ms!r}")
        if self.duration_ms is not None and type(self.fault).momentary:
            raise ValueError(f"fault {self.fault.name!r} is over as soon as it happens: it takes no duration_ms")

    def describe(self) -> dict[str, Any]:
        """The step as data (what a report shows, and what :meth:`Schedule.from_data` reads back)."""
        out: dict[str, Any] = {"type": self.fault.name, **self.fault.params(), "at": self.at.describe(),
                               "target": self.target.describe()}
        if self.duration_ms is not None:
            out["duration_ms"] = self.duration_ms
        return out

    def fresh(self) -> Step:
        """A copy with a new fault object of the same parameters (a fault runs once)."""
        kwargs = {name: getattr(self.fault, name) for name in parameters(type(self.fault))}
        return dataclasses.replace(self, fault=type(self.fault)(**kwargs))


@dataclass
class Schedule:
    steps: list[Step] = field(default_factory=list)
    source: str = "<schedule>"

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def for_connection(self, index: int, tags: Sequence[str] = ()) -> list[Step]:
        """Fresh copies of the steps that target connection ``index`` (1-based)."""
        return [s.fresh() for s in self.steps if s.target.matches(index, tags)]

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.steps]

    # --- reading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScheduleError(f"cannot read fault schedule {p}: {exc.strerror or exc}") from exc
        return cls.from_toml(text, source=str(p))

    @classmethod
    def from_toml(cls, text: str, source: str = "<schedule>") -> Schedule:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScheduleError(f"{source}: not valid TOML: {exc}") from exc
        return cls.from_data(data, source=source, text=text)

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]], source: str = "<schedule>",
                  text: str | None = None) -> Schedule:
        """Python values: ``{"fault": [step, ...]}`` or the list of steps itself."""
        where = _Locator(text, source)
        if isinstance(data, Mapping):
            unknown = [k for k in data if k != "fault"]
            if unknown:
                raise ScheduleError(f"{where.at(None, unknown[0])}: unknown top-level key {unknown[0]!r}; "
                                    f"a schedule is a list of [[fault]] tables")
            items = data.get("fault", [])
        else:
            items = data
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            raise ScheduleError(f"{source}: 'fault' must be a list of tables ([[fault]]), got {type(items).__name__}")
        return cls([_step(i, item, where) for i, item in enumerate(items)], source)


def _step(i: int, item: Any, where: _Locator) -> Step:
    if not isinstance(item, Mapping):
        raise ScheduleError(f"{where.at(i, None)}: fault #{i + 1} must be a table, got {item!r}")
    name = item.get("type")
    if not isinstance(name, str):
        raise ScheduleError(f"{where.at(i, None)}: fault #{i + 1} has no 'type'; known faults: "
                            f"{', '.join(known_faults())}")
    try:
        cls = fault_type(name)
    except KeyError as exc:
        raise ScheduleError(f"{where.at(i, 'type')}: {exc.args[0]}") from None
    fields = parameters(cls)
    kwargs: dict[str, Any] = {}
    for key, value in item.items():
        if key in STEP_KEYS:
            continue
        if key not in fields:
            known = ", ".join([*fields, *STEP_KEYS[1:]]) or "none"
            raise ScheduleError(f"{where.at(i, key)}: fault {name!r} has no field {key!r}; its fields: {known}")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        fault = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        bad = next((k for k in kwargs if re.search(rf"\b{re.escape(k)}\b", str(exc))), "type")
        raise ScheduleError(f"{where.at(i, bad)}: fault {name!r}: {exc}") from None
    at = _choice(item.get("at", "connect"), TRIGGERS, "trigger", i, "at", where)
    target = _choice(item.get("target", "all"), TARGETS, "target", i, "target", where)
    try:
        return Step(fault, at, item.get("duration_ms"), target)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ScheduleError(f"{where.at(i, 'duration_ms')}: fault {name!r}: {exc}") from None


def _choice(value: Any, table: Mapping[str, type], what: str, i: int, key: str, where: _Locator) -> Any:
    """A trigger or target: a bare name (``"connect"``) or a one-key table (``{ audio_ms = 2000 }``)."""
    known = ", ".join(_shape(k, c) for k, c in table.items())
    if isinstance(value, str):
        cls = table.get(value)
        if cls is None:
            raise ScheduleError(f"{where.at(i, key)}: unknown {what} {value!r}; known {what}s: {known}")
        if dataclasses.fields(cls):  # type: ignore[arg-type]
            raise ScheduleError(f"{where.at(i, key)}: {what} {value!r} needs a value: {{ {value} = N }}")
        return cls()
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ScheduleError(f"{where.at(i, key)}: {key} must be a name or a table with one key, got {value!r}; "
                            f"known {what}s: {known}")
    (name, arg), = value.items()
    cls = table.get(name)
    if cls is None:
        raise ScheduleError(f"{where.at(i, name)}: unknown {what} {name!r}; known {what}s: {known}")
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not params:
        raise ScheduleError(f"{where.at(i, name)}: {what} {name!r} takes no value; write {key} = \"{name}\"")
    ok = isinstance(arg, str) if params[0].type in ("str", str) else (
        isinstance(arg, int) and not isinstance(arg, bool) and arg >= (1 if what == "target" or name == "result" else 0))
    if not ok:
        need = "a string" if params[0].type in ("str", str) else (
            "a whole number >= 1" if what == "target" or name == "result" else "a whole number >= 0")
        raise ScheduleError(f"{where.at(i, name)}: {what} {name!r} must be {need}, got {arg!r}")
    return cls(arg)


def _shape(key: str, cls: type) -> str:
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not params:
        return key
    return f'{{ {key} = "..." }}' if params[0].type in ("str", str) else f"{{ {key} = N }}"


class _Locator:
    """Finds the line of a key in the text of a schedule file: the ``[[fault]]`` table it is in
    (the i-th one), then the first line of that table that sets the key."""

    _HEADER = re.compile(r"^\s*\[\[\s*fault\s*\]\]")
    _TABLE = re.compile(r"^\s*\[")

    def __init__(self, text: str | None, source: str):
        self.source = source
        self.lines = text.splitlines() if text is not None else []
        self.blocks: list[tuple[int, int]] = []  # (first line, end line) of each [[fault]], 0-based
        start = None
        for n, line in enumerate(self.lines):
            if self._HEADER.match(line):
                if start is not None:
                    self.blocks.append((start, n))
                start = n
            elif start is not None and self._TABLE.match(line) and not line.strip().startswith("[fault."):
                self.blocks.append((start, n))
                start = None
        if start is not None:
            self.blocks.append((start, len(self.lines)))

    def at(self, index: int | None, key: str | None) -> str:
        if not self.lines:
            return self.source if index is None else f"{self.source}: fault #{index + 1}"
        lo, hi = (0, len(self.lines)) if index is None or index >= len(self.blocks) else self.blocks[index]
        if key is not None:
            pattern = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=|^\s*\[\[?\s*{re.escape(key)}\s*\]")
            for n in range(lo, hi):
                if pattern.search(_strip_comment(self.lines[n])):
                    return f"{self.source}:{n + 1}"
        return f"{self.source}:{lo + 1}"


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


__all__ = ["AfterAudio", "AfterBytes", "AfterElapsed", "All", "AtConnect", "AtFinalize", "AtResult", "Every", "First",
           "Nth", "Progress", "Schedule", "ScheduleError", "Step", "TARGETS", "TRIGGERS", "Tagged", "Target", "Trigger"]
