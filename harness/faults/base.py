"""One fault interface for every layer, and the registry of fault types by name.

A fault is one small type: a dataclass whose fields are its parameters, and nothing else
describes them (the schedule parser reads the fields, the report shows them). Every fault,
whatever its layer, does three things, as Jepsen's nemesis does:

- ``await fault.start(ctx)``: begin (add the toxic, install the rule, send the signal …);
- ``await fault.stop()``: end it (idempotent; a fault that is over by itself, a kill -9 and
  restart say, ends with its ``start``);
- ``fault.windows``: the :class:`~harness.history.FaultWindow` it recorded in every history of
  ``ctx.histories``, ``kind`` = the fault's ``name``, ``params`` = its fields.

A fault reaches what it acts on through ``ctx.layer(name)``: the Toxiproxy proxy, the WebSocket
fault proxy, the managed server process … A missing layer is a clear error naming it.

How to add a layer (a ``docker`` layer, say):

1. Give the layer a name and decide what object a fault needs to act on (a container handle).
   Whoever runs the schedule puts it in the context: ``FaultContext(histories, layers={"docker":
   handle})``.
2. Write one dataclass per fault, subclassing :class:`Fault`, with ``name`` (its registry key,
   unique across layers) and ``layer`` as class variables and its parameters as fields; check them
   in ``__post_init__`` (raise ``ValueError`` naming the field). Implement ``_start(ctx)`` (and
   ``_stop()`` if it lasts): ``self._open(ctx)`` opens the windows, ``self._close()`` ends them.
3. Import the module in :mod:`harness.faults.registry` so its classes are registered: then a
   schedule file can name them, and an unknown name is refused with the list of known ones.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.errors import ServiceError
from harness.history import FaultWindow, History

FAULT_TYPES: dict[str, type[Fault]] = {}


class FaultError(ServiceError):
    """A fault could not be started or stopped (its layer is missing, the call failed)."""


@dataclass
class FaultContext:
    """What faults act on and record into: the histories of the sessions they affect, and the
    layers by name (``toxiproxy``: a FaultProxy, ``wsproxy``: a WsFaultProxy, ``process``: a
    managed server …)."""

    histories: list[History] = field(default_factory=list)
    layers: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str, fault: str = "") -> Any:
        found = self.layers.get(name)
        if found is None:
            who = f"fault {fault!r} needs" if fault else "needs"
            raise FaultError(f"{who} the {name!r} layer, which this run does not have "
                             f"(it has {sorted(self.layers) or 'none'})")
        return found


class Fault:
    """The interface. Subclasses are dataclasses; see the module docstring."""

    name: ClassVar[str] = ""
    layer: ClassVar[str] = ""
    # momentary faults (a kill -9 and restart) are over when start returns; a duration means nothing
    momentary: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            other = FAULT_TYPES.get(cls.name)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise TypeError(f"fault name {cls.name!r} is taken by {other.__module__}.{other.__qualname__}")
            FAULT_TYPES[cls.name] = cls

    # --- the interface ------------------------------------------------------------------
    async def start(self, ctx: FaultContext) -> None:
        if self._state().get("started"):
            raise FaultError(f"fault {self.name!r} was started twice")
        self._state()["started"] = True
        await self._start(ctx)

    async def stop(self) -> None:
        state = self._state()
        if not state.get("started") or state.get("stopped"):
            return
        state["stopped"] = True
        try:
            await self._stop()
        finally:
            self._close()

    @property
    def windows(self) -> list[FaultWindow]:
        return self._state().setdefault("windows", [])

    def params(self) -> dict[str, Any]:
        """The parameters, as recorded in a window (and shown in the report)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    # --- for subclasses -----------------------------------------------------------------
    async def _start(self, ctx: FaultContext) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        return None

    def _open(self, ctx: FaultContext, target: str = "", **extra: Any) -> list[FaultWindow]:
        opened = [h.start_fault(self.name, target=target or self.layer, **self.params(), **extra)
                  for h in ctx.histories]
        self.windows.extend(opened)
        return opened

    def _close(self, **extra: Any) -> None:
        for w in self.windows:
            w.params.update(extra)
            History.end_fault(w)

    def _state(self) -> dict[str, Any]:
        # Runtime state lives outside the dataclass fields, so fields stay the parameters only.
        try:
            return self.__dict__["_fault_state"]
        except KeyError:
            self.__dict__["_fault_state"] = state = {}
            return state


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Fault):
        return {"type": value.name, **value.params()}
    return value


def fault_type(name: str) -> type[Fault]:
    """The registered fault type ``name``; a ``KeyError`` naming the known ones otherwise."""
    from harness.faults import registry  # noqa: F401 - registers every built-in layer

    try:
        return FAULT_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULT_TYPES))}") from None


def known_faults() -> list[str]:
    from harness.faults import registry  # noqa: F401

    return sorted(FAULT_TYPES)


def parameters(cls: type[Fault]) -> dict[str, dataclasses.Field]:
    """A fault type's parameters: its dataclass fields (init fields only)."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]


def check_field_types(obj: Any) -> None:
    """Each field holds a value of its annotated type (int, float, str, bool, their optional and
    tuple forms): a schedule's ``delay = "5"`` is refused here, naming the field."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        if not _is_instance(value, hints.get(f.name, Any)):
            raise ValueError(f"{type(obj).__name__}.{f.name} must be {_type_name(hints.get(f.name))}, got {value!r}")


def _is_instance(value: Any, hint: Any) -> bool:
    if hint is Any or hint is None:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_is_instance(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, Sequence, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, (tuple, list)) and all(_is_instance(v, args[0]) for v in value) if args else True
    if origin is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


__all__ = ["FAULT_TYPES", "Fault", "FaultContext", "FaultError", "check_field_types", "fault_type", "known_faults",
           "parameters"]
