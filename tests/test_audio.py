"""harness.audio and `harness fixtures`: manifest, WAV validation, chunking, pacing, --check."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import struct
import time
import wave
from pathlib import Path

import pytest

from harness import audio
from harness.audio import (
    BYTES_PER_SECOND,
    AudioFormatError,
    RealtimePacer,
    SyncPacer,
    chunks,
    load_manifest,
    read_pcm,
)
from harness.cli import main as cli_main

REPO_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "audio"


@pytest.fixture(scope="module")
def manifest() -> audio.Manifest:
    return load_manifest(REPO_FIXTURES)


def wav_bytes(*, tag: int = 1, channels: int = 1, rate: int = 16000, bits: int = 16, data: bytes = b"\0\0" * 8,
              extensible_subformat: int | None = None, declared: int | None = None) -> bytes:
    """A hand-built RIFF/WAVE file, to reach header layouts sox does not write."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible_subformat else tag, channels, rate, rate * align, align, bits)
    if extensible_subformat:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", extensible_subformat) + guid_tail
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data) if declared is None else declared) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --- manifest ---------------------------------------------------------------------------------


def test_manifest_covers_every_kind(manifest: audio.Manifest) -> None:
    utterances = manifest.of_kind("utterance")
    assert len(utterances) >= 12
    assert all(3.0 <= u.duration_s <= 8.0 for u in utterances), [(u.id, u.duration_s) for u in utterances]
    for voice in ("rms", "awb", "slt", "kal16"):
        assert sum(u.voice == voice for u in utterances) >= 2, voice
    (conversation,) = manifest.of_kind("conversation")
    assert conversation.duration_s >= 60 and len({t.voice for t in conversation.turns}) >= 2
    assert conversation.text == " ".join(t.text for t in conversation.turns)
    assert [f.kind for f in manifest.of_kind("silence") + manifest.of_kind("noise")] == ["silence", "noise"]
    (telephone,) = manifest.of_kind("telephone")
    assert telephone.sample_rate == 8000 and telephone.text
    assert all(b.defect for b in manifest.of_kind("bad")) and len(manifest.of_kind("bad")) == 4


def test_fixture_metadata_matches_the_audio(manifest: audio.Manifest) -> None:
    for f in manifest:
        if f.kind == "bad":
            continue
        pcm = f.pcm()
        assert len(pcm) == round(f.duration_s * f.sample_rate) * 2, f.id
        if f.text:
            # Speech starts after the 0.5 s lead and ends before the 1.0 s tail.
            assert 0.5 <= f.speech_onset_s < f.speech_end_s <= f.duration_s - 1.0, f.id
        else:
            assert f.speech_onset_s is None, f.id


def test_action_item_phrasing_is_present(manifest: audio.Manifest) -> None:
    texts = " | ".join(u.text for u in manifest.of_kind("utterance"))
    for phrase in ("we need to", "please", "can you", "let's", "i will", "make sure"):
        assert phrase in texts, phrase


def test_get_names_unknown_id_and_known_ones(manifest: audio.Manifest) -> None:
    assert manifest.get("meeting-01-rms").voice == "rms"
    with pytest.raises(KeyError) as err:
        manifest.get("no-such-fixture")
    assert "no-such-fixture" in str(err.value) and "meeting-01-rms" in str(err.value)
    with pytest.raises(ValueError, match="unknown fixture kind 'music'"):
        manifest.of_kind("music")


def test_env_overrides_the_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"fixtures": [{"id": "mine", "file": "mine.wav", "text": "hello", "voice": "me", "duration_s": 1.0,
                          "speech_onset_s": 0.2, "sha256": "0" * 64, "kind": "utterance"}]}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    monkeypatch.setenv("HARNESS_FIXTURES", str(tmp_path))
    m = load_manifest()
    assert m.ids() == ["mine"] and m.get("mine").path == tmp_path / "mine.wav"
    assert m.get("mine").speech_onset_ms == 200


def test_manifest_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"fixtures": [{"id": "x", "kind": "song"}]}))
    with pytest.raises(ValueError, match=r"'x'.*missing field\(s\) file"):
        load_manifest(tmp_path)
    entry = {"id": "x", "file": "x.wav", "text": "", "voice": "", "duration_s": 1, "speech_onset_s": None,
             "sha256": "", "kind": "song"}
    (tmp_path / "manifest.json").write_text(json.dumps({"fixtures": [entry]}))
    with pytest.raises(ValueError, match="unknown kind 'song'"):
        load_manifest(tmp_path)


# --- read_pcm -----------------------------------------------------------------------------------

BAD_MESSAGES = {
    "bad-stereo": "stereo: 2 channels, expected 1",
    "bad-44k-float": "44100 Hz, expected 16000; 32-bit float, expected 16-bit PCM",
    "bad-truncated-header": "truncated header",
    "bad-not-a-wav": "not a WAV file (starts with b'This is plai')",
}


@pytest.mark.parametrize("fixture_id", sorted(BAD_MESSAGES))
def test_read_pcm_names_each_bad_fixtures_defect(manifest: audio.Manifest, fixture_id: str) -> None:
    f = manifest.get(fixture_id)
    with pytest.raises(AudioFormatError) as err:
        read_pcm(f.path)
    assert str(f.path) in str(err.value)
    assert BAD_MESSAGES[fixture_id] in str(err.value)


def test_every_bad_fixture_is_covered(manifest: audio.Manifest) -> None:
    assert {f.id for f in manifest.of_kind("bad")} == set(BAD_MESSAGES)


def test_telephone_needs_its_own_rate(manifest: audio.Manifest) -> None:
    tel = manifest.get("telephone-support-awb")
    with pytest.raises(AudioFormatError, match="8000 Hz, expected 16000"):
        read_pcm(tel.path)
    assert len(read_pcm(tel.path, sample_rate=8000)) == len(tel.pcm()) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bits": 8, "data": b"\x80" * 8}, "8-bit PCM, expected 16-bit PCM"),
        ({"tag": 3, "bits": 32, "data": b"\0" * 16}, "32-bit float, expected 16-bit PCM"),
        ({"extensible_subformat": 3, "bits": 32, "data": b"\0" * 16}, "32-bit float, expected 16-bit PCM"),
        ({"tag": 0x55}, "format tag 0x0055"),
        ({"channels": 6, "data": b"\0" * 24}, "6 channels, expected 1"),
        ({"declared": 64}, "truncated data (header declares 64 bytes, file holds 16)"),
    ],
)
def test_read_pcm_hand_built_headers(tmp_path: Path, kwargs: dict, message: str) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(wav_bytes(**kwargs))
    with pytest.raises(AudioFormatError) as err:
        read_pcm(path)
    assert message in str(err.value)


def test_read_pcm_accepts_extensible_pcm_and_skips_other_chunks(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    pcm = struct.pack("<4h", 1, -2, 3, -4)
    raw = wav_bytes(extensible_subformat=1, data=pcm)
    # Slip an odd-sized LIST chunk (padded to even) before 'fmt ': it must be walked over.
    listing = b"LIST" + struct.pack("<I", 3) + b"abc\0"
    path.write_bytes(raw[:12] + listing + raw[12:])
    assert read_pcm(path) == pcm


def test_read_pcm_without_data_chunk(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    raw = wav_bytes()
    path.write_bytes(raw[:36])  # RIFF/WAVE + a complete 'fmt ' chunk, nothing after
    with pytest.raises(AudioFormatError, match="no 'data' chunk"):
        read_pcm(path)


def test_read_pcm_agrees_with_stdlib_wave(manifest: audio.Manifest) -> None:
    f = manifest.get("meeting-01-rms")
    with wave.open(str(f.path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert read_pcm(f.path) == w.readframes(w.getnframes())


def test_read_pcm_short_riff(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"RIFF\x10\0")
    with pytest.raises(AudioFormatError, match="truncated header"):
        read_pcm(path)


# --- chunks -------------------------------------------------------------------------------------


def test_chunks_cover_the_audio_in_order() -> None:
    pcm = bytes(range(256)) * 50  # 12,800 bytes = 400 ms
    out = list(chunks(pcm, chunk_ms=30))
    assert [o for o, _ in out] == list(range(0, len(pcm), 960))
    assert all(len(p) % 2 == 0 and len(p) <= 960 for _, p in out)
    assert b"".join(p for _, p in out) == pcm
    resumed = list(chunks(pcm, chunk_ms=100, start=3202))
    assert resumed[0] == (3202, pcm[3202:6402]) and b"".join(p for _, p in resumed) == pcm[3202:]
    assert list(chunks(pcm, start=len(pcm))) == []


def test_chunk_sizes_stay_whole_samples() -> None:
    assert audio.chunk_bytes(0.01) == 2  # below one sample: one sample
    assert audio.chunk_bytes(20) == 640
    assert audio.chunk_bytes(100, sample_rate=8000) == 1600


@pytest.mark.parametrize(("pcm", "kwargs", "match"), [
    (b"\0" * 3, {}, "odd"),
    (b"\0" * 4, {"start": 1}, "even"),
    (b"\0" * 4, {"start": 6}, "within"),
    (b"\0" * 4, {"chunk_ms": 0}, "positive"),
])
def test_chunks_refuse_bad_input(pcm: bytes, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        list(chunks(pcm, **kwargs))


# --- pacing -------------------------------------------------------------------------------------


class FakeClock:
    """A clock that only moves when the pacer sleeps (plus an optional oversleep per sleep)."""

    def __init__(self, oversleep: float = 0.0) -> None:
        self.now = 1000.0
        self.oversleep = oversleep
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep


def test_sync_pacer_follows_the_schedule_and_measures_lateness(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(oversleep=0.002)
    monkeypatch.setattr(time, "sleep", clock.sleep)  # as gevent's monkey-patching would
    pacer = SyncPacer(pace=1.0, clock=clock)
    for offset in range(0, 5 * 3200, 3200):  # five 100 ms chunks
        pacer.sleep_until(offset)
    assert len(clock.sleeps) == 4  # the first chunk is due at once
    assert clock.sleeps[0] == pytest.approx(0.1)
    assert clock.sleeps[1] == pytest.approx(0.098)  # the previous oversleep is caught up
    stats = pacer.stats()
    assert stats.count == 5 and stats.max_ms == pytest.approx(2.0) and stats.p99_ms == pytest.approx(2.0)


def test_pacer_anchors_at_first_offset_and_ignores_resends(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(time, "sleep", clock.sleep)
    pacer = SyncPacer(pace=2.0, clock=clock)
    pacer.sleep_until(64_000)  # resuming at 2 s: due at once
    pacer.sleep_until(96_000)  # one second of audio at 2x: 0.5 s later
    assert clock.sleeps == [pytest.approx(0.5)]
    clock.now += 3.0  # a reconnect stalls the sender
    pacer.sleep_until(64_000)  # the resend is catch-up: no wait, no error sample
    assert pacer.stats().count == 2 and len(clock.sleeps) == 1
    pacer.sleep_until(128_000)  # new audio again: late by 2.5 s, measured
    assert pacer.stats().max_ms == pytest.approx(2500.0)


def test_pace_zero_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(_seconds: float) -> None:
        raise AssertionError("pace=0 slept")

    async def no_async_sleep(_seconds: float) -> None:
        raise AssertionError("pace=0 slept")

    monkeypatch.setattr(time, "sleep", no_sleep)
    monkeypatch.setattr(asyncio, "sleep", no_async_sleep)
    clock = FakeClock()
    sync_pacer, async_pacer = SyncPacer(pace=0, clock=clock), RealtimePacer(pace=0, clock=clock)
    for offset in range(0, 320_000, 3200):
        sync_pacer.sleep_until(offset)
        asyncio.run(async_pacer.wait_until(offset))
    assert sync_pacer.stats().count == 0 and math.isnan(async_pacer.stats().p99_ms)


async def test_async_pacer_against_the_real_loop() -> None:
    pacer = RealtimePacer(pace=20.0)  # 100 ms chunks every 5 ms: quick, yet really paced
    sent: list[tuple[int, float]] = []
    for offset, _payload in chunks(b"\0" * BYTES_PER_SECOND, chunk_ms=100):
        await pacer.wait_until(offset)
        sent.append((offset, time.monotonic()))
    offsets, times = zip(*sent)
    assert list(offsets) == sorted(offsets) and list(times) == sorted(times)
    stats = pacer.stats()
    assert stats.count == 10 and math.isfinite(stats.p99_ms) and stats.p50_ms <= stats.p99_ms <= stats.max_ms


async def test_async_pacer_sleeps_until_due(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    pacer = RealtimePacer(clock=clock)
    for offset in (0, 16_000, 32_000):
        await pacer.wait_until(offset)
    assert slept == [pytest.approx(0.5), pytest.approx(0.5)] and pacer.stats().max_ms == pytest.approx(0.0)


def test_sans_io_use_due_then_mark_sent() -> None:
    clock = FakeClock()
    pacer = audio.Pacer(clock=clock)
    for offset in (0, 3200, 6400):
        due = pacer.due(offset)
        clock.now = max(clock.now, due) + 0.010  # the driver's own loop wakes 10 ms late
        pacer.mark_sent(offset, due)
    assert list(pacer.errors_ms) == [pytest.approx(10.0), pytest.approx(10.0), pytest.approx(10.0)]


@pytest.mark.parametrize("pace", [-1.0, math.inf, math.nan])
def test_pacer_refuses_bad_pace(pace: float) -> None:
    with pytest.raises(ValueError, match="pace"):
        SyncPacer(pace=pace)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert audio.percentile(values, 99) == 99.0 and audio.percentile(values, 50) == 50.0
    assert audio.percentile([5.0], 99) == 5.0 and math.isnan(audio.percentile([], 50))


# --- harness fixtures ---------------------------------------------------------------------------


@pytest.fixture()
def fixture_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "audio"
    shutil.copytree(REPO_FIXTURES, dest)
    return dest


def test_check_passes_on_committed_fixtures(fixture_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["fixtures", "--out", str(fixture_copy), "--check"]) == 0
    assert "match manifest.json" in capsys.readouterr().out


def test_check_names_a_changed_and_a_missing_file(fixture_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = fixture_copy / "meeting-02-rms.wav"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01  # flip one bit in the audio
    target.write_bytes(bytes(data))
    (fixture_copy / "noise-3s.wav").unlink()
    assert cli_main(["fixtures", "--out", str(fixture_copy), "--check"]) == 1
    out = capsys.readouterr().out
    assert "meeting-02-rms: meeting-02-rms.wav sha256" in out and "noise-3s: noise-3s.wav is missing" in out
    assert "meeting-01-rms" not in out


def test_verify_manifest_lists_only_the_changed_file(fixture_copy: Path) -> None:
    assert audio.verify_manifest(load_manifest(fixture_copy)) == []
    (fixture_copy / "silence-3s.wav").write_bytes(b"RIFF")
    problems = audio.verify_manifest(load_manifest(fixture_copy))
    assert len(problems) == 1 and problems[0].startswith("silence-3s: silence-3s.wav sha256")


def test_check_without_a_manifest_is_a_harness_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["fixtures", "--out", str(tmp_path), "--check"]) == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.skipif(not (shutil.which("flite") and shutil.which("sox")), reason="needs flite and sox")
def test_regenerating_reproduces_the_committed_fixtures(tmp_path: Path) -> None:
    from harness.fixtures_cmd import generate

    fresh = generate(tmp_path)
    committed = load_manifest(REPO_FIXTURES)
    assert [f.to_dict() for f in fresh] == [f.to_dict() for f in committed]
    assert (tmp_path / "manifest.json").read_bytes() == (REPO_FIXTURES / "manifest.json").read_bytes()


def test_speech_bounds_finds_the_loud_part() -> None:
    from harness.fixtures_cmd import speech_bounds

    quiet, loud = b"\0\0" * 8000, struct.pack("<h", 3000) * 4800
    assert speech_bounds(quiet + loud + quiet) == (0.5, 0.8)
    assert speech_bounds(quiet) is None
