"""``harness.toml``: the settings ``harness run`` reads from the current directory.

A user's project keeps what it always passes (target, protocol, where its API key is, its SLO
file, its browser client) in one file, written by ``harness init``; a flag given on the command
line wins over the file. Paths in the file are relative to the file's folder. An unknown key or a
value of the wrong type is an error naming the key, never ignored: a typo must not silently run
the embedded server instead of the user's backend.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError

FILE_NAME = "harness.toml"

# section -> key -> type
SCHEMA: dict[str, dict[str, type]] = {
    "target": {"url": str, "protocol": str, "api_key_env": str, "capabilities": list, "stream_url": str},
    "run": {"profile": str, "suites": str, "slo": str, "out": str, "allow_remote": bool},
    "browser": {"client": str},
}
PATH_KEYS = {("run", "slo"), ("run", "out"), ("browser", "client")}


@dataclass(frozen=True)
class ProjectConfig:
    """The values found in a harness.toml (None where the file does not say)."""

    path: Path
    values: dict[tuple[str, str], Any]

    def get(self, section: str, key: str) -> Any:
        return self.values.get((section, key))


def load(path: Path | str) -> ProjectConfig:
    """Read and validate one harness.toml; UsageError naming the file and the key otherwise."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc}") from exc
    values: dict[tuple[str, str], Any] = {}
    for section, table in data.items():
        if section not in SCHEMA:
            raise UsageError(f"{path}: unknown section [{section}]; known sections: {', '.join(SCHEMA)}")
        if not isinstance(table, dict):
            raise UsageError(f"{path}: [{section}] must be a table")
        for key, value in table.items():
            kind = SCHEMA[section].get(key)
            if kind is None:
                raise UsageError(f"{path}: unknown key {section}.{key}; known keys of [{section}]: "
                                 f"{', '.join(SCHEMA[section])}")
            if not isinstance(value, kind):
                raise UsageError(f"{path}: {section}.{key} must be a {kind.__name__}, got {value!r}")
            if (section, key) in PATH_KEYS:
                value = str((path.parent / value).resolve())
            values[(section, key)] = value
    return ProjectConfig(path=path.resolve(), values=values)


def find(cwd: Path | str | None = None) -> ProjectConfig | None:
    """The harness.toml of ``cwd`` (default: the current directory), or None when there is none."""
    path = Path(cwd or Path.cwd()) / FILE_NAME
    return load(path) if path.is_file() else None
