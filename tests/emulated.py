"""Helpers shared by the test folders that crawl the emulator: settings for its default credentials,
its Web API request count, database contents to compare row by row, a user's login stored."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from spotify_catalog.settings import Secret, Settings
from spotify_catalog.storage import schema
from spotify_catalog.users import LoginStore, StoredLogin

CLIENT_ID = "emulator-client-id"
CLIENT_SECRET = "emulator-client-secret"
# what differs between two equal crawls: when rows were fetched (not what was fetched)
TIME_COLUMNS = ("fetched_at", "resolved_at", "listed_at")


def emulator_settings(emu: Any, mode: str | None = None, **overrides: Any) -> Settings:
    """Settings for the emulator's default credentials; no environment, no .env."""
    return Settings.load(
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "api_url": emu.url + "/v1",
            "token_url": emu.url + "/api/token",
            "mode": mode,
            **overrides,
        },
        environ={},
        dotenv_path=Path("/nonexistent/.env"),
    )


def web_requests(emu: Any) -> int:
    """Web API requests the emulator answered (token requests left out)."""
    stats = emu.stats()
    return int(stats["requests"]) - int(stats["by_route"].get("POST /api/token", 0))


def wait_for_requests(emu: Any, proc: subprocess.Popen[Any], count: int, *, poll: float = 0.002) -> None:
    """Return once the emulator has answered ``count`` Web API requests, or ``proc`` has ended, or
    after 60 s (what a test then asserts says which)."""
    deadline = time.monotonic() + 60
    while web_requests(emu) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(poll)


def table_contents(
    conn: sa.Connection, table: sa.Table, exclude: Sequence[str] = ("fetched_at",)
) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (without the ``exclude`` columns), sorted by primary key in Python (the
    same order on every backend, whatever its collation): for comparisons."""
    columns = [c for c in table.c if c.name not in exclude]
    keys = [i for i, c in enumerate(columns) if c.primary_key]
    rows = [tuple(r) for r in conn.execute(sa.select(*columns))]
    return sorted(rows, key=lambda r: tuple(r[i] for i in keys))


def contents(
    engine: sa.Engine, emulator_url: str | None = None, *, exclude: tuple[str, ...] = ()
) -> dict[str, list[Any]]:
    """Every catalog table's rows, sorted, without the fetch times (and ``exclude``); the emulator's
    own address (in ``href`` links) replaced by ``EMULATOR`` so that crawls of two emulators compare."""
    with engine.connect() as conn:
        tables = {
            t.name: table_contents(conn, t, exclude=(*TIME_COLUMNS, *exclude)) for t in schema.CATALOG_TABLES
        }
    if emulator_url is None:
        return tables
    return {name: [_replace(row, emulator_url) for row in rows] for name, rows in tables.items()}


def _replace(value: Any, url: str) -> Any:
    if isinstance(value, str):
        return value.replace(url, "EMULATOR")
    if isinstance(value, tuple | list):
        return type(value)(_replace(v, url) for v in value)
    if isinstance(value, dict):
        return {k: _replace(v, url) for k, v in value.items()}
    return value


def differences(got: dict[str, list[Any]], want: dict[str, list[Any]], limit: int = 3) -> list[str]:
    """Readable differences between two :func:`contents` (empty: identical)."""
    out = []
    for table in sorted(set(got) | set(want)):
        a, b = got.get(table, []), want.get(table, [])
        if a == b:
            continue
        sa_, sb = {repr(r) for r in a}, {repr(r) for r in b}
        out.append(f"{table}: {len(a)} rows vs {len(b)} expected")
        out.extend(f"  extra   {r[:300]}" for r in sorted(sa_ - sb)[:limit])
        out.extend(f"  missing {r[:300]}" for r in sorted(sb - sa_)[:limit])
    return out


def stored_login(emu: Any, store: LoginStore, user: str = "alice", scopes: Any = None) -> StoredLogin:
    """A login stored without the browser: tokens from ``emu.login`` (the same PKCE flow)."""
    tokens = emu.login(user, scopes)
    stored = StoredLogin(
        name=user,
        client_id=tokens.client_id,
        user_id=tokens.user_id,
        display_name=None,
        scopes=tokens.scopes,
        logged_in=datetime.now(UTC).replace(microsecond=0),
        refresh_token=Secret(tokens.refresh_token),
    )
    store.save(stored)
    return stored
