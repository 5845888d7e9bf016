"""Load, capacity and soak with Locust (``harness load``).

``locustfile.py`` (the Locust user, run only in Locust's own process: it imports gevent) and
``shape_steps.py`` (ramp / capacity staircase) are loaded by Locust. Everything else imports no
Locust: ``settings`` (the user's options), ``client`` and ``measure`` (a session and its samples),
``samples`` (raw sample files and exact statistics), ``steps`` (shapes, capacity judging),
``soak`` (memory growth), ``runner`` (the Locust subprocess), ``job`` (one run -> records) and
``cli``.
"""
