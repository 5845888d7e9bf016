"""Session clients: one sans-I/O state machine (``session``) run by two thin drivers.

- ``asyncio_driver``: ``AsyncSessionClient`` for pytest scenarios and the CLI, plus
  ``open_stream`` / ``create_session`` / ``http_request`` for scenarios that misbehave on purpose.
- ``sync_driver``: ``SyncSessionClient`` and the same helpers, blocking, for Locust under gevent.

Both take a codec (``harness.protocols.get_codec``), a ``StreamTarget`` and a ``SessionPlan``,
record everything in a ``History`` and return a ``SessionOutcome``.
"""
