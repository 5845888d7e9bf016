"""The client's model of one scripted-engine session on the reference protocol (PROTOCOL.md v1).

The model knows what the server must have done with every frame the client sent: which bytes it
took (each exactly once), where a gap must be reported, what a reconnect must resume from and
replay, and which words the scripted engine must emit for the bytes taken. The state machine in
``stream_machine.py`` feeds it every frame it sends and every event it receives; the model only
collects problems, each naming the symptom first ("doubled words", "lost words", ...), so that a
shrunk counterexample says what broke. It does no I/O, which is what lets it be unit tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.checks.integrity import expected_scripted_words
from harness.checks.lifecycle import sequence_problems
from harness.protocols.events import Final

BYTES_PER_MS = 32  # 16 kHz, mono, s16le
FrameKind = Literal["duplicate", "tail", "gap"]


@dataclass(frozen=True)
class Frame:
    """One audio frame: ``length`` bytes of the stream starting at byte ``offset``."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


def classify(received: int, frame: Frame) -> FrameKind:
    """The offset rule of PROTOCOL.md against the server's received offset R."""
    if frame.end <= received:
        return "duplicate"
    if frame.offset <= received:
        return "tail"
    return "gap"


def even(n: int) -> int:
    """Audio is 16-bit: offsets and lengths are whole samples."""
    return n - n % 2


@dataclass
class StreamModel:
    """What the server must have taken and sent, and every way it did not."""

    script: tuple[str, ...]
    word_ms: int = 300
    taken: int = 0  # contiguous bytes the server must have taken, each exactly once
    ack_floor: int = 0  # acks on the current connection never go below this
    durable: int = 0  # the highest durable offset announced
    finals: dict[int, Final] = field(default_factory=dict)  # first copy of each segment
    replay_due: set[int] = field(default_factory=set)  # segments the current connection must replay
    gap_expected: int | None = None  # the expected_offset an audio_gap must name
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.script:
            raise ValueError("the script is empty: the scripted engine needs at least one word")
        if self.word_ms <= 0:
            raise ValueError(f"word_ms must be positive, got {self.word_ms}")

    @property
    def word_bytes(self) -> int:
        return self.word_ms * BYTES_PER_MS

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    # --- frames the client builds ------------------------------------------------------------
    def next_frame(self, size: int, overlap: int = 0) -> Frame:
        """New audio of ``size`` bytes, starting ``overlap`` bytes before the taken offset (the
        overlapping head is a resend the server must ignore, the tail is new)."""
        overlap = even(min(overlap, self.taken))
        return Frame(self.taken - overlap, overlap + even(size))

    def old_frame(self, percent: int, size: int) -> Frame:
        """A frame wholly below the taken offset (a duplicate), ``percent`` of the way in."""
        if self.taken < 2:
            raise ValueError("no audio taken yet: there is nothing to resend")
        start = min(even(self.taken * percent // 100), self.taken - 2)
        return Frame(start, max(2, even(min(size, self.taken - start))))

    def gap_frame(self, skip: int, size: int) -> Frame:
        """A frame that starts ``skip`` bytes past the taken offset."""
        return Frame(self.taken + max(2, even(skip)), max(2, even(size)))

    # --- what the client sent ----------------------------------------------------------------
    def sent(self, frame: Frame) -> FrameKind:
        """Account for a frame written to the stream; returns what the server must make of it."""
        kind = classify(self.taken, frame)
        if kind == "tail":
            self.taken = frame.end
        elif kind == "gap":
            self.gap_expected = self.taken
        return kind

    def expect_replay(self, last_segment_id: int) -> None:
        """A reconnect with ``last_segment_id``: every final seen after it must come again."""
        self.replay_due = {k for k in self.finals if k > last_segment_id}

    # --- what the server said ----------------------------------------------------------------
    def on_ready(self, committed: int) -> None:
        """The client resumes from ``committed``: never below what is durable, never past what
        was sent. A server may ask for less than it took (after a restart only D survives)."""
        if committed < self.durable:
            self.problem(f"lost words: ready.committed_offset {committed} is below the durable offset "
                         f"{self.durable}: persisted audio would be taken again (doubled words)")
        elif committed > self.taken:
            self.problem(f"lost words: ready.committed_offset {committed} is past the {self.taken} bytes "
                         "sent: the client would skip audio")
        else:
            self.taken = committed
        self.ack_floor = min(committed, self.taken)

    def on_ack(self, received: int, durable: int) -> None:
        if received > self.taken:
            self.problem(f"doubled words: ack received_offset {received} is past the {self.taken} bytes sent "
                         f"once: {received - self.taken} bytes were taken twice (a resent or skipped-ahead "
                         "frame was not refused)")
        if received < self.ack_floor:
            self.problem(f"ack went backwards: received_offset {received} after {self.ack_floor}")
        if durable > received:
            self.problem(f"durable_offset {durable} is past received_offset {received}")
        if durable < self.durable:
            self.problem(f"durable offset went backwards: {durable} after {self.durable}")
        self.ack_floor = max(self.ack_floor, received)
        self.durable = max(self.durable, durable)

    def on_gap(self, expected_offset: int | None) -> None:
        """An audio_gap error; the client resends from its expected_offset."""
        if self.gap_expected is None:
            self.problem(f"lost words: audio_gap (expected_offset {expected_offset}) for a frame that left "
                         f"no gap: the server has less than the {self.taken} bytes sent")
        elif expected_offset != self.gap_expected:
            self.problem(f"audio_gap names expected_offset {expected_offset}, but the server had taken "
                         f"{self.gap_expected} bytes")
        self.gap_expected = None

    def gap_unanswered(self, frame: Frame) -> None:
        self.problem(f"audio skipped silently: the frame at offset {frame.offset} (server at "
                     f"{self.gap_expected}) got no audio_gap error")
        self.gap_expected = None

    def on_final(self, final: Final) -> None:
        first = self.finals.get(final.segment_id)
        self.replay_due.discard(final.segment_id)
        if first is not None:
            if _shape(first) != _shape(final):
                self.problem(f"final changed on replay: segment {final.segment_id} was {_describe(first)}, "
                             f"replayed as {_describe(final)}")
            return
        if final.segment_id < 0:
            self.problem(f"negative segment id {final.segment_id}")
        self._check_words(final)
        self._check_overlap(final)
        self.finals[final.segment_id] = final

    def _check_words(self, final: Final) -> None:
        if final.end_ms * BYTES_PER_MS > self.taken:
            self.problem(f"final past the audio: segment {final.segment_id} ends at {final.end_ms} ms, "
                         f"only {self.taken} bytes ({self.taken // BYTES_PER_MS} ms) were sent")
        for w in final.words:
            i = w.start_ms // self.word_ms
            want = self.script[i % len(self.script)]
            if (w.word, w.start_ms, w.end_ms) != (want, i * self.word_ms, (i + 1) * self.word_ms):
                self.problem(f"wrong word: segment {final.segment_id} has {w.word!r} at {w.start_ms}-{w.end_ms} ms; "
                             f"the script has {want!r} at {i * self.word_ms}-{(i + 1) * self.word_ms} ms")

    def _check_overlap(self, final: Final) -> None:
        for k, other in sorted(self.finals.items()):
            if final.start_ms < other.end_ms and other.start_ms < final.end_ms:
                self.problem(f"doubled words: segment {final.segment_id} {_describe(final)} transcribes the "
                             f"same audio as segment {k} {_describe(other)}")
            elif (k < final.segment_id) != (other.end_ms <= final.start_ms):
                self.problem(f"segments out of order: segment {final.segment_id} {_describe(final)} and "
                             f"segment {k} {_describe(other)}")

    # --- at a sync point (every frame acked, replays in) ---------------------------------------
    def synced(self, received: int | None) -> None:
        if received is None:
            self.problem(f"no ack: the server never acknowledged the {self.taken} bytes sent")
        elif received < self.taken:
            self.problem(f"lost words: the server acked {received} of the {self.taken} bytes sent")
        if self.replay_due:
            self.problem("lost finals: segment(s) " + ", ".join(map(str, sorted(self.replay_due)))
                         + " were not replayed after the reconnect")
            self.replay_due.clear()
        holes = self.segment_holes()
        if holes:
            self.problem("lost finals: segment id(s) " + ", ".join(map(str, holes)) + " never arrived "
                         f"(have {sorted(self.finals)})")

    def segment_holes(self) -> list[int]:
        if not self.finals:
            return []
        return sorted(set(range(max(self.finals) + 1)) - set(self.finals))

    def last_segment_id(self) -> int:
        """The last segment of the unbroken run 0..k the client holds (-1: none)."""
        k = -1
        while k + 1 in self.finals:
            k += 1
        return k

    # --- at the end ----------------------------------------------------------------------------
    def transcript(self) -> list[str]:
        return [w.word for k in sorted(self.finals) for w in self.finals[k].words]

    def expected_words(self) -> list[str]:
        return expected_scripted_words(" ".join(self.script), self.taken, self.word_ms)

    def transcript_problems(self) -> list[str]:
        """The finished transcript against the words of the bytes sent once."""
        got, want = self.transcript(), self.expected_words()
        if got == want:
            return []
        i = next((j for j, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        symptom = "doubled words" if len(got) > len(want) else "lost words" if len(got) < len(want) else "wrong words"
        return [f"{symptom}: the transcript has {len(got)} words for the {self.taken} bytes sent once "
                f"(expected {len(want)}); first difference at word {i}: got {' '.join(got[i:i + 5])!r}, "
                f"expected {' '.join(want[i:i + 5])!r}"]

    @staticmethod
    def pipeline_problems(names: list[str], where: str) -> list[str]:
        """Pipeline events exactly once each, in the protocol's order."""
        return [f"pipeline events {where}: {p}" for p in sequence_problems(names)]


def _shape(f: Final) -> tuple[object, ...]:
    return (f.text, f.start_ms, f.end_ms, tuple((w.word, w.start_ms, w.end_ms) for w in f.words))


def _describe(f: Final) -> str:
    return f"({f.start_ms}-{f.end_ms} ms, {f.text!r})"
