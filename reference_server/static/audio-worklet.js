// Microphone audio -> 16 kHz mono signed 16-bit little-endian PCM, in fixed-size chunks.
//
// Runs on the audio rendering thread. The AudioContext runs at the device's rate (48 kHz
// typically), so every input sample goes through a windowed-sinc low-pass (cutoff just under the
// target Nyquist, so nothing above 8 kHz folds back into speech) and the filtered signal is read
// at the target rate by linear interpolation. The fractional read position carries over from one
// 128-frame render quantum to the next, so the output has no seams at block boundaries.
//
// Messages: posts {type: "chunk", pcm: ArrayBuffer} for every full chunk (chunkMs of audio);
// on "flush" posts the partial chunk (if any) and then {type: "flushed"}.

class Pcm16Resampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.outRate = opts.targetRate || 16000;
    this.chunkSamples = Math.round((this.outRate * (opts.chunkMs || 100)) / 1000);
    // Input samples per output sample (3 for 48 kHz -> 16 kHz).
    this.step = sampleRate / this.outRate;
    this.taps = this.step > 1 ? lowPassTaps(0.45 / this.step, Math.ceil(this.step * 10) | 1) : null;
    this.history = this.taps ? new Float32Array(this.taps.length) : null;
    this.historyPos = 0;
    this.prev = 0; // the previous filtered sample
    this.t = 1; // read position of the next output sample, in input samples after `prev`
    this.newChunk();
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        if (this.used > 0) this.post(this.used);
        this.running = false;
        this.port.postMessage({ type: "flushed" });
      }
    };
  }

  newChunk() {
    this.buffer = new ArrayBuffer(this.chunkSamples * 2);
    this.view = new DataView(this.buffer);
    this.used = 0;
  }

  post(samples) {
    const pcm = samples === this.chunkSamples ? this.buffer : this.buffer.slice(0, samples * 2);
    this.port.postMessage({ type: "chunk", pcm }, [pcm]);
    this.newChunk();
  }

  filter(x) {
    if (!this.taps) return x;
    const h = this.taps;
    const n = h.length;
    this.history[this.historyPos] = x;
    let acc = 0;
    let j = this.historyPos;
    for (let k = 0; k < n; k++) {
      acc += h[k] * this.history[j];
      j = j === 0 ? n - 1 : j - 1;
    }
    this.historyPos = (this.historyPos + 1) % n;
    return acc;
  }

  emit(value) {
    const s = value > 1 ? 1 : value < -1 ? -1 : value;
    this.view.setInt16(this.used * 2, Math.round(s < 0 ? s * 0x8000 : s * 0x7fff), true);
    this.used += 1;
    if (this.used === this.chunkSamples) this.post(this.chunkSamples);
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true; // no source connected yet
    const channels = input.length;
    const frames = input[0].length;
    for (let i = 0; i < frames; i++) {
      let x = 0;
      for (let c = 0; c < channels; c++) x += input[c][i];
      const y = this.filter(x / channels);
      while (this.t <= 1) {
        this.emit(this.prev + (y - this.prev) * this.t);
        this.t += this.step;
      }
      this.t -= 1;
      this.prev = y;
    }
    return true;
  }
}

// Blackman-windowed sinc low-pass; `cutoff` in cycles per input sample, unity gain at DC.
function lowPassTaps(cutoff, count) {
  const taps = new Float32Array(count);
  const mid = (count - 1) / 2;
  let sum = 0;
  for (let k = 0; k < count; k++) {
    const x = k - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * k) / (count - 1)) + 0.08 * Math.cos((4 * Math.PI * k) / (count - 1));
    taps[k] = sinc * w;
    sum += taps[k];
  }
  for (let k = 0; k < count; k++) taps[k] /= sum;
  return taps;
}

registerProcessor("pcm16-resampler", Pcm16Resampler);
