"""``harness fixtures [--out DIR] [--check]``: generate the audio fixtures, or verify them.

Speech comes from flite (voices rms, awb, slt, kal16) and is shaped with sox into 16 kHz mono
s16le WAVs with 0.5 s of leading and 1.0 s of trailing silence. Generation is deterministic:
flite has no randomness, sox runs with ``-R`` (fixed seeds, for the white noise) and ``-D`` (no
dither), and WAV headers carry no timestamps, so regenerating reproduces every sha256 in
manifest.json. ``--check`` recomputes them and names every file that is missing or changed.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.audio import (
    MANIFEST_NAME,
    SAMPLE_RATE,
    Fixture,
    Manifest,
    Turn,
    default_fixtures_dir,
    load_manifest,
    read_pcm,
    sha256_file,
    verify_manifest,
)
from harness.cli import HarnessError

LEAD_S = 0.5
TRAIL_S = 1.0
TURN_PAUSE_S = 1.0
VOICES = ("rms", "awb", "slt", "kal16")
# 10 ms windows whose RMS reaches this (about -40 dBFS) count as speech when measuring onset/end.
SPEECH_RMS = 300.0
SPEECH_WINDOW_S = 0.01


@dataclass(frozen=True)
class Utterance:
    id: str
    domain: str
    voice: str
    text: str


# Texts were chosen for PocketSphinx's default en-us model (all but two at WER 0 on their voice)
# and carry action-item phrasing ("we need to", "please", "can you", "let's", "I will",
# "make sure") with owners and due phrases for the pipeline's tasks step.
UTTERANCES: tuple[Utterance, ...] = (
    Utterance("meeting-01-rms", "meeting", "rms", "we need to send the report to the client by friday"),
    Utterance("meeting-02-rms", "meeting", "rms", "can you review the budget before the meeting tomorrow"),
    Utterance("medical-01-rms", "medical", "rms", "the patient is a fifty year old man with a history of high blood pressure"),
    Utterance("support-01-rms", "support", "rms", "the internet connection keeps dropping every few minutes"),
    Utterance("meeting-03-awb", "meeting", "awb", "let's move the team meeting to next week"),
    Utterance("meeting-04-awb", "meeting", "awb", "john can you update the project schedule by the end of the day"),
    Utterance("medical-02-awb", "medical", "awb", "blood pressure is normal and the heart rate is seventy"),
    Utterance("medical-03-awb", "medical", "awb", "please take the medicine twice a day for one week"),
    Utterance("meeting-05-slt", "meeting", "slt", "please make sure the new version is ready for the release"),
    Utterance("support-02-slt", "support", "slt", "i will call the customer and check the status of the order"),
    Utterance("meeting-06-slt", "meeting", "slt", "sarah please send the meeting notes to everyone"),
    Utterance("medical-04-slt", "medical", "slt", "make sure the patient drinks plenty of water"),
    Utterance("support-03-kal16", "support", "kal16", "thank you for calling how can i help you today"),
    Utterance("support-04-kal16", "support", "kal16", "my account is locked and i cannot log in"),
    Utterance("medical-05-kal16", "medical", "kal16", "the patient should come back in two weeks for a follow up"),
)

# A weekly meeting: three voices, ~1 s between turns, over a minute long.
CONVERSATION_ID = "conversation-meeting"
CONVERSATION: tuple[tuple[str, str], ...] = (
    ("rms", "good morning everyone let's start the weekly meeting"),
    ("awb", "the new version is almost ready for the release"),
    ("rms", "that is good news what is the status of the testing"),
    ("kal16", "most of the tests are done but we found a problem with the search page"),
    ("rms", "can you fix the problem by the end of the week"),
    ("kal16", "yes i will fix it by friday"),
    ("awb", "we also need to update the user guide before the release"),
    ("rms", "please send me the user guide when it is ready"),
    ("awb", "i will send it to you tomorrow"),
    ("kal16", "the customer called yesterday about the order"),
    ("rms", "what did the customer say"),
    ("kal16", "the order was late and they want their money back"),
    ("awb", "i will call the customer this afternoon"),
    ("rms", "make sure we answer every customer within one day"),
    ("kal16", "okay i will tell the support team"),
    ("awb", "thank you everyone let's meet again next week"),
)

TELEPHONE = Utterance("telephone-support-awb", "support", "awb", "the internet connection keeps dropping every few minutes")
TELEPHONE_RATE = 8000
NOISE_AMPLITUDE = 0.02  # sox `vol` factor: quiet hiss, about -40 dBFS RMS


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None, help=f"fixture folder (default: {default_fixtures_dir()})")
    parser.add_argument("--check", action="store_true", help="verify every file against manifest.json's sha256 (exit 1 on a mismatch)")


def main(args: argparse.Namespace) -> int:
    out: Path = args.out or default_fixtures_dir()
    if args.check:
        return check(out)
    manifest = generate(out)
    print(f"wrote {len(manifest)} fixtures and {MANIFEST_NAME} to {out}")
    return 0


# --------------------------------------------------------------------------------------------
# --check


def verify(folder: Path) -> list[str]:
    """One line per fixture that is missing or whose sha256 differs from the manifest."""
    try:
        return verify_manifest(load_manifest(folder))
    except (FileNotFoundError, ValueError) as exc:
        raise HarnessError(str(exc)) from exc


def check(folder: Path) -> int:
    problems = verify(folder)
    for line in problems:
        print(f"mismatch: {line}")
    if problems:
        print(f"{len(problems)} fixture(s) in {folder} do not match {MANIFEST_NAME}; regenerate with `harness fixtures`")
        return 1
    print(f"{len(load_manifest(folder))} fixtures in {folder} match {MANIFEST_NAME}")
    return 0


# --------------------------------------------------------------------------------------------
# generation


def _tool_versions() -> dict[str, str]:
    """The generators' versions, recorded so a sha256 mismatch after an upgrade explains itself."""
    missing = [t for t in ("flite", "sox") if shutil.which(t) is None]
    if missing:
        raise HarnessError(f"{' and '.join(missing)} not found on PATH: install Debian's packages (apt-get install flite sox)")
    voices = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False).stdout.split()
    absent = [v for v in VOICES if v not in voices]
    if absent:
        raise HarnessError(f"flite lacks the voice(s) {', '.join(absent)} (it lists: {' '.join(voices[2:])})")
    flite = subprocess.run(["flite", "--version"], capture_output=True, text=True, check=False).stdout
    sox = subprocess.run(["sox", "--version"], capture_output=True, text=True, check=False).stdout
    flite_version = next((ln.split("version:", 1)[1].strip() for ln in flite.splitlines() if "version:" in ln), "unknown")
    return {"flite": flite_version, "sox": sox.strip().removeprefix("sox:").strip() or "unknown"}


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip()}")


def _sox(inputs: list[str], output: Path, *effects: str, rate: int = SAMPLE_RATE, fmt: tuple[str, ...] | None = None) -> None:
    """sox, repeatable (-R) and undithered (-D), writing mono s16le at ``rate`` unless ``fmt`` says otherwise."""
    fmt = fmt or ("-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer")
    _run(["sox", "-R", "-D", *inputs, *fmt, str(output), *effects])


def _speak(voice: str, text: str, path: Path) -> None:
    _run(["flite", "-voice", voice, "-t", text, "-o", str(path)])


def speech_bounds(pcm: bytes, sample_rate: int = SAMPLE_RATE) -> tuple[float, float] | None:
    """(onset_s, end_s) of the audio whose 10 ms RMS reaches SPEECH_RMS, or None if none does."""
    samples = array.array("h", pcm)
    win = max(1, int(sample_rate * SPEECH_WINDOW_S))
    loud = [
        i
        for i in range(0, len(samples), win)
        if math.sqrt(sum(x * x for x in samples[i : i + win]) / len(samples[i : i + win])) >= SPEECH_RMS
    ]
    if not loud:
        return None
    return round(loud[0] / sample_rate, 2), round(min(len(samples), loud[-1] + win) / sample_rate, 2)


def _describe(folder: Path, fid: str, kind: str, text: str, voice: str, *, sample_rate: int = SAMPLE_RATE, **extra) -> Fixture:
    """A manifest entry for a generated file: duration, measured speech bounds and sha256."""
    path = folder / f"{fid}.wav"
    pcm = read_pcm(path, sample_rate=sample_rate)
    bounds = speech_bounds(pcm, sample_rate) if text else None
    return Fixture(
        id=fid,
        file=path.name,
        text=text,
        voice=voice,
        duration_s=len(pcm) / (2 * sample_rate),  # exact: n / 16000 has a short decimal form
        speech_onset_s=bounds[0] if bounds else None,
        speech_end_s=bounds[1] if bounds else None,
        sha256=sha256_file(path),
        kind=kind,
        sample_rate=sample_rate,
        path=path,
        **extra,
    )


def _utterance(work: Path, out: Path, u: Utterance) -> Fixture:
    raw = work / f"{u.id}.raw.wav"
    _speak(u.voice, u.text, raw)
    _sox([str(raw)], out / f"{u.id}.wav", "pad", str(LEAD_S), str(TRAIL_S))
    return _describe(out, u.id, "utterance", u.text, u.voice, domain=u.domain)


def _conversation(work: Path, out: Path) -> Fixture:
    pause = work / "pause.wav"
    _sox(["-n"], pause, "trim", "0", str(TURN_PAUSE_S))
    inputs: list[str] = []
    turns: list[Turn] = []
    at = round(LEAD_S * SAMPLE_RATE)  # in samples, so turn times stay exact
    for i, (voice, text) in enumerate(CONVERSATION):
        raw = work / f"turn-{i:02d}.wav"
        _speak(voice, text, raw)
        n = len(read_pcm(raw)) // 2
        turns.append(Turn(voice=voice, text=text, start_s=at / SAMPLE_RATE, end_s=(at + n) / SAMPLE_RATE))
        at += n + round(TURN_PAUSE_S * SAMPLE_RATE)
        inputs += [str(raw), str(pause)] if i < len(CONVERSATION) - 1 else [str(raw)]
    _sox(inputs, out / f"{CONVERSATION_ID}.wav", "pad", str(LEAD_S), str(TRAIL_S))
    voices = ",".join(dict.fromkeys(v for v, _ in CONVERSATION))
    text = " ".join(text for _, text in CONVERSATION)
    return _describe(out, CONVERSATION_ID, "conversation", text, voices, domain="meeting", turns=tuple(turns))


def _telephone(work: Path, out: Path) -> Fixture:
    u = TELEPHONE
    raw = work / f"{u.id}.raw.wav"
    _speak(u.voice, u.text, raw)
    # Telephone band (300-3400 Hz), then 8 kHz; the padding is added after so it stays digital silence.
    _sox([str(raw)], out / f"{u.id}.wav", "sinc", "300-3400", "rate", str(TELEPHONE_RATE), "pad", str(LEAD_S), str(TRAIL_S), rate=TELEPHONE_RATE)
    return _describe(out, u.id, "telephone", u.text, u.voice, sample_rate=TELEPHONE_RATE, domain=u.domain)


def _bad(work: Path, out: Path, source: Path) -> list[Fixture]:
    """Files that must be refused, one defect each; they describe themselves without read_pcm."""
    made: list[tuple[str, str]] = []

    stereo = out / "bad-stereo.wav"
    _sox([str(source)], stereo, "trim", "0", "1", fmt=("-r", str(SAMPLE_RATE), "-c", "2", "-b", "16", "-e", "signed-integer"))
    made.append((stereo.stem, "stereo: 2 channels instead of 1"))

    float44 = out / "bad-44k-float.wav"
    _sox([str(source)], float44, "trim", "0", "1", fmt=("-r", "44100", "-c", "1", "-b", "32", "-e", "floating-point"))
    made.append((float44.stem, "44100 Hz 32-bit float instead of 16 kHz 16-bit PCM"))

    truncated = out / "bad-truncated-header.wav"
    truncated.write_bytes(stereo.read_bytes()[:24])  # RIFF/WAVE and the start of 'fmt ', cut mid-chunk
    made.append((truncated.stem, "truncated header: the file ends inside the 'fmt ' chunk"))

    not_wav = out / "bad-not-a-wav.wav"
    not_wav.write_bytes(b"This is plain text saved with a .wav name; it holds no audio at all.\n")
    made.append((not_wav.stem, "not a WAV file: plain text"))

    fixtures = []
    for fid, defect in made:
        path = out / f"{fid}.wav"
        fixtures.append(
            Fixture(id=fid, file=path.name, text="", voice="", duration_s=0.0, speech_onset_s=None,
                    sha256=sha256_file(path), kind="bad", defect=defect, path=path)
        )
    return fixtures


def generate(out: Path) -> Manifest:
    """Write every fixture and manifest.json into ``out`` (replacing files of the same names)."""
    tools = _tool_versions()
    out.mkdir(parents=True, exist_ok=True)
    fixtures: list[Fixture] = []
    with tempfile.TemporaryDirectory(prefix="harness-fixtures-") as tmp:
        work = Path(tmp)
        fixtures += [_utterance(work, out, u) for u in UTTERANCES]
        fixtures.append(_conversation(work, out))

        _sox(["-n"], out / "silence-3s.wav", "trim", "0", "3")
        fixtures.append(_describe(out, "silence-3s", "silence", "", ""))
        _sox(["-n"], out / "noise-3s.wav", "synth", "3", "whitenoise", "vol", str(NOISE_AMPLITUDE))
        fixtures.append(_describe(out, "noise-3s", "noise", "", ""))

        fixtures.append(_telephone(work, out))
        fixtures += _bad(work, out, out / f"{UTTERANCES[0].id}.wav")

    manifest = Manifest(folder=out, fixtures=tuple(fixtures), generator={"tools": tools, "lead_s": LEAD_S, "trail_s": TRAIL_S})
    text = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n"
    (out / MANIFEST_NAME).write_text(text, encoding="utf-8")
    return manifest
