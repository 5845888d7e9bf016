"""``harness image build [--tag T] [--rebuild-base] [--force]``: the reference server's image,
built without a registry (``harness.containers.image``). Prints each step's time; exit 2 naming
what is missing when it cannot (no engine, no debootstrap, not root for the first base)."""

from __future__ import annotations

import argparse

from harness.cli import HarnessError


def configure_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build (or reuse) the reference server's image")
    b.add_argument("--tag", help="image name (default transcription-harness/reference-server:<version>)")
    b.add_argument("--rebuild-base", action="store_true", help="make the Debian base again with debootstrap")
    b.add_argument("--force", action="store_true", help="rebuild the image even when its sources are unchanged")


def main(args: argparse.Namespace) -> int:
    from harness.containers.engine import EngineUnavailable
    from harness.containers.image import ImageBuildError, build

    try:
        report = build(args.tag, rebuild_base=args.rebuild_base, force=args.force,
                       log=lambda m: print(f"harness image: {m}", flush=True))
    except (EngineUnavailable, ImageBuildError) as exc:
        raise HarnessError(str(exc)) from exc
    print(f"built {report.line()}")
    return 0
