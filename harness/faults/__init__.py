"""Faults (the nemesis), each recorded as a window in the histories it affects.

One interface for every layer (:mod:`harness.faults.base`: a fault is a dataclass of its
parameters with ``start``, ``stop`` and the windows it recorded; a registry by name; how to add a
layer), and schedules as data (:mod:`harness.faults.schedule`: TOML or Python values naming faults,
triggers and targets). The layers:

- ``toxiproxy`` / ``toxics``: TCP faults through a real Toxiproxy server (latency, bandwidth,
  slicer, reset_peer, timeout, limit_data, slow_close, proxy down), one proxy per scenario, rolled
  back with ``/reset``.
- ``wsproxy`` / ``ws_faults``: a WebSocket-aware proxy for message faults (drop, duplicate, delay,
  reorder, hold back, close with a code, stop answering pings) and what vendors do (refused
  handshakes, the vendor's error then its close, stall, drop or duplicate the nth final, cut);
  ``vendors``: the vendors' wire facts and presets; ``proxy_record``: what the proxy did, per
  connection. It runs a schedule per connection itself.
- ``process`` / ``signals``: SIGKILL and restart, SIGSTOP/SIGCONT, SIGTERM on a server the harness
  started.
- ``scheduler``: runs a schedule's steps against one session from the client's side.
- ``matrix``: the chaos suite's fault matrix and its runner and checks.
"""
