"""``harness codec-check``: recorded frames and one live session against the reference server."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.cli import main as harness_main
from harness.codec_check import check_recorded, read_frames
from harness.errors import UsageError

RESULTS = {"type": "Results", "channel_index": [0, 1], "duration": 1.0, "start": 0.0, "is_final": True,
           "speech_final": True, "channel": {"alternatives": [{"transcript": "hello world", "confidence": 0.9,
                                                               "words": []}]}}


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_recorded_frames_that_decode_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "# a comment", json.dumps(RESULTS), "", json.dumps({"type": "Metadata", "request_id": "r"}))
    tally = check_recorded("deepgram", path)
    assert tally.frames == 2 and tally.events["Final"] == 1 and not tally.errors
    assert harness_main(["codec-check", "--protocol", "deepgram", "--frames", str(path), "--no-live"]) == 0
    assert "codec-check deepgram: PASS" in capsys.readouterr().out


def test_a_frame_the_codec_raises_on_is_named_by_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, json.dumps(RESULTS), '{"type": "SomethingNew"}', "not json")
    tally = check_recorded("deepgram", path)
    assert [e.split(":")[0] for e in tally.errors] == ["line 2", "line 3"]
    assert "SomethingNew" in tally.errors[0]
    assert harness_main(["codec-check", "--protocol", "deepgram", "--frames", str(path), "--no-live"]) == 1
    assert "codec-check deepgram: FAIL" in capsys.readouterr().out


def test_binary_frames_go_in_as_base64(tmp_path: Path) -> None:
    path = write(tmp_path, '{"binary_b64": "AAEC"}', '{"binary_b64": 7}')
    with pytest.raises(UsageError, match="line 2"):
        read_frames(path)
    assert read_frames(write(tmp_path, '{"binary_b64": "AAEC"}')) == [(1, b"\x00\x01\x02")]


@pytest.mark.parametrize("content, message", [("# only a comment\n", "no frames"), (b"\xff\xfe", "not UTF-8")])
def test_unusable_frames_files_are_refused(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = tmp_path / "frames.jsonl"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(UsageError, match=message):
        read_frames(path)
    with pytest.raises(UsageError, match="cannot read"):
        read_frames(tmp_path / "missing.jsonl")


def test_bad_arguments_are_harness_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness_main(["codec-check", "--protocol", "no-such-protocol", "--no-live"]) == 2
    assert "unknown protocol" in capsys.readouterr().err
    assert harness_main(["codec-check", "--protocol", "reference", "--no-live"]) == 2
    assert "--no-live leaves nothing" in capsys.readouterr().err


def test_live_session_against_the_reference_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert harness_main(["codec-check", "--protocol", "reference"]) == 0
    out = capsys.readouterr().out
    assert "0 raised" in out and "codec-check reference: PASS" in out


def test_live_session_catches_a_codec_that_loses_finals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A deliberately broken codec (a test double for a user's buggy codec): it drops every second final.
    codec_file = tmp_path / "lossy_codec.py"
    codec_file.write_text(textwrap.dedent("""
        from harness.protocols.events import Final
        from harness.protocols.reference import ReferenceCodec

        class LossyCodec(ReferenceCodec):
            name = "lossy"
            seen = 0

            def decode(self, frame):
                out = []
                for event in super().decode(frame):
                    if isinstance(event, Final):
                        type(self).seen += 1
                        if self.seen % 2 == 0:
                            continue
                    out.append(event)
                return out
    """))
    assert harness_main(["codec-check", "--protocol", f"{codec_file}:LossyCodec"]) == 1
    out = capsys.readouterr().out
    assert "not the scripted words" in out and "FAIL" in out
