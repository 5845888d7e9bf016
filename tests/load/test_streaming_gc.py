"""The load process's garbage-collector settings keep every collection small.

A collection stops the event loop for as long as it walks its generations, and every stream's
audio waits meanwhile. Run in a child process: importing the locustfile imports Locust, which
monkey-patches the standard library, and the settings change the interpreter's collector.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# While 200 sessions' worth of history piles up (long-lived objects, as in a load run), count how
# many objects the young generations hold at most: that is what one young collection walks.
CHILD = textwrap.dedent("""
    import gc, json, sys
    from harness.history import History
    from harness.protocols.events import Ack
    if sys.argv[1] == "streaming":
        from harness.load.locustfile import _gc_for_streaming
        _gc_for_streaming()
    else:
        gc.collect(); gc.freeze(); gc.set_threshold(10_000, 50, 1_000_000)  # the settings before
    histories = [History() for _ in range(200)]
    young_peak = 0
    for i in range(600):  # a minute of 100 ms chunks per session
        for h in histories:
            h.add("audio_sent", offset=i * 3200, length=3200)
            h.add_event(Ack(i * 3200, i * 3200))
        if i % 10 == 0:
            young_peak = max(young_peak, len(gc.get_objects(0)) + len(gc.get_objects(1)))
    print(json.dumps({"young_peak": young_peak, "records": sum(len(h.records) for h in histories)}))
""")


def _young_peak(mode: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_young_collections_stay_small_while_histories_grow():
    streaming = _young_peak("streaming")
    assert streaming["records"] == 240_000
    # A few thousand objects at most (the thresholds are 2000 and 1), whatever has piled up.
    assert streaming["young_peak"] < 10_000, streaming


def test_the_settings_before_let_the_young_generations_grow_to_the_histories_size():
    # The 180 ms stop: (10000, 50) let the middle generation collect what the histories kept.
    before = _young_peak("before")
    assert before["young_peak"] > 100_000, before
