"""``harness init``: a starter ``harness.toml`` and the files it points at, in a folder the user owns.

Written: ``harness.toml`` (target, protocol, where the API key is, the SLO file, the browser
client), ``slo.toml`` (a copy of the CI profile's SLO file, to tighten or loosen) and
``browser-client.toml`` (a copy of the /live page's client description, to change for the
user's own web client). An existing file is never overwritten unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UsageError

TEMPLATE = """\
# harness.toml: what `harness run` uses when it runs in this folder. A command-line flag wins
# over the value here; paths are relative to this file.

[target]
# Your backend's base URL (http or https; the WebSocket URL is derived from it).
url = "{url}"
# The wire protocol it speaks: a built-in codec ({protocols}), an installed codec plugin, or your
# own codec as "module:Class" or "path/to/codec.py:Class" (docs/writing-a-codec.md).
protocol = "{protocol}"
# The environment variable holding the API key (never put the key itself in this file).
api_key_env = "{api_key_env}"
# Optional: capabilities your backend has beyond its codec's, or lacks ("-name").
# capabilities = ["+health", "-scripted_engine"]

[run]
profile = "ci"
# suites = "conformance,chaos,property"
# The SLO file this project owns (copied from the CI profile's by harness init).
slo = "slo.toml"

[browser]
# How the browser suite finds and reads your web client (copied from the /live page's).
client = "browser-client.toml"
"""


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=".", help="folder to write into (default: the current one)")
    p.add_argument("--target", default="http://127.0.0.1:8700", help="backend base URL to write")
    p.add_argument("--protocol", default="reference", help="wire protocol to write")
    p.add_argument("--api-key-env", default="HARNESS_API_KEY", help="environment variable of the API key")
    p.add_argument("--force", action="store_true", help="overwrite files that already exist")


def files(args: argparse.Namespace) -> dict[str, str]:
    """file name -> content of everything ``harness init`` writes."""
    from harness.paths import shipped_scenarios
    from harness.protocols.registry import known_protocols
    from harness.slo import default_slo_file

    client = shipped_scenarios() / "browser" / "client.toml"
    return {
        "harness.toml": TEMPLATE.format(url=args.target, protocol=args.protocol, api_key_env=args.api_key_env,
                                        protocols=", ".join(known_protocols())),
        "slo.toml": default_slo_file("ci").read_text(encoding="utf-8"),
        "browser-client.toml": client.read_text(encoding="utf-8"),
    }


def main(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise UsageError(f"--dir {folder} is not a folder")
    wanted = files(args)
    existing = [name for name in wanted if (folder / name).exists()]
    if existing and not args.force:
        raise UsageError(f"{', '.join(existing)} already exist in {folder.resolve()}; "
                         "nothing was written (use --force to overwrite)")
    for name, text in wanted.items():
        (folder / name).write_text(text, encoding="utf-8")
        print(f"wrote {folder / name}")
    print(f"next: export {args.api_key_env}=<your key>; harness run")
    return 0
