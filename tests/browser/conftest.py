"""Fixtures of the browser tests: a real Chromium, real reference servers, flite speech as the mic."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from harness.browser import Chromium, chromium_problem
from harness.services import ReferenceServer

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "reference_server" / "static"
SPEECH_TEXT = "please send the report to the team by friday"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One event loop for the whole session here, so that one Chromium serves every test.
    here = Path(__file__).parent
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if not item.path.is_relative_to(here):
            continue
        if item.path.name != "test_browser_module.py":
            item.add_marker(pytest.mark.browser)
        if pytest_asyncio.is_async_test(item):
            item.add_marker(session_loop, append=False)


@pytest.fixture(scope="session")
def chromium() -> None:
    """Skips (saying what is missing) when there is no usable Chromium."""
    problem = chromium_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session")
def speech_text() -> str:
    return SPEECH_TEXT


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """flite speech, 16 kHz mono s16le, 0.5 s of silence before and 1.0 s after (about 4.5 s)."""
    for tool in ("flite", "sox"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (sudo apt-get install {tool})")
    folder = tmp_path_factory.mktemp("speech")
    raw, wav = folder / "raw.wav", folder / "speech.wav"
    subprocess.run(["flite", "-voice", "rms", "-t", SPEECH_TEXT, "-o", str(raw)], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav), "pad", "0.5", "1.0"], check=True)
    return wav


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_chromium(chromium, speech_wav) -> Chromium:
    """One Chromium with the speech as its microphone; each test opens its own context in it."""
    async with Chromium(fake_audio=speech_wav) as browser:
        yield browser


@pytest.fixture(scope="session")
def shared_server() -> Iterator[ReferenceServer]:
    """A healthy scripted server (test hooks on) for the tests that do not stop or break it."""
    with ReferenceServer(engine="scripted", test_hooks=True) as server:
        yield server


@pytest.fixture
def start_server() -> Iterator[Callable[..., ReferenceServer]]:
    """Starts reference servers (port 0: a free port, kept across restarts); all stopped at the end."""
    servers: list[ReferenceServer] = []

    def start(engine: str = "scripted", defects: tuple[str, ...] = (), **kwargs) -> ReferenceServer:
        server = ReferenceServer(engine=engine, defects=defects, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    """Serves reference_server/static under /static/ and an empty page at /; logs nothing."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path in ("/", "/blank"):
            body = b'<!doctype html><html><head><link rel="icon" href="data:,"><title>blank</title></head></html>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/static/"):
            self.path = self.path[len("/static"):]
            return super().do_GET()
        self.send_error(404)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def static_url() -> Iterator[str]:
    """A plain file server for the page's static files (enough for the audio worklet alone)."""
    handler = functools.partial(_StaticHandler, directory=str(STATIC))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
