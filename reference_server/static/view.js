// The session page (/sessions/{id}/view?access_token=…): the transcript and the pipeline's four
// results, each revealed when its event (<step>_ready or <step>_failed) has arrived.
//
// It polls GET /v1/sessions/{id} every 500 ms until the session is completed or failed, for at
// most MAX_POLLS polls. The token stays in memory and in the address bar only.
"use strict";

(() => {
  const POLL_MS = 500;
  const MAX_POLLS = 360; // 3 minutes: a pipeline still running by then is reported, not awaited
  const STEPS = ["refinement", "analytics", "tasks", "summary"];
  const RESULT_KEYS = { refinement: "refined_transcript", analytics: "analytics", tasks: "tasks", summary: "summary" };
  const STATE_LABELS = {
    created: "Created", streaming: "Streaming", interrupted: "Interrupted", finalizing: "Finalizing",
    processing: "Processing", completed: "Completed", failed: "Failed",
  };

  const $ = (id) => document.getElementById(id);
  const match = /^\/sessions\/([^/]+)\/view\/?$/.exec(location.pathname);
  const sessionId = match ? decodeURIComponent(match[1]) : null;
  const token = new URLSearchParams(location.search).get("access_token");
  const revealed = new Set();
  let polls = 0;
  let failures = 0;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) node.append(child);
    return node;
  }

  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = !text;
  }

  function setState(state) {
    const pill = $("sessionState");
    pill.dataset.state = state;
    pill.textContent = STATE_LABELS[state] || state;
    document.body.dataset.state = state;
  }

  function clock(ms) {
    const s = Math.floor((ms || 0) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  // --- the transcript ----------------------------------------------------------------------
  function renderFinals(finals) {
    const box = $("finals");
    if (box.children.length === finals.length) return; // finals are immutable: only ever appended
    box.replaceChildren(
      ...finals.map((f) =>
        el("p", { class: "segment", "data-segment-id": String(f.segment_id) },
          el("span", { class: "time", textContent: clock(f.start_ms) }),
          el("span", { class: "text", textContent: f.text || "" }))
      )
    );
    $("placeholder").hidden = finals.length > 0;
  }

  // --- the four results --------------------------------------------------------------------
  function renderRefinement(r) {
    const text = typeof r === "string" ? r : r && r.text;
    return text ? el("p", { textContent: text }) : el("p", { class: "empty", textContent: "Nothing to refine: the transcript is empty." });
  }

  function renderAnalytics(a) {
    if (!a || typeof a !== "object") return el("p", { class: "empty", textContent: "No analytics." });
    const facts = el("dl", { class: "facts" });
    const add = (label, value) => {
      if (value === undefined || value === null) return;
      facts.append(el("dt", { textContent: label }), el("dd", { textContent: String(value) }));
    };
    add("Duration", a.duration_s !== undefined ? `${Number(a.duration_s).toFixed(1)} s` : undefined);
    add("Words", a.word_count);
    add("Speaking rate", a.speaking_rate_wpm !== undefined ? `${Math.round(a.speaking_rate_wpm)} wpm` : undefined);
    if (a.pauses && typeof a.pauses === "object") {
      const longest = a.pauses.longest_ms ? ` (longest ${(a.pauses.longest_ms / 1000).toFixed(1)} s)` : "";
      add("Pauses", `${a.pauses.count ?? 0}${longest}`);
    } else {
      add("Pauses", a.pauses);
    }
    add("Mean confidence", typeof a.mean_confidence === "number" ? a.mean_confidence.toFixed(2) : a.mean_confidence);
    add("Segments", Array.isArray(a.segments) ? a.segments.length : a.segments);
    return facts.children.length ? facts : el("pre", { textContent: JSON.stringify(a, null, 2) });
  }

  function renderTasks(t) {
    const items = Array.isArray(t) ? t : (t && t.items) || [];
    if (!items.length) return el("p", { class: "empty", textContent: "No action items found." });
    return el("ul", {}, ...items.map((item) => {
      const li = el("li", { textContent: typeof item === "string" ? item : item.text || "" });
      if (item.owner) li.append(el("span", { class: "tag", textContent: `owner: ${item.owner}` }));
      if (item.due) li.append(el("span", { class: "tag", textContent: `due: ${item.due}` }));
      return li;
    }));
  }

  function renderSummary(s) {
    const text = typeof s === "string" ? s : s && s.text;
    return text ? el("p", { textContent: text }) : el("p", { class: "empty", textContent: "Nothing to summarize." });
  }

  const RENDERERS = { refinement: renderRefinement, analytics: renderAnalytics, tasks: renderTasks, summary: renderSummary };

  function reveal(step, outcome, result) {
    revealed.add(step);
    const card = document.querySelector(`[data-step="${step}"]`);
    const body = outcome === "ready"
      ? el("div", { "data-result": step, "data-state": "ready" }, RENDERERS[step](result))
      : el("p", { "data-result": step, "data-state": "failed", textContent: `The ${step} step failed.` });
    card.querySelector(".pending")?.remove();
    card.append(body);
  }

  function eventNames(events) {
    return (events || []).map((e) => (typeof e === "string" ? e : e && e.name));
  }

  function render(session) {
    setState(session.state);
    const audioS = ((session.received_offset || 0) / 32000).toFixed(1);
    $("sessionInfo").textContent = `${sessionId} · ${audioS} s of audio`;
    renderFinals(session.finals || []);
    const names = new Set(eventNames(session.events));
    const results = session.results || {};
    for (const step of STEPS) {
      if (revealed.has(step)) continue;
      if (names.has(`${step}_ready`)) reveal(step, "ready", results[RESULT_KEYS[step]]);
      else if (names.has(`${step}_failed`)) reveal(step, "failed");
    }
    if (session.state === "failed") {
      for (const step of STEPS) if (!revealed.has(step)) reveal(step, "failed");
    }
  }

  async function poll() {
    polls += 1;
    let response;
    try {
      response = await fetch(`/v1/sessions/${encodeURIComponent(sessionId)}?access_token=${encodeURIComponent(token)}`, {
        cache: "no-store",
      });
    } catch (err) {
      failures += 1;
      if (failures >= 5) showError("The server is unreachable. Still trying…");
      return schedule();
    }
    if (response.status === 401 || response.status === 403) {
      return showError("This link's access token is not valid for this session.");
    }
    if (response.status === 404) return showError("This session does not exist, or it was deleted.");
    if (!response.ok) {
      failures += 1;
      if (failures >= 5) showError(`The server answered HTTP ${response.status}. Still trying…`);
      return schedule();
    }
    failures = 0;
    showError("");
    const session = await response.json();
    render(session);
    if (session.state === "completed" || session.state === "failed") {
      document.body.dataset.loaded = "true";
      return;
    }
    schedule();
  }

  function schedule() {
    if (polls >= MAX_POLLS) {
      showError("The session is still being processed. Reload this page to check again.");
      return;
    }
    setTimeout(poll, POLL_MS);
  }

  if (!sessionId || !token) {
    setState("failed");
    showError("This page needs a session id in its path and an access_token in its address.");
  } else {
    poll();
  }
})();
