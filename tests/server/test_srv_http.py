"""The HTTP API against PROTOCOL.md: auth, validation, sessions, finalize, delete, health, stats,
metrics, debug, capacity, and the browser pages' endpoints."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from srv_client import PIPELINE_ORDER, WORD_BYTES, Api, silence

PROTECTED = [
    ("POST", "/v1/sessions"), ("GET", "/v1/sessions/x"), ("POST", "/v1/sessions/x/finalize"),
    ("DELETE", "/v1/sessions/x"), ("GET", "/health"), ("GET", "/v1/stats"), ("GET", "/metrics"),
    ("GET", "/debug/transactions"), ("GET", "/debug/dump"), ("POST", "/debug/release/x"),
]


@pytest.mark.parametrize("method, path", PROTECTED)
@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic abc"])
async def test_every_call_needs_the_key(ref_server, method: str, path: str, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    async with httpx.AsyncClient(base_url=ref_server.url) as http:
        r = await http.request(method, path, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized" and r.json()["message"]


async def test_create_answers_201_with_the_documented_body(api: Api, ref_server) -> None:
    body = await api.create()
    assert set(body) == {"session_id", "token", "state", "stream_url", "created_at"}
    assert body["state"] == "created"
    assert body["stream_url"] == f"{ref_server.ws_url}/v1/stream?session_id={body['session_id']}"
    assert body["created_at"].endswith("Z")


@pytest.mark.parametrize("payload, field", [
    ({"engine": "whisper", "sample_rate": 16000}, "engine"),
    ({"engine": "scripted", "sample_rate": 8000, "script": "a"}, "sample_rate"),
    ({"engine": "scripted", "sample_rate": "16000", "script": "a"}, "sample_rate"),
    ({"engine": "scripted", "sample_rate": 16000}, "script"),
    ({"engine": "scripted", "sample_rate": 16000, "script": "   "}, "script"),
    ({"engine": "scripted", "sample_rate": 16000, "script": "a", "metadata": [1]}, "metadata"),
    ({"engine": "scripted", "sample_rate": 16000, "script": "a", "metadata": "x"}, "metadata"),
    ({"engine": "scripted", "script": "a", "metadata": {"hold_step": "dance"}}, "metadata.hold_step"),
    ({"engine": "scripted", "script": "a", "metadata": {"script_word_ms": 0}}, "metadata.script_word_ms"),
    ([1, 2], "body"),
])
async def test_create_rejects_bad_fields_naming_them(api: Api, payload, field: str) -> None:
    r = await api.http.post("/v1/sessions", json=payload)
    assert r.status_code == 400
    assert r.json()["field"] == field
    assert field.split(".")[-1] in r.json()["message"]


async def test_create_rejects_bad_json(api: Api) -> None:
    r = await api.http.post("/v1/sessions", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body" and "JSON" in r.json()["message"]


async def test_token_opens_its_own_get_only(api: Api, ref_server) -> None:
    a, b = await api.create(), await api.create()
    async with httpx.AsyncClient(base_url=ref_server.url) as http:
        own = await http.get(f"/v1/sessions/{a['session_id']}", headers={"Authorization": f"Bearer {a['token']}"})
        query = await http.get(f"/v1/sessions/{a['session_id']}", params={"access_token": a["token"]})
        other = await http.get(f"/v1/sessions/{b['session_id']}", headers={"Authorization": f"Bearer {a['token']}"})
        fin = await http.post(f"/v1/sessions/{a['session_id']}/finalize",
                              headers={"Authorization": f"Bearer {a['token']}"})
        create = await http.post("/v1/sessions", headers={"Authorization": f"Bearer {a['token']}"},
                                 json={"engine": "scripted", "script": "x"})
    assert own.status_code == 200 and query.status_code == 200
    assert other.status_code == 401 and fin.status_code == 401 and create.status_code == 401


async def test_unknown_session_is_404(api: Api) -> None:
    for r in (await api.http.get("/v1/sessions/nope"), await api.http.post("/v1/sessions/nope/finalize"),
              await api.http.delete("/v1/sessions/nope")):
        assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_zero_audio_finalize_completes_with_every_step(api: Api) -> None:
    s = await api.create()
    r = await api.finalize(s["session_id"])
    assert r.status_code == 202 and r.json()["state"] in ("finalizing", "processing", "completed")
    body = await api.wait_state(s["session_id"])
    assert body["state"] == "completed"
    assert body["finals"] == [] and body["transcript"] == ""
    assert body["events"] == PIPELINE_ORDER
    assert body["pipeline"] == {"refinement": "ready", "analytics": "ready", "tasks": "ready", "summary": "ready"}
    assert all(body["results"][k] is not None for k in ("refined_transcript", "analytics", "tasks", "summary"))
    again = await api.finalize(s["session_id"])
    assert again.status_code == 202 and again.json()["state"] == "completed"
    assert (await api.get(s["session_id"]))["events"] == PIPELINE_ORDER


async def test_delete_removes_everything(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.send_audio(silence(6 * WORD_BYTES))
    await st.recv_until(lambda m: m["type"] == "final")
    r = await api.http.delete(f"/v1/sessions/{s['session_id']}")
    assert r.status_code == 204
    assert (await st.drain_until_closed()).code == 4404
    assert (await api.http.get(f"/v1/sessions/{s['session_id']}")).status_code == 404
    assert (await api.http.delete(f"/v1/sessions/{s['session_id']}")).status_code == 404


async def test_health_is_all_integers_and_counts_come_back_down(api: Api) -> None:
    before = (await api.http.get("/health")).json()
    for key in ("uptime_s", "active_connections", "active_sessions", "active_buffers", "stalled_transactions",
                "rss_bytes"):
        assert type(before[key]) is int, key
    assert before["status"] in ("ok", "degraded") and before["version"] and before["engine"] == "scripted"
    assert before["rss_bytes"] > 10_000_000
    s = await api.create()
    streams = [await api.stream(s["session_id"])]
    await streams[0].recv()
    during = (await api.http.get("/health")).json()
    assert during["active_connections"] == before["active_connections"] + 1
    assert during["active_sessions"] == before["active_sessions"] + 1
    await streams[0].close()
    await api.finalize(s["session_id"])
    await api.wait_state(s["session_id"])
    async with asyncio.timeout(5):
        while (after := (await api.http.get("/health")).json())["active_connections"] != before["active_connections"]:
            await asyncio.sleep(0.05)
    assert after["active_sessions"] == before["active_sessions"]


async def test_stats_and_metrics(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.send_audio(silence(5 * WORD_BYTES))
    await st.send_json({"type": "finalize"})
    await st.drain_until_closed()
    stats = (await api.http.get("/v1/stats")).json()
    for key in ("websocket_connections", "sessions_created_total", "sessions_failed_last_hour",
                "avg_session_creation_ms", "p95_final_latency_ms", "high_latency_warnings", "alerts"):
        assert key in stats, key
    assert stats["sessions_created_total"] >= 1 and stats["avg_session_creation_ms"] > 0
    assert stats["p95_final_latency_ms"] > 0
    assert isinstance(stats["alerts"], list)
    r = await api.http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("reference_websocket_connections", "reference_sessions_created_total",
                 "reference_session_creation_seconds_bucket", "reference_final_latency_seconds_count",
                 "reference_active_sessions", "reference_stalled_transactions", "reference_rss_bytes"):
        assert name in text, name


async def test_hold_step_stall_detection_and_release(api: Api) -> None:
    s = await api.create(metadata={"hold_step": "tasks"})
    await api.finalize(s["session_id"])
    async with asyncio.timeout(10):  # stall_after is 1 s on this server; the sweep runs every second
        while True:
            stalled = (await api.http.get("/debug/transactions", params={"status": "stalled"})).json()
            if any(t["session_id"] == s["session_id"] for t in stalled["transactions"]):
                break
            await asyncio.sleep(0.2)
    tx = next(t for t in stalled["transactions"] if t["session_id"] == s["session_id"])
    assert tx["status"] == "stalled" and "pipeline" in tx["waiting_on"]
    assert [e["stage"] for e in tx["events"]].count("tasks_started") == 1
    health = (await api.http.get("/health")).json()
    assert health["status"] == "degraded" and health["stalled_transactions"] >= 1
    alerts = (await api.http.get("/v1/stats")).json()["alerts"]
    assert any(a["type"] == "stalled_transaction" and a["count"] >= 1 for a in alerts)
    body = await api.get(s["session_id"])
    assert body["state"] == "processing" and body["pipeline"]["tasks"] == "running"
    assert (await api.http.post(f"/debug/release/{s['session_id']}")).status_code == 200
    body = await api.wait_state(s["session_id"])
    assert body["state"] == "completed" and body["events"] == PIPELINE_ORDER
    all_tx = (await api.http.get("/debug/transactions")).json()["transactions"]
    tx = next(t for t in all_tx if t["session_id"] == s["session_id"])
    assert tx["status"] == "ended"
    stages = [e["stage"] for e in tx["events"]]
    assert stages.index("stalled") < stages.index("resumed") < stages.index("ended")
    assert (await api.http.get("/health")).json()["stalled_transactions"] == 0
    dump = (await api.http.get("/debug/dump")).json()
    assert {"config", "health", "stats", "sessions", "transactions"} <= set(dump)
    assert "api_key" not in dump["config"]


async def test_client_leaving_mid_pipeline_does_not_stop_it(api: Api) -> None:
    s = await api.create(metadata={"hold_step": "refinement"})
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.send_audio(silence(5 * WORD_BYTES))
    await st.send_json({"type": "finalize"})
    await st.recv_until(lambda m: m.get("name") == "refinement_started")
    await st.close()
    await api.http.post(f"/debug/release/{s['session_id']}")
    body = await api.wait_state(s["session_id"])
    assert body["state"] == "completed" and body["events"] == PIPELINE_ORDER
    assert body["transcript"] == "alpha bravo charlie delta echo"


async def test_bad_transaction_filter_is_400(api: Api) -> None:
    r = await api.http.get("/debug/transactions", params={"status": "sleepy"})
    assert r.status_code == 400 and r.json()["field"] == "status"


async def test_pages_and_live_session(ref_server) -> None:
    async with httpx.AsyncClient(base_url=ref_server.url) as http:
        live = await http.get("/live")
        view = await http.get("/sessions/abc/view")
        cfg = await http.get("/live/config.json")
        js = await http.get("/static/live.js")
        created = await http.post("/live/session", json={"engine": "scripted", "script": "hello there"})
    assert live.status_code == 200 and "text/html" in live.headers["content-type"]
    assert view.status_code == 200 and "text/html" in view.headers["content-type"]
    assert js.status_code == 200
    assert cfg.json() == {"defects": [], "api_key_hint": None}
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"session_id", "token", "state", "stream_url", "created_at"}
    assert ref_server.api_key not in created.text


async def test_capacity_503_with_retry_after_and_stream_1013(start_ref_server, tmp_path) -> None:
    db = tmp_path / "cap.sqlite3"
    srv = start_ref_server(extra_args=("--max-sessions", "3"), db_path=db)
    api = Api(srv.url, srv.api_key)
    try:
        ids = [(await api.create())["session_id"] for _ in range(3)]
        r = await api.http.post("/v1/sessions", json={"engine": "scripted", "script": "a"})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0 and r.json()["error"] == "overloaded"
        assert (await api.http.get("/health")).json()["status"] == "degraded"
        # a finished session frees its place
        await api.finalize(ids[0])
        await api.wait_state(ids[0])
        await api.create()
        # after a restart with a lower cap, a stream beyond it is refused with 1013
        srv.stop()
        srv.extra_args = ["--max-sessions", "1"]
        srv.start()
        first = await api.stream(ids[1])
        assert (await first.recv())["type"] == "ready"
        second = await api.stream(ids[2])
        err = await second.recv()
        assert err["code"] == "overloaded" and err["retryable"] is True
        assert (await second.drain_until_closed()).code == 1013
        await first.close()
    finally:
        await api.aclose()
