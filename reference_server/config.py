"""Server configuration: one frozen dataclass built from the command line (see __main__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .defects import DefectSet


@dataclass(frozen=True)
class ServerConfig:
    api_key: str
    host: str = "127.0.0.1"
    port: int = 8700
    engine: str = "pocketsphinx"  # default engine for sessions that do not name one
    db_path: str = ".harness/reference.sqlite3"
    defects: DefectSet = field(default_factory=DefectSet)
    test_hooks: bool = False
    stall_after_s: float = 60.0
    heartbeat_s: float = 5.0
    idle_timeout_s: float = 15.0
    max_segment_s: float = 15.0
    max_sessions: int = 1000
    max_frame_bytes: int = 32768
    deepgram_timeout_s: float = 10.0  # /v1/listen: 1011 NET-0001 after this long without input
    stall_check_interval_s: float = 1.0
    retry_after_s: int = 5  # Retry-After sent with 503 at capacity
    ack_min_interval_s: float = 0.02  # acks are sent per frame but no more often than this
    log_level: str = "warning"
    engine_workers: int = 0  # processes decoding pocketsphinx streams (0: in the server process)
    wyoming_port: int | None = None  # Wyoming over TCP on this port (0: a free one); None: not served

    def __post_init__(self) -> None:
        problems = []
        if not self.api_key:
            problems.append("api_key must not be empty")
        for name in ("heartbeat_s", "idle_timeout_s", "max_segment_s", "stall_after_s", "deepgram_timeout_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_sessions < 1:
            problems.append(f"max_sessions must be >= 1, got {self.max_sessions!r}")
        if self.max_frame_bytes < 2 or self.max_frame_bytes % 2:
            problems.append(f"max_frame_bytes must be an even number >= 2, got {self.max_frame_bytes!r}")
        if self.engine_workers < 0:
            problems.append(f"engine_workers must be >= 0, got {self.engine_workers!r}")
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be 0..65535, got {self.port!r}")
        if self.wyoming_port is not None and not 0 <= self.wyoming_port <= 65535:
            problems.append(f"wyoming_port must be 0..65535, got {self.wyoming_port!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def heartbeat_enabled(self) -> bool:
        return "no-heartbeat" not in self.defects
