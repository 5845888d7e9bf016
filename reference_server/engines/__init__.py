"""ASR engines behind one interface (``base.Engine``), chosen by name per session.

``pocketsphinx`` is real streaming ASR (the default); ``scripted`` is a test double that replays a
script aligned to the bytes received. ``prewarm`` builds pocketsphinx decoders ahead of time so the
first streams do not pay for loading the model (call it before serving).
Once ``workers.configure(N)`` has set up a worker pool, pocketsphinx engines decode in those worker
processes (``workers.ProcessEngine``); otherwise in this process. The scripted engine is always
in-process: it is cheap.
"""

from __future__ import annotations

from .base import (
    BYTES_PER_MS,
    Engine,
    EngineConfig,
    EngineResult,
    EngineWord,
    FinalResult,
    PartialResult,
)

ENGINES: tuple[str, ...] = ("pocketsphinx", "scripted")


def create_engine(name: str, config: EngineConfig) -> Engine:
    """A new engine instance for one stream. Raises ValueError for an unknown name or bad config."""
    if name == "scripted":
        from .scripted import ScriptedEngine

        return ScriptedEngine(config)
    if name == "pocketsphinx":
        from .workers import active_pool

        pool = active_pool()
        if pool is not None:
            return pool.create(config)
        from .pocketsphinx_engine import PocketSphinxEngine

        return PocketSphinxEngine(config)
    raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")


def prewarm(name: str, count: int = 2) -> None:
    """Get ``count`` streams' worth of the engine's expensive state ready (a no-op for scripted)."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
    if name == "pocketsphinx":
        from .workers import active_pool

        pool = active_pool()
        if pool is not None:
            pool.start()  # each worker keeps its own spare decoders
            return
        from .decoder_pool import default_pool

        default_pool().prewarm(count)


__all__ = [
    "BYTES_PER_MS",
    "ENGINES",
    "Engine",
    "EngineConfig",
    "EngineResult",
    "EngineWord",
    "FinalResult",
    "PartialResult",
    "create_engine",
    "prewarm",
]
