"""The audio worklet in Chromium: 48 kHz (or 44.1 kHz) in, 16 kHz s16le out, in 100 ms chunks.

Rendered offline (OfflineAudioContext) from an oscillator, so the input is exact and the test
takes milliseconds of rendering, not seconds of real time.
"""

from __future__ import annotations

import math

import pytest
import pytest_asyncio

from harness.browser import BrowserSession

FULL_SCALE_RMS = 0.5 * 32767 / math.sqrt(2)  # a 0.5-amplitude sine

RENDER_JS = """
async ([freq, rate, seconds]) => {
  const ctx = new OfflineAudioContext(1, Math.round(rate * seconds), rate);
  await ctx.audioWorklet.addModule('/static/audio-worklet.js');
  const osc = new OscillatorNode(ctx, { frequency: freq });
  const gain = new GainNode(ctx, { gain: 0.5 });
  const node = new AudioWorkletNode(ctx, 'pcm16-resampler', { processorOptions: { targetRate: 16000, chunkMs: 100 } });
  const chunks = [];
  let flushed;
  const done = new Promise((resolve) => { flushed = resolve; });
  node.port.onmessage = (e) => {
    if (e.data.type === 'chunk') chunks.push(e.data.pcm); else flushed();
  };
  osc.connect(gain).connect(node).connect(ctx.destination);
  osc.start();
  await ctx.startRendering();
  node.port.postMessage('flush');
  await done;
  const bytes = chunks.map((c) => c.byteLength);
  const view = new DataView(chunks.reduce((acc, c) => { const t = new Uint8Array(acc.byteLength + c.byteLength);
    t.set(new Uint8Array(acc)); t.set(new Uint8Array(c), acc.byteLength); return t.buffer; }, new ArrayBuffer(0)));
  const n = view.byteLength / 2;
  let crossings = 0, squares = 0, prev = 0;
  for (let i = 0; i < n; i++) {
    const s = view.getInt16(2 * i, true);  // little-endian, as the protocol says
    if (i > 0 && (prev < 0) !== (s < 0)) crossings++;
    squares += s * s;
    prev = s;
  }
  return { bytes, samples: n, crossings, rms: Math.sqrt(squares / n) };
}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def blank_page(shared_chromium, static_url):
    async with BrowserSession(chromium=shared_chromium, trace=False) as session:
        await session.page.goto(f"{static_url}/blank")
        yield session


async def render(session: BrowserSession, freq: float, rate: int, seconds: float = 1.0) -> dict:
    return await session.page.evaluate(RENDER_JS, [freq, rate, seconds])


async def test_48k_tone_comes_out_at_16k_in_100ms_chunks(blank_page) -> None:
    out = await render(blank_page, 440, 48000)
    assert out["samples"] == 16000  # one second
    assert set(out["bytes"]) == {3200}  # 1600 samples = 100 ms per chunk
    # A 440 Hz tone crosses zero 880 times a second: the pitch survives the rate change.
    assert abs(out["crossings"] - 880) <= 4
    assert out["rms"] == pytest.approx(FULL_SCALE_RMS, rel=0.02)


async def test_44k1_context_rate_is_resampled_too(blank_page) -> None:
    out = await render(blank_page, 440, 44100)
    # 44100 frames render as 345 whole 128-frame quanta (44160 frames) = 16021.8 output samples.
    assert out["samples"] == pytest.approx(16022, abs=2)
    assert abs(out["crossings"] - 880) <= 4
    assert out["rms"] == pytest.approx(FULL_SCALE_RMS, rel=0.02)


async def test_tones_above_8k_do_not_fold_back_into_speech(blank_page) -> None:
    # Without the low-pass, 10 kHz at 48 kHz would alias to a full-strength 6 kHz tone.
    out = await render(blank_page, 10000, 48000)
    assert out["rms"] < 0.05 * FULL_SCALE_RMS


async def test_16k_context_passes_through(blank_page) -> None:
    out = await render(blank_page, 1000, 16000)
    assert out["samples"] == 16000
    assert abs(out["crossings"] - 2000) <= 4
    assert out["rms"] == pytest.approx(FULL_SCALE_RMS, rel=0.02)
    assert blank_page.errors == []
