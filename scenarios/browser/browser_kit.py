"""One browser scenario's frame: a recorded page, steps that fail as verdicts, artifacts saved.

A scenario is written as::

    async with recorded_browser(scenario, chromium, config, base_url, name="flow") as run:
        await run.client.open(options)
        await run.step("browser.flow", run.client.wait_status("Connected"), "the page never connected")
        run.check(browser_checks.console(run.browser.console, run.who))
    scenario.verify()

A step that times out records a failed verdict naming the symptom and what the page showed at
that moment, and ends the block (the scenario then fails in ``verify()``), so a client that never
reconnects is a failed scenario, not a harness error. When anything failed, the Playwright trace
is saved; a screenshot, the console log and the WebSocket frame log are saved either way, all as
the scenario's artifacts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import browser_checks as bc
from browser_checks import fill_history
from browser_client import ClientConfig, WebClient
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from harness.browser import BrowserSession, Chromium
from harness.checks import integrity, recovery
from harness.checks.verdict import Status, Verdict
from harness.history import History
from harness.protocols.registry import capabilities_of

T = TypeVar("T")


class ScenarioStopped(Exception):
    """A step failed; its verdict is recorded and the rest of the scenario is skipped."""


class BrowserRun:
    """The page of one scenario, its client driver, and the session history read off its wire."""

    def __init__(self, scenario: Any, browser: BrowserSession, client: WebClient, history: History):
        self.scenario = scenario
        self.browser = browser
        self.client = client
        self.history = history

    @property
    def who(self) -> str:
        sid = self.history.session_id or self.client.session_id
        return f"{self.client.config.name}" + (f" session {sid}" if sid else "")

    def check(self, v: Verdict) -> Verdict:
        return self.scenario.check(v)

    def sync_history(self) -> History:
        """Re-read the wire into the history (call before checks that read it)."""
        c = self.client
        return fill_history(self.history, self.browser, c.config.protocol, c.sockets, c.http)

    async def snapshot(self) -> str:
        """What the page shows now, for a failure message."""
        parts = []
        try:
            parts.append(f"status {await self.client.status()!r}")
        except PlaywrightError:
            pass
        if self.client.status_log:
            parts.append("statuses " + " -> ".join(self.client.statuses()))
        try:
            error = await self.client.error()
            if error:
                parts.append(f"error {error!r}")
        except PlaywrightError:
            pass
        parts.append(f"{len(self.browser.sockets)} WebSocket(s) opened")
        if self.browser.page is not None:
            parts.append(f"at {self.browser.page.url.split('?')[0]}")
        return ", ".join(parts)

    async def step(self, name: str, action: Awaitable[T], symptom: str) -> T:
        """``action``, or a failed verdict ``name`` saying ``symptom`` (and what the page showed)."""
        try:
            return await action
        except (PlaywrightTimeout, TimeoutError) as exc:
            self.sync_history()  # names the session in the message when the page had one
            detail = await self.snapshot()
            if not isinstance(exc, PlaywrightTimeout):  # our own waits say what they saw
                detail = f"{exc}; {detail}"
            self.check(Verdict(name, Status.FAIL, f"{self.who}: {symptom} ({detail})",
                               evidence={"timeout": str(exc).splitlines()[0], "statuses": self.client.statuses()}))
            raise ScenarioStopped(symptom) from exc

    async def screenshot(self, label: str = "screenshot") -> None:
        """A full-page screenshot as an artifact: ``screenshot`` or ``screenshot-<label>``."""
        label = label if label.startswith("screenshot") else f"screenshot-{label}"
        await self.browser.screenshot(label)


def setup_ms(client: WebClient, t_start_ns: int, status: str) -> float | None:
    """Start pressed -> the first time the page showed ``status`` (from the page's status log)."""
    t = next((t for t, text in client.status_log if text == status and t >= t_start_ns), None)
    return None if t is None else (t - t_start_ns) / 1e6


def audio_sent_bytes(run: BrowserRun) -> int:
    """One past the highest audio byte the page has sent so far."""
    frames = run.browser.audio_frames()
    if "offsets" in capabilities_of(run.client.config.protocol):  # frames carry an offset header
        return max((f.offset + f.size - 8 for f in frames if f.offset is not None), default=0)
    return sum(f.size for f in frames)


async def wait_audio_sent(run: BrowserRun, seconds: float, timeout_s: float = 30.0) -> int:
    """Wait until the page has streamed ``seconds`` of 16 kHz s16le audio; TimeoutError otherwise."""
    want = int(seconds * 32000)
    deadline = time.monotonic() + timeout_s
    while (sent := audio_sent_bytes(run)) < want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sent} of {want} audio bytes sent after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)
    return sent


async def wait_reconnected(run: BrowserRun, timeout_s: float = 15.0, give_up_offline_s: float = 3.0) -> None:
    """After a fault ended: wait for Connected. A page that sits Offline for ``give_up_offline_s``
    without opening a new WebSocket has given up, and is reported without waiting longer."""
    c, status = run.client, run.client.config.status
    sockets_before = len(run.browser.sockets)
    start = time.monotonic()
    offline_since: float | None = None
    while (now := time.monotonic()) - start < timeout_s:
        shown = await c.status()
        if shown == status["connected"]:
            return
        if shown == status["offline"] and len(run.browser.sockets) == sockets_before:
            offline_since = offline_since or now
            if now - offline_since >= give_up_offline_s:
                raise TimeoutError(f"offline for {give_up_offline_s:.0f} s with no new connection attempt")
        else:
            offline_since = None
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not connected {timeout_s:.0f} s after the fault ended")


@contextlib.asynccontextmanager
async def recorded_browser(scenario: Any, chromium: Chromium, config: ClientConfig, base_url: str, *,
                           name: str, allow_remote: bool = False, **session_options: Any) -> AsyncIterator[BrowserRun]:
    folder = scenario.artifact_path("browser").parent
    browser = BrowserSession(chromium=chromium, artifacts_dir=folder, name=name, **session_options)
    await browser.start()
    history = scenario.history(client=config.name, page=config.path)
    run = BrowserRun(scenario, browser, WebClient(browser, config, base_url, allow_remote), history)
    try:
        yield run
    except ScenarioStopped:
        pass  # the failed step's verdict is recorded; verify() reports it
    except BaseException as exc:
        browser.failed = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        try:
            run.sync_history()
            if "screenshot" not in browser.artifacts and browser.page is not None:
                with contextlib.suppress(PlaywrightError):
                    await browser.screenshot("screenshot")
            problems = scenario.problems()
            if problems and not browser.failed:
                browser.mark_failed("; ".join(v.message for v in problems)[:500])
        finally:
            await browser.close()
            for label, path in browser.artifacts.items():
                if path.exists():
                    scenario.artifact(label, path)


async def finish_after_reconnect(run: BrowserRun, scenario: Any, config: ClientConfig, *, mark: int, cause: str,
                                 script: str, fixture_text: str) -> None:
    """After the stream dropped (``cause``): the page reconnects and streams again, Stop leads to the
    session page with every result, and the transcript is what a clean run gives (the script over
    the audio sent, or the fixture's text): nothing lost or doubled, recovery measured."""
    c, status = run.client, config.status
    await run.step("browser.reconnect", wait_reconnected(run, timeout_s=20),
                   f"the page did not reconnect after {cause}")
    sent = bc.audio_bytes(run.sync_history())
    run.check(bc.reconnect(c.statuses(), status, len(run.browser.sockets), run.who, after_index=mark))
    await run.step("browser.streaming", wait_audio_sent(run, sent / 32000 + 1.5),
                   "the page did not stream again after reconnecting")

    await c.stop()
    await run.step("browser.session_page", c.wait_session_page(), "Stop did not lead to the session page")
    results = await run.step("browser.session_page", c.wait_results(), "the session page did not show every result")
    await run.screenshot("screenshot")

    h = run.sync_history()
    expected = (integrity.expected_scripted_words(script, bc.audio_bytes(h)) if config.query_options
                else fixture_text.split())
    run.check(bc.session_page(results, run.who))
    run.check(bc.transcript(await c.session_finals(), expected, run.who, "the session page"))
    for v in integrity.all_checks(h, expected):
        run.check(v)
    run.check(bc.console(run.browser.console, run.who, allow_network_errors=True))
    run.check(recovery.recovery(h))
    for v in bc.latencies(h, config, run.who):
        run.check(v)
    run.check(bc.success(h, scenario.verdicts))
