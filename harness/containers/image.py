"""The reference server as a Docker image, built without a registry.

1. **Base** (``harness-debian-base:<suite>``): a Debian ``minbase`` root made with ``debootstrap``
   from the mirror apt uses, with ``python3`` and ``python3-venv``, imported with ``docker import``.
   The slow step (about a minute): the root is kept as a tarball in the cache folder and the
   image in the engine's store, so it is made once per machine; a new machine (or an engine
   whose store was wiped) imports the tarball, or makes it again.
2. **Wheels**: the project's own wheel and the server's dependencies (what its sources import,
   at the versions the project's metadata declares) downloaded or built on the host with ``pip wheel``, kept in the
   cache folder by requirement set.
3. **Image** (``transcription-harness/reference-server:<version>``): the base, the wheels installed
   with ``pip install --no-index`` into a venv, ``python -m reference_server`` as the entry point.
   Labelled with a hash of the server's sources: an image with the same hash is reused as is.

The image's Python and the host's must be the same minor version (the wheels are the host's).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.containers import engine

DIST = "transcription-harness"
IMAGE_REPO = "transcription-harness/reference-server"
BASE_REPO = "harness-debian-base"
# Needed at run time though no import names it: uvicorn loads its WebSocket implementation by name.
RUNTIME_ONLY = ("websockets",)
SOURCE_HASH_LABEL = "transcription-harness.source-hash"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
REPO = Path(__file__).resolve().parents[2]

Log = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """The image could not be built; the message names the step and what is missing."""


@dataclass
class BuildReport:
    """What ``build`` did and how long each step took (seconds)."""

    image: str
    base: str
    steps: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{k} {v:.1f} s" + (" (cached)" if k in self.reused else "") for k, v in self.steps.items()]
        return f"{self.image}: " + ", ".join(parts)


def cache_dir() -> Path:
    root = os.environ.get("HARNESS_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                          os.path.expanduser("~/.cache"), "transcription-harness")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_tag() -> str:
    try:
        version = metadata.version(DIST)
    except metadata.PackageNotFoundError:
        version = "dev"
    return f"{IMAGE_REPO}:{version}"


# --- the base -----------------------------------------------------------------------------
def host_suite() -> str:
    """The host's Debian release (``bookworm``): the base matches the host's Python."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        text = ""
    m = re.search(r"^VERSION_CODENAME=(\S+)", text, re.MULTILINE)
    return m.group(1).strip('"') if m else "bookworm"


def apt_mirror(sources: list[Path] | None = None) -> str:
    """The Debian mirror apt uses (deb822 ``URIs:`` or a ``deb URL suite`` line), else deb.debian.org."""
    if sources is None:
        sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^URIs:\s*(\S+)|^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", text, re.MULTILINE):
            url = m.group(1) or m.group(2)
            if "security" not in url and url.startswith(("http://", "https://")):
                return url.rstrip("/")
    return DEFAULT_MIRROR


def _image_exists(client: Any, ref: str) -> Any:
    import docker

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def ensure_base(client: Any, report: BuildReport, log: Log, rebuild: bool = False) -> str:
    """The base image: reused from the engine's store, else imported from the cached tarball, else
    made with debootstrap (root only) and cached."""
    ref = report.base
    started = time.monotonic()
    if not rebuild and _image_exists(client, ref) is not None:
        report.steps["base"] = time.monotonic() - started
        report.reused.append("base")
        log(f"base {ref}: in the image store")
        return ref
    suite = ref.split(":", 1)[1]
    tarball = cache_dir() / f"debian-{suite}-minbase-python3.tar"
    if rebuild or not tarball.is_file():
        _debootstrap(suite, tarball, log)
    log(f"base {ref}: docker import {tarball}")
    repo, tag = ref.split(":", 1)
    with open(tarball, "rb") as fh:
        client.api.import_image_from_data(fh, repository=repo, tag=tag)
    if _image_exists(client, ref) is None:
        raise ImageBuildError(f"docker import of {tarball} did not produce {ref}")
    report.steps["base"] = time.monotonic() - started
    return ref


def _debootstrap(suite: str, tarball: Path, log: Log) -> None:
    missing = [t for t in ("debootstrap",) if shutil.which(t) is None]
    if missing:
        raise ImageBuildError("the base image needs debootstrap, which is not installed "
                              "(Debian: `sudo apt-get install debootstrap`, or `make bootstrap` as root)")
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap must run as root to make the base image: run `sudo harness image build` "
                              f"once (it is cached in {tarball.parent}), or `make bootstrap` as root")
    mirror = apt_mirror()
    work = Path(tempfile.mkdtemp(prefix="harness-base-", dir=str(tarball.parent)))
    root = work / "root"
    cmd = ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", suite, str(root), mirror]
    log(f"base: {' '.join(cmd)} (about a minute)")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"debootstrap failed (exit {proc.returncode}) from {mirror}:\n"
                                  f"{(proc.stdout + proc.stderr)[-2000:]}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(root / junk, ignore_errors=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.replace(tarball)  # a crash mid-way never leaves a half tarball to be imported later
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the wheels ---------------------------------------------------------------------------
def server_imports(root: Path | None = None) -> set[str]:
    """The top-level modules outside the standard library that the server's sources import."""
    import ast

    root = root or REPO / "reference_server"
    found: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("reference_server", "__future__")}


def server_requirements(root: Path | None = None) -> list[str]:
    """What the server imports, as distributions: with the version ranges the project declares,
    by name alone for one that comes in through another (starlette through fastapi). Read from the
    sources, so the image follows the server when it starts using a new library."""
    try:
        declared = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError as exc:
        raise ImageBuildError(f"{DIST} is not installed in this Python ({sys.executable}): pip install -e .") from exc
    specs = {}
    for req in declared:
        if ";" in req:
            continue  # extras and markers: not the server's
        name = re.split(r"[<>=!~ \[(]", req, maxsplit=1)[0].strip().lower().replace("_", "-")
        specs[name] = req.replace(" ", "")
    owners = metadata.packages_distributions()
    out, unknown = {specs.get(n, n) for n in RUNTIME_ONLY}, []
    for module in sorted(server_imports(root)):
        dists = owners.get(module)
        if not dists:
            unknown.append(module)
            continue
        name = dists[0].lower().replace("_", "-")
        out.add(specs.get(name, name))
    if unknown:
        raise ImageBuildError(f"the server imports {', '.join(unknown)}, which no installed distribution provides: "
                              "add it to the project's dependencies and pip install -e .")
    return sorted(out)


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageBuildError(f"{what} failed (pip exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")


def ensure_wheels(report: BuildReport, log: Log) -> Path:
    """Dependency wheels in a cache folder named after the requirements (reused when present)."""
    started = time.monotonic()
    reqs = server_requirements()
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    key = hashlib.sha256(json.dumps([py, reqs]).encode()).hexdigest()[:16]
    folder = cache_dir() / f"wheels-{py}-{key}"
    if (folder / ".complete").is_file():
        report.reused.append("wheels")
        log(f"wheels: {folder} (cached)")
    else:
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"wheels: pip wheel {' '.join(reqs)}")
        _pip(["wheel", "--quiet", "--wheel-dir", str(tmp), *reqs], "downloading the server's dependency wheels")
        (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n")
        (tmp / ".complete").write_text("")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)
    report.steps["wheels"] = time.monotonic() - started
    return folder


def source_hash() -> str:
    """A hash of what goes into the image from this checkout: the server's sources and pyproject."""
    h = hashlib.sha256()
    files = [REPO / "pyproject.toml"] + sorted(p for p in (REPO / "reference_server").rglob("*")
                                               if p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    h.update(DOCKERFILE.encode())
    h.update(json.dumps(server_requirements()).encode())  # a new dependency is a new image
    return h.hexdigest()[:20]


def project_wheel(out: Path, log: Log) -> Path:
    log("wheels: pip wheel --no-deps . (the project's own wheel)")
    _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(REPO)], "building the project's wheel")
    wheels = sorted(out.glob("transcription_harness-*.whl"))
    if not wheels:
        raise ImageBuildError(f"pip wheel did not leave a transcription_harness wheel in {out}")
    return wheels[-1]


# --- the image ----------------------------------------------------------------------------
DOCKERFILE = """\
FROM {base}
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/server \\
 && /opt/server/bin/pip install --no-index --no-cache-dir --find-links /tmp/wheels -r /tmp/wheels/requirements.txt \\
 && /opt/server/bin/pip install --no-index --no-cache-dir --no-deps /tmp/wheels/{project_wheel} \\
 && rm -rf /tmp/wheels && mkdir -p /data
ENV PYTHONUNBUFFERED=1
WORKDIR /data
EXPOSE 8700
ENTRYPOINT ["/opt/server/bin/python", "-m", "reference_server", "--host", "0.0.0.0", "--port", "8700", "--db", "/data/reference.sqlite3"]
CMD ["--engine", "scripted"]
"""


def _python_matches(client: Any, base: str) -> None:
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = client.containers.run(base, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                remove=True).decode().strip()
    if out != want:
        raise ImageBuildError(f"the base image {base} has Python {out} and this harness runs {want}: the wheels are "
                              f"built here, so run `harness image build` from a Python {out} environment")


def build(tag: str | None = None, rebuild_base: bool = False, force: bool = False, log: Log = print,
          client: Any = None) -> BuildReport:
    """Build (or reuse) the reference server's image; returns what was done and how long it took."""
    docker_client = client or engine.client(timeout_s=600)
    report = BuildReport(image=tag or default_tag(), base=f"{BASE_REPO}:{host_suite()}")
    total = time.monotonic()
    base = ensure_base(docker_client, report, log, rebuild=rebuild_base)
    digest = source_hash()
    existing = _image_exists(docker_client, report.image)
    if existing is not None and not force and not rebuild_base and \
            (existing.labels or {}).get(SOURCE_HASH_LABEL) == digest:
        report.steps["image"] = 0.0
        report.reused.append("image")
        report.steps["total"] = time.monotonic() - total
        log(f"image {report.image}: up to date (sources {digest})")
        return report
    _python_matches(docker_client, base)
    wheels = ensure_wheels(report, log)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="harness-image-") as ctx:
        ctx_path = Path(ctx)
        shutil.copytree(wheels, ctx_path / "wheels", ignore=shutil.ignore_patterns(".complete"))
        wheel = project_wheel(ctx_path / "wheels", log)
        (ctx_path / "Dockerfile").write_text(DOCKERFILE.format(base=base, project_wheel=wheel.name))
        log(f"image {report.image}: docker build (pip install --no-index)")
        import docker

        try:
            docker_client.images.build(path=ctx, tag=report.image, rm=True, forcerm=True, pull=False,
                                       labels={SOURCE_HASH_LABEL: digest})
        except docker.errors.BuildError as exc:
            lines = "".join(str(c.get("stream") or c.get("error") or "") for c in exc.build_log)[-3000:]
            raise ImageBuildError(f"docker build of {report.image} failed: {exc.msg}\n{lines}") from exc
    _smoke_test(docker_client, report.image)
    report.steps["image"] = time.monotonic() - started
    report.steps["total"] = time.monotonic() - total
    return report


def _smoke_test(client: Any, image: str) -> None:
    """The server's modules import in the image (every dependency is there); an image that fails
    is untagged, so the next build makes it again instead of reusing it."""
    import docker

    try:
        client.containers.run(image, [], entrypoint=["/opt/server/bin/python", "-c", "import reference_server.server"],
                              remove=True, stderr=True)
    except docker.errors.ContainerError as exc:
        client.images.remove(image, force=True)
        out = (exc.stderr or b"").decode("utf-8", "replace")[-2000:]
        raise ImageBuildError(f"the built image {image} cannot import the server (removed again):\n{out}") from exc


def ensure_image(tag: str | None = None, log: Log = lambda _m: None) -> str:
    """The image, built when missing or out of date (what the docker suite calls first)."""
    return build(tag, log=log).image


__all__ = ["BuildReport", "ImageBuildError", "build", "cache_dir", "default_tag", "ensure_image"]
