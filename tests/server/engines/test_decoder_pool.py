"""DecoderPool bookkeeping, with a stand-in decoder (a test double: building real ones costs 0.35 s
each and is covered by the pocketsphinx engine tests)."""

from __future__ import annotations

import threading

import pytest

from reference_server.engines import prewarm
from reference_server.engines.decoder_pool import DecoderPool


class FakeDecoder:
    """Test double: records the resets the pool must do on checkout."""

    def __init__(self) -> None:
        self.cmn = "40,3,-1"
        self.stream_starts = 0

    def get_cmn(self) -> str:
        return self.cmn

    def set_cmn(self, cmn: str) -> None:
        self.cmn = cmn

    def start_stream(self) -> None:
        self.stream_starts += 1


def test_checkout_builds_when_empty_and_reuses_what_was_returned():
    pool = DecoderPool(factory=FakeDecoder, max_idle=2)
    first = pool.checkout()
    pool.checkin(first)
    assert pool.checkout() is first
    assert pool.built == 1


def test_checkout_resets_the_previous_streams_state():
    pool = DecoderPool(factory=FakeDecoder, max_idle=2)
    decoder = pool.checkout()
    decoder.cmn = "55,-3,4"  # adapted to the last stream's speaker
    pool.checkin(decoder)
    again = pool.checkout()
    assert again is decoder
    assert again.cmn == "40,3,-1"
    assert again.stream_starts == 2


def test_live_checkouts_are_distinct_decoders():
    pool = DecoderPool(factory=FakeDecoder, max_idle=4)
    pool.prewarm(2)
    lent = [pool.checkout() for _ in range(3)]
    assert len({id(d) for d in lent}) == 3
    assert pool.in_use() == 3 and pool.idle() == 0


def test_idle_decoders_are_capped_at_max_idle():
    pool = DecoderPool(factory=FakeDecoder, max_idle=1)
    a, b = pool.checkout(), pool.checkout()
    pool.checkin(a)
    pool.checkin(b)
    assert pool.idle() == 1
    pool.prewarm(5)
    assert pool.idle() == 1


def test_returning_a_stranger_or_twice_is_refused():
    pool = DecoderPool(factory=FakeDecoder)
    with pytest.raises(ValueError, match="not checked out"):
        pool.checkin(FakeDecoder())
    decoder = pool.checkout()
    pool.checkin(decoder)
    with pytest.raises(ValueError, match="returned twice"):
        pool.checkin(decoder)


def test_concurrent_borrowers_never_hold_the_same_decoder():
    pool = DecoderPool(factory=FakeDecoder, max_idle=3)
    held: set[int] = set()
    guard = threading.Lock()
    clashes: list[int] = []

    def borrower() -> None:
        for _ in range(200):
            decoder = pool.checkout()
            with guard:
                if id(decoder) in held:
                    clashes.append(id(decoder))
                held.add(id(decoder))
            with guard:
                held.discard(id(decoder))
            pool.checkin(decoder)

    threads = [threading.Thread(target=borrower) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert clashes == []
    assert pool.in_use() == 0
    assert pool.idle() <= 3


def test_negative_max_idle_is_refused():
    with pytest.raises(ValueError, match="max_idle"):
        DecoderPool(factory=FakeDecoder, max_idle=-1)


def test_prewarm_names_an_unknown_engine():
    with pytest.raises(ValueError, match="'kaldi'.*pocketsphinx, scripted"):
        prewarm("kaldi")
    prewarm("scripted")  # nothing to build
