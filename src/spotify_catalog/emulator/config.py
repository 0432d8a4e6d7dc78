"""The emulator's settings: what ``spotify-catalog emulator`` options and ``/_emulator/config`` set."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from spotify_catalog.emulator.catalog import MAX_ARTISTS

Profile = Literal["development", "extended"]
RetryAfterMode = Literal["normal", "zero", "omit"]
PROFILES = ("development", "extended")
STATUS_FAULTS = ("500", "502", "503")
BODY_FAULTS = ("truncated", "html", "content_type", "missing_field", "extra_field", "null_items")
# answered before the handler runs, like the status faults, but with a body that is not JSON
RAW_FAULTS = ("plain_text_error", "empty_429")
FAULT_KINDS = (*STATUS_FAULTS, "drop", *BODY_FAULTS, *RAW_FAULTS)
DEFAULT_FAULTS = (*STATUS_FAULTS, "drop")
# settings that may change while the emulator runs (seed and artists shape the catalog: fixed)
RUNTIME_FIELDS = (
    "profile",
    "latency_ms",
    "rate_limit",
    "quota",
    "token_ttl",
    "fault_rate",
    "fault_kinds",
    "retry_after",
    "client_id",
    "client_secret",
)


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves. ``rate_limit`` = requests per rolling 30 s, ``quota`` = per rolling
    24 h (0 = off for both); ``retry_after`` of the 30-s limiter's 429: ``normal`` (seconds until a
    slot frees), ``zero`` (``Retry-After: 0``) or ``omit`` (no header)."""

    profile: Profile = "development"
    seed: int = 42
    artists: int = 2000
    latency_ms: float = 0.0
    rate_limit: int = 0
    quota: int = 0
    token_ttl: int = 3600
    fault_rate: float = 0.0
    client_id: str = "emulator-client-id"
    client_secret: str = field(default="emulator-client-secret", repr=False)
    fault_kinds: tuple[str, ...] = DEFAULT_FAULTS
    retry_after: RetryAfterMode = "normal"

    def __post_init__(self) -> None:
        problems = validate(self)
        if problems:
            raise ValueError(problems[0])

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with run-time settings changed (``ValueError`` for unknown or invalid ones)."""
        unknown = sorted(set(changes) - set(RUNTIME_FIELDS))
        if unknown:
            raise ValueError(f"cannot change {', '.join(unknown)} at run time")
        if "fault_kinds" in changes and not isinstance(changes["fault_kinds"], str | bytes):
            changes["fault_kinds"] = tuple(changes["fault_kinds"])
        return dataclasses.replace(self, **changes)


def validate(config: EmulatorConfig) -> list[str]:
    """What is wrong with a configuration, as one-line messages."""
    problems = []
    if config.profile not in PROFILES:
        problems.append(f"profile must be one of {', '.join(PROFILES)}")
    if not isinstance(config.artists, int) or not 3 <= config.artists <= MAX_ARTISTS:
        problems.append(f"artists must be between 3 and {MAX_ARTISTS}")
    for name in ("rate_limit", "quota", "token_ttl"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{name} must be a whole number >= 0")
    if config.token_ttl == 0:
        problems.append("token_ttl must be at least 1")
    if not isinstance(config.latency_ms, int | float) or config.latency_ms < 0:
        problems.append("latency_ms must be >= 0")
    if not isinstance(config.fault_rate, int | float) or not 0 <= config.fault_rate <= 1:
        problems.append("fault_rate must be between 0 and 1")
    if not isinstance(config.fault_kinds, tuple) or not config.fault_kinds:
        problems.append("fault_kinds must be a non-empty list")
    else:
        bad = [k for k in config.fault_kinds if k not in FAULT_KINDS]
        if bad:
            problems.append(f"unknown fault kind {bad[0]!r} (known: {', '.join(FAULT_KINDS)})")
    if config.retry_after not in ("normal", "zero", "omit"):
        problems.append("retry_after must be normal, zero or omit")
    if not config.client_id or not config.client_secret:
        problems.append("client_id and client_secret must not be empty")
    return problems
