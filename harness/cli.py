"""The ``harness`` command: run | serve | faults | load | report | fixtures | doctor | image | init |
codec-check.

Each subcommand lives in its own module, which provides ``configure_parser(parser)`` and
``main(args) -> int``; this file only dispatches, importing a module when its command runs so
that ``harness serve`` does not pay for Locust or Playwright.

Exit codes: 0 pass, 1 an SLO or check failed, 2 a harness error (bad input, missing tool).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from harness import __version__
from harness.errors import BackendError, HarnessError, UsageError  # noqa: F401 - re-exported for callers

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("harness.runner", "run scenario suites and write a reliability report"),
    "serve": ("harness.serve_cmd", "start the reference server in the foreground"),
    "faults": ("harness.faults_cmd", "put a fault schedule in front of a loopback WebSocket backend"),
    "load": ("harness.load.cli", "generate load with Locust (headless, web UI or distributed)"),
    "report": ("harness.report.cli", "render a run directory again, optionally against a baseline"),
    "fixtures": ("harness.fixtures_cmd", "generate or verify the audio fixtures"),
    "doctor": ("harness.doctor", "check that everything the harness needs is in place"),
    "image": ("harness.containers.cli", "build the reference server's Docker image (no registry needed)"),
    "init": ("harness.init_cmd", "write a starter harness.toml and SLO file in this folder"),
    "codec-check": ("harness.codec_check", "try a codec: one live session and/or frames recorded from your backend"),
}

EXIT_PASS, EXIT_FAIL, EXIT_HARNESS_ERROR = 0, 1, 2


def build_parser(commands: dict[str, tuple[str, str]] = COMMANDS, load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Test and chaos harness for real-time transcription backends.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if name == load:  # only the chosen command's module is imported and configures its options
            importlib.import_module(module_name).configure_parser(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load=chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(args._module)
        return int(module.main(args) or 0)
    except BackendError as exc:  # the backend failed: a verdict, not a harness problem
        print(f"harness: backend failure: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_HARNESS_ERROR
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return EXIT_HARNESS_ERROR


if __name__ == "__main__":
    sys.exit(main())
