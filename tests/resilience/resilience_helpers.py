"""Helpers of the resilience tests: artists chosen from the emulator's catalog, a crawl in one call
whose client sleeps on the emulator's clock, and database contents to compare row by row."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import ArtistInput, Crawler, CrawlOptions, CrawlResult, Depth
from spotify_catalog.settings import Settings
from spotify_catalog.storage import db, schema

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CLIENT_ID = "emulator-client-id"
CLIENT_SECRET = "emulator-client-secret"
# what differs between two equal crawls: when rows were fetched (not what was fetched)
TIME_COLUMNS = ("fetched_at", "resolved_at")


@functools.lru_cache
def artist_inputs(
    count: int,
    *,
    seed: int = 42,
    artists: int = 2000,
    max_albums: int = 6,
    names: int = 20,
    max_tracks: int | None = None,
) -> tuple[ArtistInput, ...]:
    """``count`` artists of a catalog with small discographies (quick crawls): ``names`` of them given
    by a name that is unique in the catalog, the rest by id; ``max_tracks``: no album longer."""
    from spotify_catalog.emulator import Catalog
    from spotify_catalog.transform import normalize_name

    catalog = Catalog(seed=seed, artists=artists)
    counts = Counter(normalize_name(n) for n in catalog.artist_names())
    chosen: list[ArtistInput] = []
    for artist_id, name in zip(catalog.artist_ids(), catalog.artist_names(), strict=True):
        albums = catalog.artist_album_ids(artist_id)
        if len(albums) > max_albums:
            continue
        if max_tracks is not None and any(catalog.album(a).total_tracks > max_tracks for a in albums):
            continue
        by_name = sum(not a.is_id for a in chosen) < names and counts[normalize_name(name)] == 1
        chosen.append(ArtistInput(name, False) if by_name else ArtistInput(artist_id, True))
        if len(chosen) == count:
            return tuple(chosen)
    raise AssertionError(f"the catalog has fewer than {count} small artists")


def cli_args(inputs: Sequence[ArtistInput]) -> list[str]:
    return [arg for a in inputs for arg in ("--artist", a.value)]


def emulator_settings(emu: Any, **overrides: Any) -> Settings:
    return Settings.load(
        {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "api_url": emu.url + "/v1",
            "token_url": emu.url + "/api/token",
            **overrides,
        },
        environ={},
        dotenv_path=Path("/nonexistent/.env"),
    )


def crawl(
    emu: Any,
    engine: sa.Engine,
    inputs: Sequence[ArtistInput],
    *,
    mode: str = "extended",
    depth: Depth = Depth.TRACKS,
    workers: int = 4,
    emulator_time: bool = False,
    settings: dict[str, Any] | None = None,
    max_attempts: int = 3,
) -> CrawlResult:
    """One crawl. ``emulator_time``: the client's clock is the emulator's and its sleeps move that
    clock forward (backoff and ``Retry-After`` waits take no real time; tokens expire on it)."""
    clock: Callable[[], float] | None = None
    sleep: Callable[[float], None] | None = None
    if emulator_time:
        clock, sleep = emu.state.clock, emu.advance
    options = CrawlOptions(artists=tuple(inputs), depth=depth, workers=workers, max_attempts=max_attempts)
    kwargs: dict[str, Any] = {}
    if clock is not None and sleep is not None:
        kwargs = {"clock": clock, "sleep": sleep}
    with SpotifyClient(emulator_settings(emu, mode=mode, **(settings or {})), **kwargs) as client:
        return Crawler(engine, client, options, now=lambda: T0, command="test").run()


def contents(engine: sa.Engine, emulator_url: str, *, exclude: Sequence[str] = ()) -> dict[str, list[Any]]:
    """Every catalog table, rows sorted by key, without the fetch times (and ``exclude``); the
    emulator's address replaced by ``EMULATOR`` so that crawls of two emulators compare."""
    with engine.connect() as conn:
        tables = {
            t.name: db.table_contents(conn, t, exclude=(*TIME_COLUMNS, *exclude))
            for t in schema.CATALOG_TABLES
        }
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


def duplicate_keys(engine: sa.Engine) -> list[str]:
    """Tables holding two rows with the same primary key (a schema without keys would allow it)."""
    found = []
    with engine.connect() as conn:
        for table in schema.CATALOG_TABLES:
            keys = list(table.primary_key.columns)
            total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            distinct = conn.execute(
                sa.select(sa.func.count()).select_from(sa.select(*keys).distinct().subquery())
            ).scalar_one()
            if total != distinct:
                found.append(f"{table.name}: {total} rows, {distinct} keys")
    return found


def web_requests(emu: Any) -> int:
    """Web API requests the emulator answered (token requests left out)."""
    stats = emu.stats()
    return int(stats["requests"]) - int(stats["by_route"].get("POST /api/token", 0))


@dataclass
class Catalog:
    """Row counts of a crawl, for quick sanity checks."""

    artists: int
    albums: int
    tracks: int


def row_counts(engine: sa.Engine) -> Catalog:
    with engine.connect() as conn:
        count = lambda t: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()  # noqa: E731
        return Catalog(count(schema.artists), count(schema.albums), count(schema.tracks))


def new_engine(path: Path) -> sa.Engine:
    return db.open_database(f"sqlite:///{path}")
