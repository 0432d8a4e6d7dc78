"""The control endpoints (``/_emulator/*``): counters, the request log, reset, the clock and the
configuration. Never counted, never limited, never logged."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from spotify_catalog.emulator.config import EmulatorConfig
from spotify_catalog.emulator.responses import JSON, JSON_TYPE, encode
from spotify_catalog.emulator.state import EmulatorState


def control_json(body: Any, status: int = 200) -> Response:
    return Response(
        encode(body), status_code=status, headers={"content-type": JSON_TYPE, "cache-control": "no-store"}
    )


def stats(state: EmulatorState, method: str, body: Any) -> Response:
    return control_json(state.stats())


def requests(state: EmulatorState, method: str, body: Any) -> Response:
    return control_json([dataclasses.asdict(r) for r in state.requests()])


def reset(state: EmulatorState, method: str, body: Any) -> Response:
    state.reset()
    return control_json({"reset": True})


def advance(state: EmulatorState, method: str, body: Any) -> Response:
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return control_json({"error": 'expected {"seconds": <number >= 0>}'}, 400)
    state.clock.advance(float(seconds))
    return control_json({"offset": state.clock.offset})


def public_config(config: EmulatorConfig) -> JSON:
    """The configuration as JSON, without the client secrets."""
    return {
        "profile": config.profile,
        "seed": config.seed,
        "artists": config.artists,
        "latency_ms": config.latency_ms,
        "rate_limit": config.rate_limit,
        "quota": config.quota,
        "token_ttl": config.token_ttl,
        "fault_rate": config.fault_rate,
        "client_id": config.client_id,
        "fault_kinds": list(config.fault_kinds),
        "retry_after": config.retry_after,
        "clients": [{"client_id": c.client_id, "account": c.account} for c in config.clients],
        "quota_buckets": dict(config.quota_buckets),
        "quota_window": config.quota_window,
        "owner_premium": config.owner_premium,
        "users": list(config.users),
        "redirect_uris": list(config.redirect_uris),
    }


def configure(state: EmulatorState, method: str, body: Any) -> Response:
    """``GET``: the configuration; any other method: change it with the JSON object ``body``."""
    if method == "GET":
        return control_json(public_config(state.config))
    if not isinstance(body, dict):
        return control_json({"error": "expected a JSON object"}, 400)
    try:
        config = state.configure(**body)
    except (ValueError, TypeError) as exc:
        return control_json({"error": str(exc)}, 400)
    return control_json(public_config(config))


@dataclass(frozen=True)
class Control:
    """A control route: ``answer(state, method, body)`` with ``body`` the request's JSON (``None`` when
    it is not JSON or the client went away), read for every method but ``GET`` when ``reads_body``."""

    path: str
    methods: tuple[str, ...]
    answer: Callable[[EmulatorState, str, Any], Response]
    reads_body: bool = False


CONTROLS = (
    Control("/_emulator/stats", ("GET", "HEAD"), stats),
    Control("/_emulator/requests", ("GET", "HEAD"), requests),
    Control("/_emulator/reset", ("POST",), reset),
    Control("/_emulator/advance", ("POST",), advance, reads_body=True),
    Control("/_emulator/config", ("GET", "HEAD", "POST"), configure, reads_body=True),
)
