"""The load user's settings: one table of options shared by the locustfile (which declares them as
Locust custom arguments, each with an environment variable) and ``harness load`` (which passes
them on the Locust command line). Imports no Locust.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.audio import Fixture, Manifest, load_manifest
from harness.errors import UsageError

HARD_MAX_USERS = 1000  # per Locust process: a typo in the web UI must not fork-bomb a backend
DEFAULT_FIXTURE_KIND = "utterance"
ENGINES = ("scripted", "pocketsphinx")


@dataclass(frozen=True)
class Option:
    flag: str  # Locust command-line flag
    env: str  # environment variable Locust reads it from
    default: Any
    help: str
    type: type = str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("--harness-api-key", "HARNESS_API_KEY", "", "API key of the target (else $REFERENCE_API_KEY)"),
    Option("--harness-protocol", "HARNESS_LOAD_PROTOCOL", "reference", "wire protocol: reference or deepgram"),
    Option("--harness-engine", "HARNESS_LOAD_ENGINE", "scripted", "engine each session asks for"),
    Option("--harness-fixtures", "HARNESS_LOAD_FIXTURES", "",
           "comma-separated fixture ids to stream (default: every utterance fixture)"),
    Option("--harness-script", "HARNESS_LOAD_SCRIPT", "", "scripted engine's script (default: the fixture's text)"),
    Option("--harness-loops", "HARNESS_LOAD_LOOPS", 1, "stream each fixture this many times in one session", int),
    Option("--harness-chunk-ms", "HARNESS_LOAD_CHUNK_MS", 100.0, "audio per frame, ms", float),
    Option("--harness-pace", "HARNESS_LOAD_PACE", 1.0, "1 = real time", float),
    Option("--harness-think-s", "HARNESS_LOAD_THINK_S", 0.2, "pause between a user's sessions, s", float),
    Option("--harness-duration-s", "HARNESS_LOAD_DURATION_S", 0.0,
           "start no new session this many seconds after the test started (0: until stopped); "
           "Locust's run time adds a drain after it, so no session is cut short", float),
    Option("--harness-samples-dir", "HARNESS_LOAD_SAMPLES_DIR", "",
           "folder for raw samples (samples-<pid>.jsonl); empty: keep none"),
    Option("--harness-max-users", "HARNESS_LOAD_MAX_USERS", HARD_MAX_USERS,
           f"users per process above which new users stop at once (at most {HARD_MAX_USERS})", int),
    Option("--harness-allow-remote", "HARNESS_LOAD_ALLOW_REMOTE", "", "'1' allows a target off loopback"),
)


class SettingsError(UsageError, ValueError):
    """A bad load setting; the message names it."""


@dataclass(frozen=True)
class LoadSettings:
    host: str
    api_key: str
    protocol: str = "reference"
    engine: str = "scripted"
    fixtures: tuple[str, ...] = ()
    script: str | None = None
    loops: int = 1
    chunk_ms: float = 100.0
    pace: float = 1.0
    think_s: float = 0.2
    duration_s: float = 0.0
    samples_dir: str | None = None
    max_users: int = HARD_MAX_USERS
    allow_remote: bool = False

    @classmethod
    def from_options(cls, options: Any, host: str | None, env: dict[str, str] | None = None) -> LoadSettings:
        """From Locust's parsed options (attributes named after ``OPTIONS``); raises SettingsError."""
        env = env or {}
        get = {o.dest: getattr(options, o.dest, o.default) for o in OPTIONS}
        if not host:
            raise SettingsError("no target: give Locust --host (e.g. http://127.0.0.1:8700)")
        api_key = get["harness_api_key"] or env.get("REFERENCE_API_KEY", "")
        if not api_key:
            raise SettingsError("no API key: give --harness-api-key or set HARNESS_API_KEY")
        fixtures = tuple(f.strip() for f in str(get["harness_fixtures"] or "").split(",") if f.strip())
        settings = cls(
            host=host.rstrip("/"), api_key=api_key, protocol=str(get["harness_protocol"]),
            engine=str(get["harness_engine"]), fixtures=fixtures, script=get["harness_script"] or None,
            loops=int(get["harness_loops"]), chunk_ms=float(get["harness_chunk_ms"]), pace=float(get["harness_pace"]),
            think_s=float(get["harness_think_s"]), duration_s=float(get["harness_duration_s"]),
            samples_dir=get["harness_samples_dir"] or None,
            max_users=int(get["harness_max_users"]),
            allow_remote=str(get["harness_allow_remote"]).lower() in ("1", "true", "yes"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        problems = []
        if self.engine not in ENGINES:
            problems.append(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.loops < 1:
            problems.append(f"loops must be >= 1, got {self.loops}")
        if not self.chunk_ms > 0:
            problems.append(f"chunk_ms must be > 0, got {self.chunk_ms}")
        if not self.pace > 0:
            problems.append(f"pace must be > 0 (real-time load), got {self.pace}")
        if self.duration_s < 0:
            problems.append(f"duration must be >= 0, got {self.duration_s}")
        if self.think_s < 0:
            problems.append(f"think time must be >= 0, got {self.think_s}")
        if not 1 <= self.max_users <= HARD_MAX_USERS:
            problems.append(f"max users must be within 1..{HARD_MAX_USERS}, got {self.max_users}")
        if problems:
            raise SettingsError("bad load settings: " + "; ".join(problems))

    def resolve_fixtures(self, manifest: Manifest | None = None) -> list[Fixture]:
        """The fixtures to stream; SettingsError naming an unknown or unusable id."""
        manifest = manifest or load_manifest()
        if not self.fixtures:
            chosen = manifest.of_kind(DEFAULT_FIXTURE_KIND)
            if not chosen:
                raise SettingsError(f"the manifest has no {DEFAULT_FIXTURE_KIND} fixture to stream")
            return chosen
        out = []
        for fid in self.fixtures:
            try:
                fixture = manifest.get(fid)
            except KeyError as exc:
                raise SettingsError(f"unknown fixture {fid!r}; known: {', '.join(manifest.ids())}") from exc
            if fixture.kind == "bad":
                raise SettingsError(f"fixture {fid!r} is a deliberately broken file; it cannot be streamed")
            out.append(fixture)
        return out


def locust_args(settings: dict[str, Any]) -> list[str]:
    """``{"harness_engine": "scripted", ...}`` -> ``["--harness-engine=scripted", ...]`` (None skipped).

    One ``--flag=value`` argument each: a value that starts with "-" (a random API key does, one
    time in 64) would otherwise be read by Locust's parser as a flag of its own."""
    by_dest = {o.dest: o for o in OPTIONS}
    out: list[str] = []
    for dest, value in settings.items():
        if dest not in by_dest:
            raise KeyError(f"unknown load setting {dest!r}; known: {', '.join(by_dest)}")
        if value is None:
            continue
        out.append(f"{by_dest[dest].flag}={Path(value) if isinstance(value, Path) else value}")
    return out
