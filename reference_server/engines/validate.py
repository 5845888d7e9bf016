"""Input checks every engine shares, so a bad setting fails at creation with a message naming it."""

from __future__ import annotations

from .base import EngineConfig


def check_config(config: EngineConfig) -> None:
    if config.sample_rate != 16000:
        raise ValueError(f"sample_rate must be 16000 (16 kHz s16le mono), got {config.sample_rate!r}")
    if config.start_offset < 0 or config.start_offset % 2:
        raise ValueError(f"start_offset must be an even byte offset >= 0, got {config.start_offset!r}")
    if not config.max_segment_s > 0:
        raise ValueError(f"max_segment_s must be > 0, got {config.max_segment_s!r}")


def check_pcm(pcm: bytes) -> None:
    if len(pcm) % 2:
        raise ValueError(f"audio must be whole 16-bit samples (even length), got {len(pcm)} bytes")
