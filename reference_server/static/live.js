// The /live page: microphone -> reference streaming protocol v1 -> transcript on screen.
//
// What it guarantees (PROTOCOL.md): audio is sent as 8-byte little-endian offset + 16 kHz s16le
// PCM; every byte at or above the server's durable offset is kept until an ack passes it, so a
// dropped connection or a restarted server loses nothing: the page reconnects with backoff and
// jitter, resends from ready.committed_offset, answers audio_gap by resending from
// expected_offset, and asks for lost finals with last_segment_id. The buffer is bounded; when it
// overflows the oldest audio is dropped and the page says so. Nothing of the transcript, the
// token or the audio is written to any browser storage.
//
// Query parameters (optional): engine, script, meta.<key>=<value> (session metadata),
// max_buffer_s (60), reconnect_attempts (8), backoff_ms (250), backoff_max_ms (5000),
// pipeline_timeout_s (120), stream_origin (ws://127.0.0.1:PORT: send the stream through a fault
// proxy on this machine; loopback only, so a crafted link cannot send audio anywhere else).
"use strict";

(() => {
  const TARGET_RATE = 16000;
  const BYTES_PER_SECOND = TARGET_RATE * 2;
  const CHUNK_MS = 100;
  const HEADER_BYTES = 8;
  const MAX_SOCKET_BACKLOG = 256 * 1024; // bytes queued in the socket before the pump waits
  const CONNECT_TIMEOUT_MS = 10000; // no `ready` by then: treat as a failed attempt
  // Closes after which the page reconnects and resumes (4408 only while it still has audio;
  // 4001 is the page's own "no ready in time").
  const RETRY_CODES = new Set([1001, 1006, 1011, 1012, 1013, 1014, 4001]);
  const FATAL_CODES = {
    1008: "The server did not accept this session's credentials.",
    1009: "The server rejected an audio frame as too large.",
    4404: "The server no longer knows this session.",
    4409: "This session was opened in another window, so this page stopped streaming.",
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("wsStatus"),
    start: $("startRecordingBtn"),
    stop: $("stopRecordingBtn"),
    chunks: $("chunksSent"),
    audioSent: $("audioSent"),
    audioSaved: $("audioSaved"),
    error: $("error"),
    warning: $("warning"),
    notice: $("notice"),
    finals: $("finals"),
    partial: $("partial"),
    placeholder: $("placeholder"),
  };

  const params = new URLSearchParams(location.search);
  const problems = [];
  const tuning = {
    maxBufferBytes: Math.round(numberParam("max_buffer_s", 60) * BYTES_PER_SECOND),
    reconnectAttempts: Math.round(numberParam("reconnect_attempts", 8)),
    backoffMs: numberParam("backoff_ms", 250),
    backoffMaxMs: numberParam("backoff_max_ms", 5000),
    pipelineTimeoutMs: numberParam("pipeline_timeout_s", 120) * 1000,
  };

  const LOOPBACK = new Set(["127.0.0.1", "[::1]", "localhost"]);
  const streamOrigin = originParam("stream_origin");

  function originParam(name) {
    const raw = params.get(name);
    if (raw === null) return null;
    let url;
    try {
      url = new URL(raw);
    } catch (err) {
      url = null;
    }
    if (!url || (url.protocol !== "ws:" && url.protocol !== "wss:") || !LOOPBACK.has(url.hostname)) {
      problems.push(`Ignored ${name}=${raw}: expected ws://127.0.0.1:PORT (loopback only).`);
      return null;
    }
    return `${url.protocol}//${url.host}`;
  }

  function numberParam(name, fallback) {
    const raw = params.get(name);
    if (raw === null) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) {
      problems.push(`Ignored ${name}=${raw}: expected a positive number (using ${fallback}).`);
      return fallback;
    }
    return value;
  }

  const state = {
    defects: new Set(),
    phase: "idle", // idle | starting | recording | stopping | done | failed
    session: null,
    capture: null,
    ws: null,
    ready: false,
    everConnected: false,
    attempts: 0,
    timers: { reconnect: 0, connect: 0, pump: 0, keepalive: 0, deadline: 0, leave: 0 },
    buffer: [], // [{offset, bytes: Uint8Array}], in offset order, contiguous
    bufferBytes: 0,
    produced: 0, // bytes captured so far: the offset of the next chunk
    sendOffset: 0, // next byte to send on the current connection
    highestSent: 0,
    received: 0,
    durable: 0,
    chunksSent: 0,
    droppedBytes: 0,
    droppedUnreceived: 0,
    silenceBytes: 0,
    finalizeSent: false, // on the current connection
    heartbeatMs: 5000,
    maxPayload: 32768 - HEADER_BYTES,
    lastSendAt: 0,
    finals: new Map(),
    lastContiguous: -1,
    replayTries: new Map(), // hole (last contiguous id) -> replays asked for
    pipelineDone: false,
  };

  // --- small UI helpers --------------------------------------------------------------------
  function setStatus(text) {
    ui.status.textContent = text;
    ui.status.dataset.status = text;
  }

  function show(el, text) {
    el.textContent = text;
    el.hidden = !text;
  }

  function setPhase(phase) {
    state.phase = phase;
    document.body.dataset.phase = phase;
  }

  function seconds(bytes) {
    return `${(bytes / BYTES_PER_SECOND).toFixed(1)} s`;
  }

  function updateStats() {
    ui.chunks.textContent = String(state.chunksSent);
    ui.chunks.dataset.chunksSent = String(state.chunksSent);
    ui.audioSent.textContent = seconds(state.highestSent);
    ui.audioSaved.textContent = seconds(state.durable);
  }

  function clock(ms) {
    const s = Math.floor((ms || 0) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  // --- configuration -----------------------------------------------------------------------
  async function loadConfig() {
    try {
      const response = await fetch("/live/config.json", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const config = await response.json();
      for (const name of config.defects || []) state.defects.add(name);
    } catch (err) {
      problems.push(`Could not read /live/config.json (${err.message}); using defaults.`);
    }
  }

  function sessionRequest() {
    const body = { sample_rate: TARGET_RATE, metadata: { client: "live-page" } };
    if (params.get("engine")) body.engine = params.get("engine");
    if (params.get("script")) body.script = params.get("script");
    for (const [key, value] of params) {
      if (!key.startsWith("meta.")) continue;
      const number = Number(value);
      body.metadata[key.slice(5)] = value !== "" && Number.isFinite(number) ? number : value;
    }
    return body;
  }

  // --- session creation --------------------------------------------------------------------
  async function createSession() {
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch("/live/session", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(sessionRequest()),
        });
      } catch (err) {
        response = null; // network failure: retried below like a dropped stream
      }
      if (response && response.ok) return response.json();
      const transient = !response || response.status === 502 || response.status === 503 || response.status === 504;
      if (response && !transient) {
        let detail = "";
        try {
          const body = await response.json();
          detail = body.message || body.detail || body.error || JSON.stringify(body);
        } catch (err) {
          detail = response.statusText;
        }
        throw new Error(`The server refused to start a session (HTTP ${response.status}): ${detail}`);
      }
      if (attempt >= tuning.reconnectAttempts) {
        throw new Error(
          response
            ? `The server is at capacity (HTTP ${response.status}); try again in a moment.`
            : "The server is unreachable: the session could not be created."
        );
      }
      await sleep(backoffDelay(attempt + 1));
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function backoffDelay(attempt) {
    // Exponential with "equal jitter": half fixed, half random, so many clients that lost the
    // same server do not all come back in the same millisecond.
    const base = Math.min(tuning.backoffMaxMs, tuning.backoffMs * 2 ** (attempt - 1));
    return base / 2 + Math.random() * (base / 2);
  }

  // --- microphone --------------------------------------------------------------------------
  async function startCapture() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const ctx = new AudioContext();
    try {
      await ctx.audioWorklet.addModule("/static/audio-worklet.js");
      const source = ctx.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(ctx, "pcm16-resampler", {
        processorOptions: { targetRate: TARGET_RATE, chunkMs: CHUNK_MS },
      });
      const capture = { stream, ctx, source, node, onFlushed: null };
      node.port.onmessage = (event) => {
        if (event.data.type === "chunk") onChunk(new Uint8Array(event.data.pcm));
        else if (event.data.type === "flushed" && capture.onFlushed) capture.onFlushed();
      };
      source.connect(node);
      node.connect(ctx.destination); // keeps the node pulled by the graph; it outputs silence
      await ctx.resume();
      state.capture = capture;
    } catch (err) {
      stream.getTracks().forEach((track) => track.stop());
      await ctx.close();
      throw err;
    }
  }

  async function stopCapture() {
    const capture = state.capture;
    if (!capture) return;
    state.capture = null;
    // Take the last partial chunk out of the worklet; bounded in case the context is suspended.
    await new Promise((resolve) => {
      capture.onFlushed = resolve;
      setTimeout(resolve, 1000);
      capture.node.port.postMessage("flush");
    });
    capture.stream.getTracks().forEach((track) => track.stop());
    capture.source.disconnect();
    capture.node.disconnect();
    await capture.ctx.close();
  }

  function micErrorMessage(err) {
    if (err && (err.name === "NotAllowedError" || err.name === "SecurityError")) {
      return "Microphone access was denied. Allow the microphone for this site and try again.";
    }
    if (err && (err.name === "NotFoundError" || err.name === "OverconstrainedError")) {
      return "No microphone was found. Connect one and try again.";
    }
    return `The microphone could not be started: ${err && err.message ? err.message : err}`;
  }

  // --- the audio buffer --------------------------------------------------------------------
  function onChunk(bytes) {
    if (state.phase !== "recording" && state.phase !== "starting" && state.phase !== "stopping") return;
    state.buffer.push({ offset: state.produced, bytes });
    state.produced += bytes.length;
    state.bufferBytes += bytes.length;
    enforceBound();
    pump();
  }

  function enforceBound() {
    let dropped = 0;
    while (state.bufferBytes > tuning.maxBufferBytes && state.buffer.length > 1) {
      const chunk = state.buffer.shift();
      const end = chunk.offset + chunk.bytes.length;
      state.bufferBytes -= chunk.bytes.length;
      state.droppedUnreceived += Math.max(0, end - Math.max(chunk.offset, state.received));
      dropped += chunk.bytes.length;
    }
    if (!dropped) return;
    state.droppedBytes += dropped;
    const unreceived = state.droppedUnreceived
      ? `; ${seconds(state.droppedUnreceived)} of it never reached the server`
      : "";
    show(
      ui.warning,
      `The connection was down too long: the oldest ${seconds(state.droppedBytes)} of audio were discarded ` +
        `to stay within the ${seconds(tuning.maxBufferBytes)} buffer${unreceived}.`
    );
  }

  function trimBelow(offset) {
    while (state.buffer.length && state.buffer[0].offset + state.buffer[0].bytes.length <= offset) {
      state.bufferBytes -= state.buffer.shift().bytes.length;
    }
  }

  // The payload that starts at `from`: a slice of a buffered chunk, or silence for audio that
  // the bound forced out (the server insists on contiguous audio; silence is the honest filler
  // and the warning already names how much was lost).
  function payloadAt(from) {
    const first = state.buffer.length ? state.buffer[0].offset : state.produced;
    if (from < first) {
      const length = Math.min(first - from, state.maxPayload);
      state.silenceBytes += length;
      show(
        ui.warning,
        `${seconds(state.silenceBytes)} of audio the server asked for again had already been discarded ` +
          "and was sent as silence."
      );
      return new Uint8Array(length);
    }
    let lo = 0;
    let hi = state.buffer.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (state.buffer[mid].offset <= from) lo = mid;
      else hi = mid - 1;
    }
    const chunk = state.buffer[lo];
    const payload = chunk.bytes.subarray(from - chunk.offset);
    return payload.length > state.maxPayload ? payload.subarray(0, state.maxPayload) : payload;
  }

  function frame(offset, payload) {
    const data = new Uint8Array(HEADER_BYTES + payload.length);
    new DataView(data.buffer).setBigUint64(0, BigInt(offset), true);
    data.set(payload, HEADER_BYTES);
    return data;
  }

  // Sends everything captured but not yet sent on this connection, then (when stopping)
  // the finalize message.
  function pump() {
    const ws = state.ws;
    if (!ws || !state.ready || ws.readyState !== WebSocket.OPEN) return;
    while (state.sendOffset < state.produced) {
      if (ws.bufferedAmount > MAX_SOCKET_BACKLOG) {
        clearTimeout(state.timers.pump);
        state.timers.pump = setTimeout(pump, 50);
        break;
      }
      const payload = payloadAt(state.sendOffset);
      ws.send(frame(state.sendOffset, payload));
      state.sendOffset += payload.length;
      state.highestSent = Math.max(state.highestSent, state.sendOffset);
      state.chunksSent += 1;
      state.lastSendAt = performance.now();
    }
    updateStats();
    if (state.phase === "stopping" && !state.capture && state.sendOffset >= state.produced && !state.finalizeSent) {
      ws.send(JSON.stringify({ type: "finalize" }));
      state.finalizeSent = true;
      state.lastSendAt = performance.now();
      show(ui.notice, "Processing the transcript…");
    }
  }

  // --- the stream --------------------------------------------------------------------------
  function streamUrl() {
    const { session_id: id, token, stream_url: given } = state.session;
    const base = new URL(given || `/v1/stream?session_id=${encodeURIComponent(id)}`, location.href);
    // Same origin as the page, whatever host the server put in stream_url: a proxy in front of
    // the page then carries the stream too.
    const url = new URL(base.pathname + base.search, streamOrigin || location.href);
    if (!streamOrigin) url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("session_id", id);
    url.searchParams.set("access_token", token);
    if (state.everConnected) url.searchParams.set("last_segment_id", String(state.lastContiguous));
    else url.searchParams.delete("last_segment_id");
    return url.toString();
  }

  function connect() {
    clearTimeout(state.timers.reconnect);
    setStatus(state.everConnected ? "Reconnecting" : "Connecting");
    const ws = new WebSocket(streamUrl());
    ws.binaryType = "arraybuffer";
    ws.intent = null; // set when the page itself closes the socket
    state.ws = ws;
    state.ready = false;
    state.finalizeSent = false;
    state.timers.connect = setTimeout(() => {
      if (state.ws === ws && !state.ready) closeSocket(ws, 4001, "no ready in time", "retry");
    }, CONNECT_TIMEOUT_MS);
    ws.onmessage = (event) => {
      if (state.ws === ws) onMessage(event.data);
    };
    ws.onclose = (event) => {
      if (state.ws === ws) onClose(ws, event.code, event.reason);
    };
    ws.onerror = () => {}; // the close event that follows says what happened
  }

  function closeSocket(ws, code, reason, intent) {
    ws.intent = intent;
    try {
      ws.close(code, reason);
    } catch (err) {
      ws.close();
    }
  }

  function onMessage(data) {
    if (typeof data !== "string") return; // the server sends no binary frames
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (err) {
      msg = null;
    }
    if (!msg || typeof msg !== "object") {
      console.warn("live: ignored a message that is not a JSON object:", data.slice(0, 200));
      return;
    }
    switch (msg.type) {
      case "ready":
        return onReady(msg);
      case "ack":
        return onAck(msg);
      case "partial":
        return onPartial(msg);
      case "final":
        return onFinal(msg);
      case "event":
        return onPipelineEvent(msg);
      case "error":
        return onServerError(msg);
      default:
        console.warn("live: ignored a message of unknown type", msg.type);
    }
  }

  function onReady(msg) {
    clearTimeout(state.timers.connect);
    state.ready = true;
    state.everConnected = true;
    if (msg.heartbeat_s > 0) state.heartbeatMs = msg.heartbeat_s * 1000;
    if (msg.max_frame_bytes > HEADER_BYTES) state.maxPayload = (msg.max_frame_bytes - HEADER_BYTES) & ~1;
    const committed = Number(msg.committed_offset) || 0;
    state.sendOffset = committed;
    state.received = committed;
    setStatus("Connected");
    if (state.phase === "recording") show(ui.notice, "");
    pump();
  }

  function onAck(msg) {
    // The server took audio: this connection works, so the next drop starts a fresh backoff.
    // (Not on `ready` alone: a server that accepts and then fails at once must not be retried forever.)
    state.attempts = 0;
    state.received = Number(msg.received_offset) || state.received;
    const durable = Number(msg.durable_offset) || 0;
    if (durable > state.durable) {
      state.durable = durable;
      trimBelow(durable);
    }
    updateStats();
  }

  function onPartial(msg) {
    if (state.finals.has(msg.segment_id)) return; // a late partial of a closed segment
    ui.partial.textContent = msg.text || "";
    ui.partial.dataset.segmentId = String(msg.segment_id);
    ui.placeholder.hidden = true;
  }

  function onFinal(msg) {
    const id = msg.segment_id;
    if (state.finals.has(id)) return; // replayed after a reconnect: already on screen
    state.finals.set(id, msg);
    renderFinal(msg);
    while (state.finals.has(state.lastContiguous + 1)) state.lastContiguous += 1;
    if (Number(ui.partial.dataset.segmentId) <= id) {
      ui.partial.textContent = "";
      delete ui.partial.dataset.segmentId;
    }
    if (state.defects.has("phi-in-localstorage")) {
      // Planted defect "phi-in-localstorage": the transcript persists in the browser.
      localStorage.setItem("liveTranscript", transcriptText());
    }
    if (id > state.lastContiguous + 1) askForReplay();
  }

  // A hole in the segment ids means a final was lost: reconnect at once with last_segment_id
  // so the server replays it. Bounded per hole, so a server that cannot fill it is not hammered.
  function askForReplay() {
    const hole = state.lastContiguous;
    const tries = state.replayTries.get(hole) || 0;
    if (tries >= 3) return;
    state.replayTries.set(hole, tries + 1);
    if (state.ws && state.ws.readyState === WebSocket.OPEN) closeSocket(state.ws, 4000, "replay lost finals", "replay");
  }

  function renderFinal(msg) {
    const el = document.createElement("p");
    el.className = "segment";
    el.dataset.segmentId = String(msg.segment_id);
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = clock(msg.start_ms);
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = msg.text || "";
    el.append(time, text);
    const next = [...ui.finals.children].find((child) => Number(child.dataset.segmentId) > msg.segment_id);
    ui.finals.insertBefore(el, next || null);
    ui.placeholder.hidden = true;
  }

  function transcriptText() {
    return [...state.finals.keys()]
      .sort((a, b) => a - b)
      .map((id) => state.finals.get(id).text)
      .join(" ");
  }

  function onPipelineEvent(msg) {
    const step = /^(refinement|analytics|tasks|summary)_(started|ready|failed)$/.exec(msg.name || "");
    if (step) show(ui.notice, `Processing the transcript: ${step[1]} ${step[2]}…`);
    if (msg.name === "dashboard_refresh") {
      state.pipelineDone = true;
      // The server closes with 1000 right after; leave on that close, or shortly anyway.
      state.timers.leave = setTimeout(goToView, 1000);
    }
  }

  function onServerError(msg) {
    switch (msg.code) {
      case "audio_gap":
        state.sendOffset = Number(msg.expected_offset) || 0;
        return pump();
      case "session_closed":
        if (state.phase === "recording") fail("This session has already ended. Start a new recording.");
        return;
      case "overloaded":
        show(ui.notice, "The server is busy; waiting for it…");
        return;
      case "internal":
        if (!msg.retryable) fail(`The server failed: ${msg.message || "internal error"}`);
        return;
      default:
        console.warn("live: server error", msg.code, msg.message);
        show(ui.warning, `The server rejected what this page sent (${msg.code}): ${msg.message || ""}`);
    }
  }

  function stillHasAudio() {
    return state.phase === "recording" || (state.phase === "stopping" && !state.pipelineDone);
  }

  function onClose(ws, code, reason) {
    clearTimeout(state.timers.connect);
    clearTimeout(state.timers.pump);
    state.ready = false;
    if (state.phase === "done" || state.phase === "failed" || state.phase === "idle") return;
    if (ws.intent === "replay") {
      connect(); // immediate: the server is fine, only a final is missing
      return;
    }
    if (code === 1000 || code === 4410) {
      if (state.phase === "stopping") return goToView();
      return fail(code === 1000 ? "The server ended this session." : "This session has already been finalized.");
    }
    if (FATAL_CODES[code]) return fail(FATAL_CODES[code]);
    const retry = ws.intent === "retry" || RETRY_CODES.has(code) || (code === 4408 && stillHasAudio());
    if (!retry) {
      return fail(`The connection closed unexpectedly (code ${code}${reason ? `: ${reason}` : ""}).`);
    }
    if (state.defects.has("client-no-reconnect")) {
      setStatus("Offline"); // planted defect "client-no-reconnect": the page just gives up
      return;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    state.attempts += 1;
    if (state.attempts > tuning.reconnectAttempts) {
      fail(`The server is unreachable. Recording stopped after ${tuning.reconnectAttempts} attempts to reconnect.`);
      return;
    }
    setStatus("Reconnecting");
    state.timers.reconnect = setTimeout(connect, backoffDelay(state.attempts));
  }

  function keepalive() {
    const ws = state.ws;
    if (!ws || !state.ready || ws.readyState !== WebSocket.OPEN || state.finalizeSent) return;
    if (performance.now() - state.lastSendAt < state.heartbeatMs) return;
    ws.send(JSON.stringify({ type: "keepalive" }));
    state.lastSendAt = performance.now();
  }

  // --- start, stop, leave ------------------------------------------------------------------
  function resetSession() {
    Object.assign(state, {
      session: null, ready: false, everConnected: false, attempts: 0, buffer: [], bufferBytes: 0,
      produced: 0, sendOffset: 0, highestSent: 0, received: 0, durable: 0, chunksSent: 0,
      droppedBytes: 0, droppedUnreceived: 0, silenceBytes: 0, finalizeSent: false,
      finals: new Map(), lastContiguous: -1, replayTries: new Map(), pipelineDone: false,
    });
    ui.finals.replaceChildren();
    ui.partial.textContent = "";
    show(ui.error, "");
    show(ui.warning, "");
    show(ui.notice, "");
    updateStats();
  }

  async function startRecording() {
    if (state.phase !== "idle" && state.phase !== "failed") return;
    resetSession();
    setPhase("starting");
    ui.start.disabled = true;
    try {
      await startCapture();
    } catch (err) {
      setPhase("idle");
      ui.start.disabled = false;
      show(ui.error, micErrorMessage(err));
      return;
    }
    setStatus("Connecting");
    try {
      state.session = await createSession();
    } catch (err) {
      await stopCapture();
      setPhase("failed");
      setStatus("Offline");
      show(ui.error, err.message);
      ui.start.disabled = false;
      return;
    }
    setPhase("recording");
    ui.stop.disabled = false;
    state.timers.keepalive = setInterval(keepalive, 1000);
    connect();
  }

  async function stopRecording() {
    if (state.phase !== "recording") return;
    setPhase("stopping");
    ui.stop.disabled = true;
    show(ui.notice, "Finishing: sending the last audio…");
    if (state.defects.has("console-error")) plantedTeardownBug();
    await stopCapture();
    state.timers.deadline = setTimeout(goToView, tuning.pipelineTimeoutMs);
    pump();
  }

  // Planted defect "console-error": the stop handler tears down a recorder it never created.
  function plantedTeardownBug() {
    try {
      state.recorder.stop();
    } catch (err) {
      console.error("Recorder teardown failed:", err);
    }
  }

  function clearTimers() {
    clearTimeout(state.timers.reconnect);
    clearTimeout(state.timers.connect);
    clearTimeout(state.timers.pump);
    clearTimeout(state.timers.deadline);
    clearTimeout(state.timers.leave);
    clearInterval(state.timers.keepalive);
  }

  function goToView() {
    if (state.phase === "done") return;
    setPhase("done");
    clearTimers();
    setStatus("Offline");
    const { session_id: id, token } = state.session;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) closeSocket(state.ws, 1000, "done", "done");
    location.assign(`/sessions/${encodeURIComponent(id)}/view?access_token=${encodeURIComponent(token)}`);
  }

  function fail(message) {
    setPhase("failed");
    clearTimers();
    setStatus("Offline");
    show(ui.error, message);
    show(ui.notice, "");
    if (state.ws && state.ws.readyState <= WebSocket.OPEN) closeSocket(state.ws, 1000, "stopped", "done");
    stopCapture().catch((err) => console.warn("live: microphone teardown:", err));
    ui.stop.disabled = true;
    ui.start.disabled = false;
  }

  // A read-only view for tests and debugging (never written anywhere).
  window.liveClient = {
    get phase() { return state.phase; },
    get sessionId() { return state.session ? state.session.session_id : null; },
    get offsets() {
      return {
        produced: state.produced, sent: state.sendOffset, received: state.received, durable: state.durable,
        buffered: state.bufferBytes, dropped: state.droppedBytes,
      };
    },
    get defects() { return [...state.defects]; },
  };

  ui.start.addEventListener("click", startRecording);
  ui.stop.addEventListener("click", stopRecording);

  loadConfig().then(() => {
    if (problems.length) show(ui.warning, problems.join(" "));
    setPhase("idle");
    ui.start.disabled = false;
  });
})();
