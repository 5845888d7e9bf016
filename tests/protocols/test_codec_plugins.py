"""Codecs as plugins: loading by name, module:Class and path.py:Class, the checks made on load,
and the worked example of docs/writing-a-codec.md run through conformance scenarios."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import CodecError
from harness.protocols import registry
from harness.protocols.capabilities import apply_modifiers
from harness.protocols.events import Final, Partial

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "writing-a-codec.md"


def example_source() -> str:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- codec-example:start -->\s*```python\n(.*?)```\s*<!-- codec-example:end -->", text, re.S)
    assert block, f"{DOC} has no marked codec example"
    return block.group(1)


@pytest.fixture
def codec_dir(tmp_path: Path) -> Path:
    (tmp_path / "listen_codec.py").write_text(example_source(), encoding="utf-8")
    return tmp_path


def test_the_documented_example_loads_by_path_and_decodes(codec_dir: Path) -> None:
    codec = registry.get_codec(f"{codec_dir / 'listen_codec.py'}:ListenCodec")
    assert codec.capabilities == frozenset({"keepalive", "partials"})
    assert codec.has_offsets is False and codec.supports_resume is False  # derived from the capabilities
    partial = json.dumps({"type": "Results", "is_final": False, "start": 0.5, "duration": 0.4,
                          "channel": {"alternatives": [{"transcript": "hello"}]}})
    final = json.dumps({"type": "Results", "is_final": True, "start": 0.5, "duration": 0.9,
                        "metadata": {"request_id": "r-1"},
                        "channel": {"alternatives": [{"transcript": "hello there", "words": [
                            {"word": "hello", "start": 0.5, "end": 0.8}, {"word": "there", "start": 0.9, "end": 1.4}]}]}})
    assert codec.decode(partial) == [Partial(0, "hello", 500, 900)]
    (event,) = codec.decode(final)
    assert isinstance(event, Final) and event.segment_id == 0 and event.end_ms == 1400 and len(event.words) == 2
    assert codec.learned_session_id == "r-1"
    with pytest.raises(Exception, match="without a usable"):
        codec.decode(json.dumps({"type": "Results", "is_final": True}))


def test_bad_codecs_are_refused_naming_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "class NoCaps:\n    name = 'x'\n"
        "class WrongCap:\n    name = 'y'\n    capabilities = frozenset({'telepathy'})\n"
        + "".join(f"    def {m}(self, *a, **k): pass\n" for m in registry.METHODS)
    )
    with pytest.raises(CodecError, match="no capabilities"):
        registry.get_codec(f"{tmp_path / 'bad.py'}:NoCaps")
    with pytest.raises(CodecError, match="unknown capability 'telepathy'"):
        registry.get_codec(f"{tmp_path / 'bad.py'}:WrongCap")
    with pytest.raises(CodecError, match="does not exist"):
        registry.get_codec(f"{tmp_path / 'nowhere.py'}:X")
    with pytest.raises(CodecError, match="has no 'Missing'"):
        registry.get_codec(f"{tmp_path / 'bad.py'}:Missing")
    with pytest.raises(CodecError, match="cannot be imported"):
        registry.get_codec("no_such_module_here:Codec")


def test_builtins_are_entry_points_too() -> None:
    assert {"reference", "deepgram"} <= set(registry.known_protocols())
    assert registry.registered()["deepgram"] == "harness.protocols.deepgram:DeepgramCodec"


def test_capability_modifiers() -> None:
    base = frozenset({"keepalive"})
    assert apply_modifiers(base, "+health,-keepalive") == frozenset({"health"})
    assert apply_modifiers(base, ["stats"]) == frozenset({"keepalive", "stats"})
    with pytest.raises(ValueError, match="unknown capability 'nope'"):
        apply_modifiers(base, "+nope")


@pytest.fixture(scope="module")
def backend():
    from harness.services import ReferenceServer

    with ReferenceServer(engine="pocketsphinx") as server:
        yield server


def _run(spec: str, keyword: str, out: Path, cwd: Path, env_extra: dict[str, str], server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTEST_"))}
    cmd = [sys.executable, "-m", "harness.cli", "run", "--target", server.url, "--api-key", server.api_key,
           "--protocol", spec, "--suite", "conformance", "-k", keyword, "--out", str(out),
           "--slo", str(cwd / "slo.toml")]
    (cwd / "slo.toml").write_text('[slo.session_success]\nthresholds = ["rate>0.98"]\n')
    done = subprocess.run(cmd, cwd=cwd, env={**env, **env_extra}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.strip()]
    log = (out / "artifacts" / "logs" / "pytest-conformance.log").read_text()
    assert "left out:" in log and "lacks session_api" in log  # what it cannot run is named, not run
    return {r["scenario"]: r["status"] for r in records if r.get("record") == "scenario"}


def test_a_codec_from_a_file_runs_a_conformance_scenario(codec_dir: Path, backend, tmp_path: Path) -> None:
    spec = f"{codec_dir / 'listen_codec.py'}:ListenCodec"
    results = _run(spec, "lifecycle or session_creation", tmp_path / "run", codec_dir, {}, backend)
    assert results == {"test_lifecycle::test_session_lifecycle[" + spec + "]": "pass"}, results


def test_a_codec_by_module_name_runs_a_conformance_scenario(codec_dir: Path, backend, tmp_path: Path) -> None:
    results = _run("listen_codec:ListenCodec", "lifecycle or bad_input", tmp_path / "run", codec_dir,
                   {"PYTHONPATH": str(codec_dir)}, backend)
    assert list(results.values()) == ["pass"] and len(results) == 1, results
