"""Where a run happened: Python, package versions, git commit, machine. For the report's last section."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = (
    "transcription-harness", "websockets", "fastapi", "uvicorn", "pocketsphinx", "jiwer", "httpx", "locust",
    "playwright", "toxiproxy-python", "prometheus-client", "matplotlib", "jinja2", "pytest", "hypothesis",
)


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(cwd: Path | None = None) -> str:
    """``<sha>`` (``+dirty`` when the tree has changes), or ``unknown`` outside a checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except Exception:  # psutil missing or restricted /proc: the report still renders
        memory = "unknown"
    return {
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "memory": memory,
        "machine": platform.machine(),
    }


FIELDS = ("python", "implementation", "packages", "git_commit", "os", "platform", "cores", "memory", "machine")


def collect() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        **machine(),
    }
