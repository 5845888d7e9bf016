"""The relay suite's pieces: the system under test as a process (``sut``), the fault proxy that
records the vendor leg (``tap``), the suite's configuration (``config``) and the client side of a
relay scenario (``client``). The checks are in :mod:`harness.checks.relay`."""

# The example relay's planted defects (examples/relay, DEFECTS.md "Relay defects"): switched on in
# the system under test through its command's {defects} placeholder, never in the reference server.
RELAY_DEFECTS = (
    "relay-duplicate-vendor-connection",
    "relay-burst-gaps",
    "relay-no-vendor-reconnect",
    "relay-no-keepalive",
    "relay-unbounded-accumulator",
    "relay-health-na",
    "relay-no-auth",
    "relay-token-reuse",
    "relay-cross-talk",
)


def split_defects(defects: tuple[str, ...] | list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the reference server's defects, the system under test's relay defects)."""
    return (tuple(d for d in defects if d not in RELAY_DEFECTS), tuple(d for d in defects if d in RELAY_DEFECTS))
