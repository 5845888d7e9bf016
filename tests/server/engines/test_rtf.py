"""The engine's real-time factor probe (``python -m reference_server.engines.rtf``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reference_server.engines import rtf

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "audio" / "medical-01-rms.wav"


def test_probe_prints_one_json_line_with_both_factors():
    proc = subprocess.run([sys.executable, "-m", "reference_server.engines.rtf", "--wav", str(FIXTURE),
                           "--seconds", "1.5", "--repeats", "1"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["audio_s"] == 1.5 and figures["repeats"] == 1
    assert figures["rtf_cpu"] > 0 and figures["rtf_wall"] > 0


def test_probe_refuses_bad_input_naming_it(tmp_path):
    with pytest.raises(ValueError, match="at least 100 ms"):
        rtf.measure(b"\0\0" * 100)
    with pytest.raises(ValueError, match="--seconds"):
        rtf.read_pcm(FIXTURE, 0)
    assert rtf.main(["--wav", str(tmp_path / "missing.wav")]) == 2
