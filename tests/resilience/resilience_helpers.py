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

from emulated import emulator_settings
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, CrawlResult, Depth
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


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
    **options: Any,
) -> CrawlResult:
    """One crawl. ``emulator_time``: the client's clock is the emulator's and its sleeps move that
    clock forward (backoff and ``Retry-After`` waits take no real time; tokens expire on it).
    ``options``: more :class:`CrawlOptions` (playlists, shows, audiobooks, market)."""
    clock: Callable[[], float] | None = None
    sleep: Callable[[float], None] | None = None
    if emulator_time:
        clock, sleep = emu.state.clock, emu.advance
    crawl_options = CrawlOptions(
        artists=tuple(inputs), depth=depth, workers=workers, max_attempts=max_attempts, **options
    )
    kwargs: dict[str, Any] = {}
    if clock is not None and sleep is not None:
        kwargs = {"clock": clock, "sleep": sleep}
    with SpotifyClient(emulator_settings(emu, mode=mode, **(settings or {})), **kwargs) as client:
        return Crawler(engine, client, crawl_options, now=lambda: T0, command="test").run()


# (child table, its column, parent table): every link must point at a stored row (there are no
# foreign keys to enforce it; a write split by a kill or a fault would leave such orphans)
LINKS = (
    ("tracks", "album_id", "albums"),
    ("track_artists", "track_id", "tracks"),
    ("track_artists", "artist_id", "artists"),
    ("album_artists", "album_id", "albums"),
    ("album_artists", "artist_id", "artists"),
    ("artist_albums", "album_id", "albums"),
    ("artist_albums", "artist_id", "artists"),
)


def orphans(engine: sa.Engine) -> list[str]:
    """Links to rows that are not stored, e.g. ``track_artists.track_id -> tracks: 3``."""
    found = []
    with engine.connect() as conn:
        for child_name, column, parent_name in LINKS:
            child, parent = schema.metadata.tables[child_name], schema.metadata.tables[parent_name]
            missing = conn.execute(
                sa.select(sa.func.count())
                .select_from(child)
                .where(child.c[column].is_not(None), child.c[column].not_in(sa.select(parent.c.id)))
            ).scalar_one()
            if missing:
                found.append(f"{child_name}.{column} -> {parent_name}: {missing}")
    return found


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
    return open_database(f"sqlite:///{path}")
