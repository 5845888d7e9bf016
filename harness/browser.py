"""A real Chromium driven by Playwright, and a record of what the page did in it.

The browser suite runs the backend's ``/live`` page the way a user would: Chromium's fake
capture device plays a WAV file as the microphone, the page streams it, and the test reads the
screen. Everything a failure needs to be understood is kept: the console (errors apart), every
WebSocket frame (binary audio frames summarized by offset and size, never stored), the page's
browser storage, screenshots, and a Playwright trace saved when the scenario fails.

Chromium comes from the system (``/usr/bin/chromium``, or ``HARNESS_CHROMIUM``), never from
``playwright install``: ``chromium_problem()`` says what is missing and how to get it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from harness.errors import ServiceError

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "HARNESS_CHROMIUM"

# Quiet, deterministic Chromium: no background traffic (every loop targets loopback only), and
# the fake capture device instead of a real microphone.
BASE_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
)

_TOKEN = re.compile(r"(access_token=)[^&#\s]+")
_FRAME_TEXT_LIMIT = 2000  # characters of a text frame kept in the log


class BrowserUnavailable(ServiceError):
    """Chromium or Playwright is missing; the message says what to install."""


def redact(url: str) -> str:
    """A URL with its access token hidden, for logs and artifacts."""
    return _TOKEN.sub(r"\1REDACTED", url)


def chromium_path() -> str:
    return os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM


def chromium_problem(executable: str | os.PathLike[str] | None = None) -> str | None:
    """None when the browser suite can run; otherwise what is missing and how to fix it."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: run `pip install -e .[dev]` in the virtualenv."
    path = Path(executable or chromium_path())
    if not path.exists():
        return (
            f"Chromium not found at {path}. Install Debian's package (`sudo apt-get install chromium`) "
            f"or point {CHROMIUM_ENV} at a Chromium or Chrome binary. "
            "(`playwright install` is not used: the suite drives the system browser.)"
        )
    if not os.access(path, os.X_OK):
        return f"{path} exists but is not executable (check its permissions)."
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path} could not be run: {exc}"
    if out.returncode != 0 or not re.search(r"(Chromium|Chrome) \d+", out.stdout):
        detail = (out.stdout + out.stderr).strip()[-400:]
        return f"{path} --version failed (exit {out.returncode}): {detail or 'no output'}"
    return None


def require_chromium(executable: str | os.PathLike[str] | None = None) -> str:
    """The Chromium path, or ``BrowserUnavailable`` explaining what is missing."""
    problem = chromium_problem(executable)
    if problem:
        raise BrowserUnavailable(problem)
    return str(executable or chromium_path())


def check_fake_audio(path: str | os.PathLike[str]) -> Path:
    """A WAV Chromium's fake capture can play: 16-bit PCM, mono or stereo, 8-48 kHz.

    Chromium plays anything else as silence without a word, so a bad file is refused here with
    a message naming what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"fake microphone audio {path}: no such file")
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate, frames = wav.getsampwidth(), wav.getnchannels(), wav.getframerate(), wav.getnframes()
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"fake microphone audio {path}: not a 16-bit PCM WAV file ({exc})") from exc
    if width != 2:
        raise ValueError(f"fake microphone audio {path}: {8 * width}-bit samples, expected 16-bit PCM")
    if channels not in (1, 2):
        raise ValueError(f"fake microphone audio {path}: {channels} channels, expected mono or stereo")
    if not 8000 <= rate <= 48000:
        raise ValueError(f"fake microphone audio {path}: {rate} Hz, expected 8000-48000 Hz")
    if frames == 0:
        raise ValueError(f"fake microphone audio {path}: no audio frames")
    return path


def chromium_args(fake_audio: str | os.PathLike[str] | None = None, microphone: bool = True) -> list[str]:
    """Launch arguments. ``microphone=False`` leaves out the flag that auto-accepts the
    permission prompt, so (with no granted permission) getUserMedia is denied."""
    args = list(BASE_ARGS)
    if microphone:
        args.append("--use-fake-ui-for-media-stream")
    if fake_audio is not None:
        # %noloop: play the file once, then silence (the page's transcript must not repeat).
        args.append(f"--use-file-for-fake-audio-capture={check_fake_audio(fake_audio).resolve()}%noloop")
    return args


# --- what the page did -------------------------------------------------------------------------
@dataclass
class ConsoleEntry:
    t_ns: int
    type: str  # log, info, warning, error … ("pageerror" for an uncaught exception)
    text: str
    location: str = ""


@dataclass
class SocketLog:
    index: int
    url: str  # access token redacted
    opened_ns: int
    closed_ns: int | None = None
    error: str | None = None


@dataclass
class FrameEntry:
    """One WebSocket frame. Binary frames keep only their size and reference-protocol offset."""

    t_ns: int
    socket: int
    direction: str  # "sent" | "received"
    kind: str  # "text" | "binary"
    size: int
    text: str | None = None
    offset: int | None = None  # the 8-byte little-endian offset header of an audio frame

    def json(self) -> dict[str, Any] | None:
        """A text frame's JSON object (None for binary or non-JSON frames)."""
        if self.text is None:
            return None
        try:
            value = json.loads(self.text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


_STORAGE_JS = """
async () => {
  const dump = (store) => {
    const out = {};
    for (let i = 0; i < store.length; i++) { const key = store.key(i); out[key] = store.getItem(key); }
    return out;
  };
  let databases = [];
  try { databases = (await indexedDB.databases()).map((db) => db.name); } catch (err) { databases = null; }
  return { localStorage: dump(localStorage), sessionStorage: dump(sessionStorage), indexedDB: databases };
}
"""


class Chromium:
    """One launched Chromium. ``BrowserSession``s can share it (each gets its own context:
    fresh storage and permissions), which saves a launch per scenario. Chromium's fake capture
    plays the WAV from its start for every new microphone stream."""

    def __init__(
        self,
        *,
        fake_audio: str | os.PathLike[str] | None = None,
        microphone: bool = True,
        executable: str | os.PathLike[str] | None = None,
        headless: bool = True,
        extra_args: Sequence[str] = (),
    ):
        self.executable = executable
        self.args = chromium_args(fake_audio, microphone) + list(extra_args)
        self.microphone = microphone
        self.headless = headless
        self._pw = None
        self.browser = None

    async def start(self) -> Chromium:
        executable = require_chromium(self.executable)
        from playwright.async_api import async_playwright

        self._pw = await async_playwright().start()
        try:
            self.browser = await self._pw.chromium.launch(
                executable_path=executable, headless=self.headless, args=self.args, timeout=60_000
            )
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        if self.browser is not None:
            try:
                await self.browser.close()
            except Exception:
                pass  # the process is already gone
        if self._pw is not None:
            await self._pw.stop()
        self.browser = self._pw = None

    async def __aenter__(self) -> Chromium:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class BrowserSession:
    """One browser context and page, and the record of everything they did.

    Use as ``async with BrowserSession(fake_audio=wav, artifacts_dir=dir) as b: await b.page.goto(…)``
    (it launches its own Chromium), or ``BrowserSession(chromium=shared, …)`` to use a running one.
    An exception inside the block (or ``mark_failed()``) saves the Playwright trace; the console
    and WebSocket logs are written to ``artifacts_dir`` on close either way.
    """

    def __init__(
        self,
        *,
        chromium: Chromium | None = None,
        fake_audio: str | os.PathLike[str] | None = None,
        microphone: bool = True,
        artifacts_dir: str | os.PathLike[str] | None = None,
        name: str = "browser",
        executable: str | os.PathLike[str] | None = None,
        headless: bool = True,
        trace: bool = True,
        trace_screenshots: bool = False,
        viewport: tuple[int, int] = (1000, 800),
        device: str | None = None,
        timeout_s: float = 15.0,
        extra_args: Sequence[str] = (),
    ):
        self._own_chromium = chromium is None
        self.chromium = chromium or Chromium(
            fake_audio=fake_audio, microphone=microphone, executable=executable, headless=headless,
            extra_args=extra_args,
        )
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir else None
        self.name = name
        self.trace = trace
        self.trace_screenshots = trace_screenshots  # a filmstrip in the trace; costs CPU while recording
        self.viewport = viewport
        self.device = device  # a Playwright device descriptor ("iPhone 13"): viewport, touch, user agent
        self.timeout_s = timeout_s
        self.console: list[ConsoleEntry] = []
        self.sockets: list[SocketLog] = []
        self.frames: list[FrameEntry] = []
        self.artifacts: dict[str, Path] = {}
        self.failed: str | None = None
        self.context = None
        self.page = None

    @property
    def args(self) -> list[str]:
        return self.chromium.args

    # --- life cycle --------------------------------------------------------------------------
    async def start(self) -> BrowserSession:
        try:
            if self._own_chromium:
                await self.chromium.start()
            if self.chromium.browser is None:
                raise BrowserUnavailable("the shared Chromium is not running (start it first)")
            width, height = self.viewport
            options: dict[str, Any] = {"viewport": {"width": width, "height": height}}
            if self.device:
                options = self._device_options(self.device)
            self.context = await self.chromium.browser.new_context(
                **options, permissions=["microphone"] if self.chromium.microphone else [],
            )
            self.context.set_default_timeout(self.timeout_s * 1000)
            if self.trace:
                await self.context.tracing.start(screenshots=self.trace_screenshots, snapshots=True)
            self.page = await self.context.new_page()
        except BaseException:
            await self._shutdown()
            raise
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_page_error)
        self.page.on("websocket", self._on_websocket)
        return self

    def _device_options(self, name: str) -> dict[str, Any]:
        devices = self.chromium._pw.devices
        if name not in devices:
            close = [d for d in devices if name.lower().split()[0] in d.lower()][:8]
            raise ValueError(f"unknown Playwright device {name!r}" + (f"; similar: {close}" if close else ""))
        # default_browser_type names the engine the device ships (webkit for an iPhone); the
        # suite drives Chromium, so only the context options (viewport, touch, user agent) apply.
        return {k: v for k, v in devices[name].items() if k != "default_browser_type"}

    async def __aenter__(self) -> BrowserSession:
        return await self.start()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc is not None and self.failed is None:
            self.failed = f"{exc_type.__name__}: {exc}"
        await self.close()

    def mark_failed(self, reason: str) -> None:
        """The scenario failed without an exception: keep the trace."""
        self.failed = reason

    async def close(self) -> None:
        if self.context is not None and self.trace:
            try:
                if self.failed and self.artifacts_dir:
                    path = self._artifact("trace.zip")
                    await self.context.tracing.stop(path=str(path))
                    self.artifacts["trace"] = path
                else:
                    await self.context.tracing.stop()
            except Exception as exc:  # a crashed browser has no trace to give: say so in the log
                self.console.append(ConsoleEntry(time.monotonic_ns(), "harness", f"trace not saved: {exc}"))
        if self.artifacts_dir:
            self.save_logs()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self.context is not None:
            try:
                await self.context.close()
            except Exception:
                pass  # already gone with the browser process
        if self._own_chromium:
            await self.chromium.close()
        self.context = self.page = None

    # --- recorders ---------------------------------------------------------------------------
    def _on_console(self, msg) -> None:
        loc = msg.location or {}
        where = f"{loc.get('url', '')}:{loc.get('lineNumber', '')}" if loc.get("url") else ""
        self.console.append(ConsoleEntry(time.monotonic_ns(), msg.type, redact(msg.text), redact(where)))

    def _on_page_error(self, error) -> None:
        self.console.append(ConsoleEntry(time.monotonic_ns(), "pageerror", redact(str(error))))

    def _on_websocket(self, ws) -> None:
        log = SocketLog(len(self.sockets), redact(ws.url), time.monotonic_ns())
        self.sockets.append(log)
        ws.on("framesent", lambda payload: self._on_frame(log.index, "sent", payload))
        ws.on("framereceived", lambda payload: self._on_frame(log.index, "received", payload))
        ws.on("socketerror", lambda error: setattr(log, "error", str(error)))
        ws.on("close", lambda _ws: setattr(log, "closed_ns", time.monotonic_ns()))

    def _on_frame(self, socket: int, direction: str, payload: str | bytes) -> None:
        t = time.monotonic_ns()
        if isinstance(payload, bytes | bytearray):
            offset = int.from_bytes(payload[:8], "little") if len(payload) >= 8 else None
            self.frames.append(FrameEntry(t, socket, direction, "binary", len(payload), offset=offset))
        else:
            text = redact(payload[:_FRAME_TEXT_LIMIT])
            self.frames.append(FrameEntry(t, socket, direction, "text", len(payload), text=text))

    # --- reading the record --------------------------------------------------------------------
    @property
    def errors(self) -> list[ConsoleEntry]:
        """Console errors and uncaught exceptions."""
        return [c for c in self.console if c.type in ("error", "pageerror")]

    def audio_frames(self) -> list[FrameEntry]:
        return [f for f in self.frames if f.direction == "sent" and f.kind == "binary"]

    def messages(self, direction: str = "received", type_: str | None = None) -> list[dict[str, Any]]:
        """Text frames parsed as JSON objects, optionally of one protocol ``type``."""
        out = []
        for f in self.frames:
            if f.direction != direction or f.kind != "text":
                continue
            msg = f.json()
            if msg is not None and (type_ is None or msg.get("type") == type_):
                out.append(msg)
        return out

    async def storage(self) -> dict[str, Any]:
        """The current origin's localStorage, sessionStorage and IndexedDB database names."""
        return await self.page.evaluate(_STORAGE_JS)

    async def screenshot(self, label: str = "screenshot", full_page: bool = True) -> Path:
        if not self.artifacts_dir:
            raise ValueError("screenshot needs artifacts_dir: BrowserSession(artifacts_dir=...)")
        path = self._artifact(f"{label}.png")
        await self.page.screenshot(path=str(path), full_page=full_page)
        self.artifacts[label] = path
        return path

    def save_logs(self) -> None:
        """console.json and websocket.json next to the screenshots (tokens redacted)."""
        console = self._artifact("console.json")
        console.write_text(json.dumps([asdict(c) for c in self.console], indent=1), encoding="utf-8")
        sockets = self._artifact("websocket.json")
        body = {"sockets": [asdict(s) for s in self.sockets], "frames": [asdict(f) for f in self.frames]}
        sockets.write_text(json.dumps(body, indent=1), encoding="utf-8")
        self.artifacts.setdefault("console", console)
        self.artifacts.setdefault("websocket", sockets)

    def _artifact(self, suffix: str) -> Path:
        assert self.artifacts_dir is not None
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return self.artifacts_dir / f"{self.name}-{suffix}"


# --- the /live page, from the outside -------------------------------------------------------------
@dataclass
class LiveOptions:
    """Query parameters the /live page understands (see live.js)."""

    engine: str | None = None
    script: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    max_buffer_s: float | None = None
    reconnect_attempts: int | None = None
    backoff_ms: float | None = None
    backoff_max_ms: float | None = None
    pipeline_timeout_s: float | None = None
    stream_origin: str | None = None  # ws://127.0.0.1:PORT: the stream through a (fault) proxy

    def query(self) -> str:
        items: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "metadata" and v is not None}
        items.update({f"meta.{k}": v for k, v in self.metadata.items()})
        return urlencode(items)


class LivePage:
    """The /live page's controls and read-outs, by the selectors the page promises."""

    STEPS = ("refinement", "analytics", "tasks", "summary")

    def __init__(self, session: BrowserSession, base_url: str):
        self.session = session
        self.base_url = base_url.rstrip("/")

    @property
    def page(self):
        return self.session.page

    async def open(self, options: LiveOptions | None = None) -> None:
        query = (options or LiveOptions()).query()
        await self.page.goto(f"{self.base_url}/live" + (f"?{query}" if query else ""))
        # The start button is enabled once /live/config.json has been read.
        await self.page.wait_for_selector("#startRecordingBtn:not([disabled])")

    async def start(self) -> None:
        await self.page.click("#startRecordingBtn")

    async def stop(self) -> None:
        await self.page.click("#stopRecordingBtn")

    async def status(self) -> str:
        return (await self.page.text_content("#wsStatus") or "").strip()

    async def wait_status(self, status: str, timeout_s: float = 15.0) -> None:
        await self.page.wait_for_function(
            "s => document.querySelector('#wsStatus').textContent.trim() === s", arg=status, timeout=timeout_s * 1000
        )

    async def chunks_sent(self) -> int:
        return int(await self.page.get_attribute("[data-chunks-sent]", "data-chunks-sent") or 0)

    async def wait_chunks(self, at_least: int, timeout_s: float = 15.0) -> int:
        await self.page.wait_for_function(
            "n => Number(document.querySelector('[data-chunks-sent]').dataset.chunksSent) >= n",
            arg=at_least, timeout=timeout_s * 1000,
        )
        return await self.chunks_sent()

    async def finals(self) -> list[str]:
        return [t.strip() for t in await self.page.locator("#finals [data-segment-id] .text").all_text_contents()]

    async def wait_finals(self, at_least: int = 1, timeout_s: float = 30.0) -> list[str]:
        await self.page.wait_for_function(
            "n => document.querySelectorAll('#finals [data-segment-id]').length >= n",
            arg=at_least, timeout=timeout_s * 1000,
        )
        return await self.finals()

    async def error(self) -> str:
        el = self.page.locator("#error")
        return (await el.text_content() or "").strip() if await el.is_visible() else ""

    async def wait_error(self, timeout_s: float = 15.0) -> str:
        await self.page.wait_for_selector("#error:not([hidden])", timeout=timeout_s * 1000)
        return await self.error()

    async def offsets(self) -> dict[str, int]:
        return await self.page.evaluate("() => window.liveClient.offsets")

    async def stop_and_wait_for_view(self, timeout_s: float = 60.0) -> str:
        """Stop, wait for the page to finish and open the session page; returns the session id."""
        await self.stop()
        await self.page.wait_for_url(re.compile(r"/sessions/[^/]+/view\?"), timeout=timeout_s * 1000)
        match = re.search(r"/sessions/([^/]+)/view", self.page.url)
        assert match, self.page.url
        return match.group(1)

    async def wait_results(self, timeout_s: float = 30.0) -> dict[str, str]:
        """On the session page: wait for the four results; returns step -> ready|failed."""
        await self.page.wait_for_function(
            "steps => steps.every(s => document.querySelector(`[data-result='${s}']`))",
            arg=list(self.STEPS), timeout=timeout_s * 1000,
        )
        return {
            step: await self.page.get_attribute(f"[data-result='{step}']", "data-state") or ""
            for step in self.STEPS
        }
