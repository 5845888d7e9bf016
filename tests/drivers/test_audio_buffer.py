"""The client's bounded buffer of audio the server has not made durable."""

from __future__ import annotations

import pytest

from harness.drivers.buffer import AudioBuffer, ResendUnavailable

SOURCE = bytes(range(256)) * 40  # 10,240 bytes


def test_holds_everything_not_yet_durable_and_resends_it() -> None:
    buf = AudioBuffer(SOURCE, max_bytes=4096)
    assert buf.take(0, 1000) == SOURCE[:1000]
    assert buf.take(1000, 1000) == SOURCE[1000:2000]
    buf.release(600)
    assert (buf.start, buf.held_bytes) == (600, 1400)
    assert buf.take(600, 500) == SOURCE[600:1100]  # a resend comes from the held copy
    with pytest.raises(ResendUnavailable, match="offset 500 was already released"):
        buf.take(500, 10)


def test_is_bounded_by_max_bytes() -> None:
    buf = AudioBuffer(SOURCE, max_bytes=3000)
    buf.take(0, 2000)
    assert buf.room_for(2000, 1000)
    assert not buf.room_for(2000, 1001)
    assert buf.room_for(0, 2000)  # resends always fit
    buf.release(1500)
    assert buf.room_for(2000, 2500)
    buf.take(2000, 2500)
    assert buf.peak_bytes <= 3000


def test_reading_is_in_order_and_stops_at_the_end() -> None:
    buf = AudioBuffer(SOURCE, max_bytes=100_000)
    with pytest.raises(ValueError, match="past what was read"):
        buf.take(10, 10)
    assert buf.take(0, 20_000) == SOURCE
    assert buf.produced == len(SOURCE)


def test_release_never_goes_past_what_was_read_or_backwards() -> None:
    buf = AudioBuffer(SOURCE, max_bytes=4096)
    buf.take(0, 1000)
    buf.release(5000)
    assert buf.start == 1000 and buf.held_bytes == 0
    buf.release(10)
    assert buf.start == 1000


def test_without_offsets_nothing_is_kept() -> None:
    buf = AudioBuffer(SOURCE, max_bytes=10, keep=False)
    assert buf.take(0, 1000) == SOURCE[:1000]
    assert buf.held_bytes == 0 and buf.start == 1000
    assert buf.room_for(1000, 5000)
