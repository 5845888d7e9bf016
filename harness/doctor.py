"""``harness doctor``: is everything the harness needs in place? Each problem says how to fix it."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.services import TOXIPROXY_MISSING, find_toxiproxy_server

CHROMIUM = "/usr/bin/chromium"
PACKAGES = ("fastapi", "uvicorn", "websockets", "pocketsphinx", "locust", "playwright", "jiwer",
            "hypothesis", "pytest-benchmark", "prometheus-client", "toxiproxy-python", "matplotlib")


@dataclass
class Finding:
    what: str
    ok: bool
    detail: str
    fix: str = ""


def check_packages() -> list[Finding]:
    out = []
    for name in PACKAGES:
        try:
            out.append(Finding(f"python package {name}", True, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append(Finding(f"python package {name}", False, "not installed",
                               'run scripts/bootstrap.sh, or pip install -e ".[dev]"'))
    return out


def check_binary(what: str, path: str | None, version_args: list[str], fix: str) -> Finding:
    if not path or not Path(path).exists():
        return Finding(what, False, "not found", fix)
    try:
        res = subprocess.run([path, *version_args], capture_output=True, text=True, timeout=20)
        detail = (res.stdout or res.stderr).strip().splitlines()[0] if (res.stdout or res.stderr) else path
        return Finding(what, True, detail)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding(what, False, f"{path} does not run: {exc}", fix)


def check_toxiproxy() -> Finding:
    if os.environ.get("TOXIPROXY_URL"):
        url = os.environ["TOXIPROXY_URL"]
        try:
            r = httpx.get(f"{url}/version", timeout=3)
            return Finding("toxiproxy", r.status_code == 200, f"TOXIPROXY_URL={url}: HTTP {r.status_code}",
                           "start toxiproxy-server there, or unset TOXIPROXY_URL")
        except httpx.HTTPError as exc:
            return Finding("toxiproxy", False, f"TOXIPROXY_URL={url}: {exc!r}", "start toxiproxy-server there")
    return check_binary("toxiproxy-server", find_toxiproxy_server(), ["-version"], TOXIPROXY_MISSING)


def check_fixtures() -> Finding:
    try:
        from harness.audio import load_manifest, verify_manifest
    except ImportError as exc:
        return Finding("audio fixtures", False, f"harness.audio unavailable: {exc}", "reinstall the package")
    try:
        manifest = load_manifest()
        problems = verify_manifest(manifest)
    except (OSError, ValueError, KeyError) as exc:
        return Finding("audio fixtures", False, str(exc), "run: harness fixtures")
    if problems:
        return Finding("audio fixtures", False, "; ".join(problems[:3]), "run: harness fixtures")
    return Finding("audio fixtures", True, f"{len(manifest.fixtures)} fixtures, checksums match")


def check_target(url: str, api_key: str | None) -> Finding:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(f"{url.rstrip('/')}/health", headers=headers, timeout=5)
    except httpx.HTTPError as exc:
        return Finding(f"target {url}", False, f"unreachable: {exc!r}", "start it, e.g. harness serve")
    return Finding(f"target {url}", r.status_code == 200, f"/health: HTTP {r.status_code}",
                   "check the URL and --api-key" if r.status_code != 200 else "")


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", help="also check that this backend answers /health")
    p.add_argument("--api-key", default=os.environ.get("REFERENCE_API_KEY"), help="API key for --target")


def check_docker() -> Finding:
    """The engine the docker suite needs, and the reference server's image in its store."""
    from harness.containers.engine import engine_problem

    problem = engine_problem()
    if problem:
        return Finding("docker engine", False, problem, "run `make bootstrap` as root (installs docker.io, starts dockerd)")
    from harness.containers import engine
    from harness.containers.image import default_tag

    c = engine.client()
    version = c.version().get("Version", "?")
    try:
        c.images.get(default_tag())
    except Exception:  # docker.errors.ImageNotFound; the SDK is imported lazily here
        return Finding("docker engine", False, f"engine {version}, but no image {default_tag()}", "harness image build")
    return Finding("docker engine", True, f"engine {version}, image {default_tag()}")


def main(args: argparse.Namespace) -> int:
    findings = check_packages()
    findings.append(check_toxiproxy())
    findings.append(check_binary("chromium", CHROMIUM, ["--version"],
                                 "apt-get install chromium (Playwright drives /usr/bin/chromium)"))
    findings.append(check_binary("flite", "/usr/bin/flite", ["--version"], "apt-get install flite"))
    findings.append(check_binary("sox", "/usr/bin/sox", ["--version"], "apt-get install sox"))
    findings.append(check_fixtures())
    findings.append(check_docker())
    if args.target:
        findings.append(check_target(args.target, args.api_key))
    width = max(len(f.what) for f in findings)
    for f in findings:
        mark = "ok  " if f.ok else "FAIL"
        print(f"{mark} {f.what:<{width}}  {f.detail}")
        if not f.ok and f.fix:
            print(f"     {'':<{width}}  fix: {f.fix}")
    bad = [f for f in findings if not f.ok]
    print(f"\n{len(findings) - len(bad)} ok, {len(bad)} to fix")
    return 0 if not bad else 2
