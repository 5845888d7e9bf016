"""The sync driver the way Locust runs it: gevent monkey-patched, several sessions as greenlets.

Run in a child interpreter because monkey-patching must happen before anything else is imported
and must not leak into the rest of the test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from harness.services import ReferenceServer

CHILD = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, sys
    import gevent
    from harness.drivers.session import SessionPlan
    from harness.drivers.sync_driver import SyncSessionClient
    from harness.protocols import SessionParams, StreamTarget, get_codec

    url, key = sys.argv[1], sys.argv[2]
    params = SessionParams(engine="scripted", script="red green blue",
                           metadata={"script_word_ms": 100, "script_segment_words": 3})

    def one(i):
        plan = SessionPlan(pcm=bytes(3200 * 9), params=params, pace=8.0, seed=i, deadline_s=60)
        out = SyncSessionClient(get_codec("reference"), StreamTarget(url, key), plan).run()
        return {"ok": out.ok, "error": out.error, "transcript": out.transcript, "paced": out.pacing.count}

    jobs = [gevent.spawn(one, i) for i in range(4)]
    gevent.joinall(jobs, timeout=90)
    print(json.dumps([j.value for j in jobs]))
""")


def test_sessions_run_concurrently_as_greenlets() -> None:
    with ReferenceServer(engine="scripted") as srv:
        proc = subprocess.run([sys.executable, "-c", CHILD, srv.url, srv.api_key], capture_output=True, text=True,
                              timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 4
    for r in results:
        assert r is not None, "a greenlet did not finish"
        assert r["ok"], r["error"]
        assert r["transcript"] == "red green blue red green blue red green blue"
        assert r["paced"] == 9
