"""The relay suite's settings (``relay.toml``): the vendor, the session correlation, the bounds."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.checks.relay import CORRELATIONS
from harness.errors import UsageError
from harness.paths import shipped_scenarios

VENDORS = ("deepgram",)  # vendors whose stand-in the relay checks drive (the others' fill placeholders only)
DEFAULT_FILE = shipped_scenarios() / "relay" / "relay.toml"


class RelayConfigError(UsageError, ValueError):
    """A relay.toml that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class RelayConfig:
    vendor: str = "deepgram"
    correlate: str = "tag"
    ready_path: str = "/health"
    health_path: str = "/health"
    health_field: str = "vendor_connections"
    vendor_timeout_s: float = 6.0
    max_gap_ms: float = 300.0
    min_vendor_rate: float = 0.95
    reconnect_within_s: float = 5.0
    max_rss_growth_mb_per_min: float = 3.0
    # How a client gets a one-session token: "METHOD /path" answered (with the service key as
    # Authorization: Token) by JSON with "access_token"; "" when the service has none.
    token_request: str = ""

    @property
    def token_method_path(self) -> tuple[str, str]:
        method, _, path = self.token_request.partition(" ")
        return method, path

    @classmethod
    def load(cls, path: str | Path | None = None) -> RelayConfig:
        path = Path(path) if path else DEFAULT_FILE
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RelayConfigError(f"relay config {path}: cannot be read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise RelayConfigError(f"relay config {path}: not valid TOML: {exc}") from exc
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "relay config") -> RelayConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise RelayConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            want = type(getattr(cls, name))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, want) or isinstance(value, bool):
                raise RelayConfigError(f"{where}: {name} must be {want.__name__}, got {value!r}")
            values[name] = value
        cfg = cls(**values)
        if cfg.vendor not in VENDORS:
            raise RelayConfigError(f"{where}: vendor {cfg.vendor!r} is not driven by the relay checks yet; "
                                   f"known: {', '.join(VENDORS)}")
        if cfg.correlate not in CORRELATIONS:
            raise RelayConfigError(f"{where}: correlate must be one of {', '.join(CORRELATIONS)}, got {cfg.correlate!r}")
        for name in ("vendor_timeout_s", "max_gap_ms", "reconnect_within_s", "max_rss_growth_mb_per_min"):
            if not getattr(cfg, name) > 0:
                raise RelayConfigError(f"{where}: {name} must be > 0, got {getattr(cfg, name)!r}")
        if cfg.token_request:
            method, _, path = cfg.token_request.partition(" ")
            if method not in ("GET", "POST") or not path.startswith("/") or " " in path:
                raise RelayConfigError(f"{where}: token_request must be \"GET /path\" or \"POST /path\" "
                                       f"(or \"\" for none), got {cfg.token_request!r}")
        if not 0 < cfg.min_vendor_rate <= 1:
            raise RelayConfigError(f"{where}: min_vendor_rate must be in (0, 1], got {cfg.min_vendor_rate!r}")
        return cfg
