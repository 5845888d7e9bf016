"""harness.browser without a browser: launch arguments, WAV checks, the missing-Chromium message."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from harness.browser import (
    BrowserUnavailable,
    FrameEntry,
    LiveOptions,
    check_fake_audio,
    chromium_args,
    chromium_problem,
    redact,
    require_chromium,
)


def write_wav(path: Path, *, width: int = 2, channels: int = 1, rate: int = 16000, frames: int = 1600) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setsampwidth(width)
        wav.setnchannels(channels)
        wav.setframerate(rate)
        wav.writeframes(b"\x00" * width * channels * frames)
    return path


def test_missing_chromium_is_explained(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-chromium"
    problem = chromium_problem(missing)
    assert problem is not None
    assert str(missing) in problem and "apt-get install chromium" in problem
    with pytest.raises(BrowserUnavailable, match="not found"):
        require_chromium(missing)


def test_a_binary_that_is_not_chromium_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'something else'\n")
    fake.chmod(0o755)
    assert "--version failed" in (chromium_problem(fake) or "")
    fake.chmod(0o644)
    assert "not executable" in (chromium_problem(fake) or "")


def test_launch_arguments(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "mic.wav")
    args = chromium_args(wav)
    assert "--use-fake-ui-for-media-stream" in args and "--use-fake-device-for-media-stream" in args
    assert f"--use-file-for-fake-audio-capture={wav.resolve()}%noloop" in args
    for flag in ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"):
        assert flag in args
    # Without the auto-accepting prompt (and with no granted permission) getUserMedia is denied.
    assert "--use-fake-ui-for-media-stream" not in chromium_args(wav, microphone=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 1}, "8-bit samples, expected 16-bit PCM"),
        ({"channels": 3}, "3 channels, expected mono or stereo"),
        ({"rate": 96000}, "96000 Hz, expected 8000-48000 Hz"),
        ({"frames": 0}, "no audio frames"),
    ],
)
def test_fake_audio_that_chromium_would_play_as_silence_is_refused(tmp_path: Path, kwargs, message) -> None:
    wav = write_wav(tmp_path / "bad.wav", **kwargs)
    with pytest.raises(ValueError, match=message) as err:
        check_fake_audio(wav)
    assert str(wav) in str(err.value)


def test_fake_audio_not_a_wav_or_missing(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(ValueError, match="not a 16-bit PCM WAV"):
        check_fake_audio(text)
    with pytest.raises(ValueError, match="no such file"):
        check_fake_audio(tmp_path / "absent.wav")
    assert check_fake_audio(write_wav(tmp_path / "stereo48k.wav", channels=2, rate=48000)).name == "stereo48k.wav"


def test_tokens_are_redacted_from_logged_urls() -> None:
    url = "ws://127.0.0.1:1/v1/stream?session_id=abc&access_token=s3cr3t&last_segment_id=2"
    assert redact(url) == "ws://127.0.0.1:1/v1/stream?session_id=abc&access_token=REDACTED&last_segment_id=2"


def test_live_options_become_the_page_query() -> None:
    query = LiveOptions(engine="scripted", script="a b", metadata={"script_word_ms": 200}, backoff_ms=50).query()
    assert query == "engine=scripted&script=a+b&backoff_ms=50&meta.script_word_ms=200"
    assert LiveOptions().query() == ""


def test_frame_entry_json() -> None:
    assert FrameEntry(0, 0, "received", "text", 13, text='{"type":"ack"}').json() == {"type": "ack"}
    assert FrameEntry(0, 0, "received", "text", 5, text="[1,2]").json() is None
    assert FrameEntry(0, 0, "sent", "binary", 3208, offset=3200).json() is None
