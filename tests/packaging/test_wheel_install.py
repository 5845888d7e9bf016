"""The built wheel works outside the checkout: its suites and fixtures ship with it.

Builds the wheel (``pip wheel --no-deps``) from a copy of the tracked files, installs it with
``--no-deps`` into a new venv, and runs ``harness init`` and ``harness run`` from a temporary
directory against a reference server started separately (as a user's backend would be). The new
venv reaches the dependencies (FastAPI, PocketSphinx ...) through one ``.pth`` line naming this
venv's site-packages, so nothing is downloaded again; ``harness`` itself must come from the wheel,
which the test checks, so a file missing from the wheel fails here rather than for a user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from harness.services import ReferenceServer

REPO = Path(__file__).resolve().parents[2]
SUBSET = "lifecycle or bad_input"  # two conformance scenarios (one real-time session of 5 s) giving every CI SLO a sample


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    return [f for f in out if f and not f.startswith("reports/") and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a new venv with only the built wheel installed in it."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for rel in _tracked_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                   check=True, timeout=300)
    wheels = list(dist.glob("transcription_harness-*.whl"))
    assert len(wheels) == 1, f"expected one wheel, got {wheels}"
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheels[0])],
                   check=True, timeout=300)
    return env_dir / "bin"


@pytest.fixture(scope="module")
def server():
    with ReferenceServer(engine="pocketsphinx") as srv:
        yield srv


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTEST_", "REFERENCE_"))}
    return {**env, **extra}


def test_the_wheel_carries_its_suites_and_fixtures(installed: Path, tmp_path: Path) -> None:
    probe = ("import harness, harness.paths, harness.audio; print(harness.__file__); "
             "print(harness.paths.shipped_scenarios()); print(len(harness.audio.load_manifest()))")
    out = subprocess.run([str(installed / "python"), "-c", probe], cwd=tmp_path, env=_clean_env(),
                         check=True, capture_output=True, text=True).stdout.split("\n")
    venv_dir = str(installed.parent)
    assert out[0].startswith(venv_dir), f"harness was imported from {out[0]}, not from the wheel in {venv_dir}"
    assert out[1].startswith(venv_dir) and out[1].endswith("harness_scenarios"), out[1]
    assert int(out[2]) > 0


def test_the_relay_suite_runs_the_example_relay_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    probe = "import harness.relay.sut as s; print(s.EXAMPLE_RELAY)"
    relay = subprocess.run([str(installed / "python"), "-c", probe], cwd=tmp_path, env=_clean_env(),
                           check=True, capture_output=True, text=True).stdout.strip()
    assert relay.startswith(str(installed.parent)) and relay.endswith("harness_examples/relay"), relay
    # one scenario of the relay suite: the example relay started from the wheel, and the vendor stand-in
    run = subprocess.run([str(installed / "harness"), "run", "--suite", "relay", "-k", "wrong-key", "--out",
                          str(tmp_path / "run")], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
                         timeout=300)
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines() if line]
    scenarios = {r["scenario"]: r["status"] for r in records if r.get("record") == "scenario"}
    assert len(scenarios) == 1 and set(scenarios.values()) == {"pass"}, run.stdout[-3000:] + run.stderr[-2000:]


def test_run_from_any_directory_with_harness_toml(installed: Path, server, tmp_path: Path) -> None:
    harness = str(installed / "harness")
    init = subprocess.run([harness, "init", "--target", server.url, "--protocol", "reference"], cwd=tmp_path,
                          env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    assert {"harness.toml", "slo.toml", "browser-client.toml"} <= {p.name for p in tmp_path.iterdir()}
    again = subprocess.run([harness, "init"], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True)
    assert again.returncode == 2 and "already exist" in again.stderr  # never overwrites the user's files
    # The SLO file is the user's: judge what does not depend on how busy this machine is.
    (tmp_path / "slo.toml").write_text('[slo.session_success]\nthresholds = ["rate>0.98"]\n'
                                       '[slo.lost_words]\nthresholds = ["sum==0"]\n')
    # No --target, --protocol or --api-key: harness.toml gives them (the key through its env var).
    run = subprocess.run([harness, "run", "--suite", "conformance", "-k", SUBSET, "--out", str(tmp_path / "run")],
                         cwd=tmp_path, env=_clean_env(HARNESS_API_KEY=server.api_key),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text()) if (tmp_path / "run" / "run.json").exists() else {}
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines() if line]
    scenarios = {r["scenario"]: r["status"] for r in records if r.get("record") == "scenario"}
    assert len(scenarios) == 2 and set(scenarios.values()) == {"pass"}, scenarios
    if info:
        assert info.get("target") == server.url


def test_a_missing_api_key_env_is_a_harness_error(installed: Path, server, tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text(f'[target]\nurl = "{server.url}"\napi_key_env = "NO_SUCH_KEY_VAR"\n')
    run = subprocess.run([str(installed / "harness"), "run", "--suite", "conformance"], cwd=tmp_path,
                         env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "NO_SUCH_KEY_VAR" in run.stderr, run.stderr
