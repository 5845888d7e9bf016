"""Capacity against the physical limit: ``cores / RTF``, measured in the same run.

A CPU-bound engine with real-time factor RTF (decode CPU seconds per audio second) can hold at
most ``cores / RTF`` real-time streams on ``cores`` cores, whatever the server does. A capacity
figure ("4 streams held") means something on another machine only as a share of that limit, so
``harness load --find-capacity`` and ``scripts/bench_engines.py`` measure the RTF beside the load
and state capacity as a ratio. The RTF is measured by the engine's own module in a separate
process (``python -m reference_server.engines.rtf``): the harness never imports the server.

The pure parts (the arithmetic and the sentence) are here so they can be tested by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

RTF_TIMEOUT_S = 180.0  # model load plus three decodes of a few seconds, on a busy machine
CPU_BOUND_ENGINES = ("pocketsphinx",)  # engines whose capacity is bounded by decode CPU


class LimitError(RuntimeError):
    """The real-time factor could not be measured; the message says why."""


@dataclass(frozen=True)
class PhysicalLimit:
    """``cores / rtf`` streams: the most a CPU-bound engine can decode in real time."""

    cores: int
    rtf: float  # CPU seconds per audio second of one stream (the physical cost)
    rtf_wall: float | None = None  # wall seconds per audio second in the same run (shows contention)
    load_avg: float | None = None  # 1-minute load average when it was measured

    def __post_init__(self) -> None:
        if self.cores < 1:
            raise ValueError(f"cores must be >= 1, got {self.cores}")
        if not self.rtf > 0:
            raise ValueError(f"a real-time factor must be > 0, got {self.rtf}")

    @property
    def streams(self) -> float:
        return self.cores / self.rtf

    @property
    def streams_now(self) -> float | None:
        """``cores / rtf_wall``: the limit the machine left at the time (other work slows the wall RTF)."""
        return None if not self.rtf_wall else self.cores / self.rtf_wall

    def share(self, users: int | None) -> float | None:
        """``users`` as a fraction of the limit (0.82 = 82 %); None when nothing held."""
        return None if users is None else users / self.streams

    def to_dict(self) -> dict[str, Any]:
        now = self.streams_now
        return {**asdict(self), "limit_streams": round(self.streams, 2),
                "limit_streams_now": None if now is None else round(now, 2)}


def capacity_sentence(held: int | None, final_p95_ms: float, limit: PhysicalLimit | None) -> str:
    """'4 streams at final p95 < 500 ms = 82 % of the 4.9-stream limit (2 cores / RTF 0.41)'."""
    what = f"{held or 0} stream{'' if held == 1 else 's'} at final p95 < {final_p95_ms:g} ms"
    if limit is None:
        return what + " (no physical limit: the engine is not CPU-bound, or its RTF was not measured)"
    share = limit.share(held or 0) or 0.0
    text = f"{what} = {share * 100:.0f} % of the {limit.streams:.1f}-stream limit ({limit.cores} cores / RTF {limit.rtf:.2f})"
    extra = []
    if limit.streams_now is not None:
        extra.append(f"wall RTF {limit.rtf_wall:.2f}, so {limit.streams_now:.1f} streams were the limit this "
                     f"machine left at the time ({(held or 0) / limit.streams_now * 100:.0f} % of that)")
    if limit.load_avg is not None:
        extra.append(f"load average {limit.load_avg:.2f}")
    return text + (f"; {', '.join(extra)}" if extra else "")


def capacity_figures(held: int | None, limit: PhysicalLimit | None) -> dict[str, Any]:
    """What the run directory's capacity record carries about the limit."""
    if limit is None:
        return {"limit": None, "share_of_limit": None}
    share = limit.share(held or 0)
    return {"limit": limit.to_dict(), "share_of_limit": None if share is None else round(share, 3)}


def cores() -> int:
    """CPUs this process may run on (the affinity mask, not just the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def rtf_sample(manifest: Any = None) -> tuple[str, float]:
    """The WAV and length to measure RTF on: the longest 5-8 s utterance, cut 0.2 s after its speech."""
    from harness.audio import load_manifest

    manifest = manifest or load_manifest()
    candidates = [f for f in manifest.of_kind("utterance") if 5.0 <= f.duration_s <= 8.0 and f.speech_end_s]
    if not candidates:
        raise LimitError("no 5-8 s utterance with a speech end in the fixture manifest to measure the RTF on")
    f = max(candidates, key=lambda f: f.duration_s)
    return str(f.path), float(f.speech_end_s) + 0.2  # type: ignore[arg-type]


def measure_limit(python: str = sys.executable, repeats: int = 3, timeout_s: float = RTF_TIMEOUT_S) -> PhysicalLimit:
    """Measure the pocketsphinx engine's RTF now, in its own process; LimitError if it cannot."""
    wav, seconds = rtf_sample()
    cmd = [python, "-m", "reference_server.engines.rtf", "--wav", wav, "--seconds", f"{seconds:g}",
           "--repeats", str(repeats)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LimitError(f"measuring the real-time factor took over {timeout_s:g} s ({' '.join(cmd)})") from exc
    if proc.returncode != 0:
        raise LimitError(f"measuring the real-time factor failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return parse_rtf_line(proc.stdout, cores(), os.getloadavg()[0])


def parse_rtf_line(stdout: str, n_cores: int, load_avg: float | None) -> PhysicalLimit:
    """The limit from the RTF module's JSON line; LimitError naming what was wrong."""
    lines = [line for line in stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise LimitError(f"the real-time factor measurement printed no JSON line: {stdout.strip()[-300:]!r}")
    try:
        data = json.loads(lines[-1])
        return PhysicalLimit(cores=n_cores, rtf=float(data["rtf_cpu"]), rtf_wall=float(data["rtf_wall"]),
                             load_avg=None if load_avg is None else round(load_avg, 2))
    except (ValueError, KeyError, TypeError) as exc:
        raise LimitError(f"the real-time factor measurement printed {lines[-1]!r}: {exc}") from exc
