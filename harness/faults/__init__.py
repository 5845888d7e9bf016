"""Faults (the nemesis), each recorded as a window in the histories it affects.

- ``toxiproxy``: TCP faults through a real Toxiproxy server (latency, bandwidth, slicer,
  reset_peer, timeout, limit_data, slow_close, proxy down), one proxy per scenario, rolled back
  with ``/reset``.
- ``wsproxy``: a WebSocket-aware proxy for message faults (drop, duplicate, delay, reorder, hold
  back, close with a code, stop answering pings).
- ``process``: SIGKILL and restart, SIGSTOP/SIGCONT, SIGTERM on a server the harness started.
- ``matrix``: the chaos suite's fault matrix and its runner and checks.
"""
