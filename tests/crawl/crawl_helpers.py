"""Helpers of the crawler tests: a client for an emulator, a crawl in one call, table contents,
and the minimum request count computed from the emulator's catalog truth."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from emulated import emulator_settings
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, CrawlResult, Depth
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import db

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
GROUPS = ("album", "single", "compilation", "appears_on")


@dataclass(frozen=True)
class Pick:
    """Artists to crawl, chosen from the catalog's truth: ``names`` maps each name as given to the
    artist the search must choose; ``ids`` are given as ids."""

    names: dict[str, str]
    ids: tuple[str, ...]

    @property
    def inputs(self) -> tuple[ArtistInput, ...]:
        return tuple(ArtistInput(n, False) for n in self.names) + tuple(
            ArtistInput(i, True) for i in self.ids
        )

    def args(self) -> list[str]:
        return [arg for a in self.inputs for arg in ("--artist", a.value)]


@functools.lru_cache
def pick(seed: int = 42, artists: int = 200) -> Pick:
    """Small discographies (so tests are quick) that still cover: a name given in other case, an
    album of more than 50 tracks, an artist with more than 10 albums (two pages in development
    mode), ids and names."""
    from spotify_catalog.emulator import Catalog
    from spotify_catalog.transform import normalize_name

    catalog = Catalog(seed=seed, artists=artists)
    counts = Counter(normalize_name(n) for n in catalog.artist_names())
    rows = []
    for artist_id, name in zip(catalog.artist_ids(), catalog.artist_names(), strict=True):
        albums = catalog.artist_album_ids(artist_id)
        sizes = [catalog.album(a).total_tracks for a in albums]
        rows.append((sum(sizes), len(albums), max(sizes, default=0), artist_id, name))
    rows.sort()
    unique = [r for r in rows if counts[normalize_name(r[4])] == 1]
    cased = next(r for r in unique if r[4].upper() != r[4])
    big_album = next(r for r in unique if r[2] > 50)
    many_albums = next(r for r in rows if r[1] > 10)
    small = [r for r in unique if r not in (cased, big_album, many_albums)]
    names = {cased[4].upper(): cased[3], small[0][4]: small[0][3], big_album[4]: big_album[3]}
    ids = (small[1][3], many_albums[3])
    return Pick(names, ids)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


def crawl(
    emu: Any,
    engine: sa.Engine,
    artists: Sequence[ArtistInput] | None = None,
    *,
    mode: str | None = None,
    depth: Depth = Depth.TRACKS,
    workers: int = 1,
    budget: int | None = None,
    now: datetime = T0,
    groups: tuple[str, ...] = GROUPS,
    sleep: Any = None,
) -> CrawlResult:
    options = CrawlOptions(
        artists=tuple(artists or pick().inputs), depth=depth, workers=workers, include_groups=groups
    )
    extra = {"sleep": sleep} if sleep is not None else {}
    with SpotifyClient(emulator_settings(emu, mode), request_budget=budget, **extra) as client:
        return Crawler(engine, client, options, now=lambda: now, command="test").run()


def minimum_requests(
    catalog: Any,
    names: dict[str, str],
    ids: Sequence[str],
    *,
    mode: str,
    depth: Depth,
    groups: tuple[str, ...] = GROUPS,
) -> int:
    """docs/crawl.md's formula, from the catalog's truth. ``names`` maps each name to the artist the
    search is expected to choose."""
    dev = mode == "development"
    crawl_artists = list(dict.fromkeys([*names.values(), *ids]))
    fetch_ids = [i for i in dict.fromkeys(ids) if i not in names.values()]
    total = len(names) + (len(fetch_ids) if dev else math.ceil(len(fetch_ids) / 50))
    if depth < Depth.ALBUMS:
        return total
    page = 10 if dev else 50
    albums: list[str] = []
    for artist_id in crawl_artists:
        listed = catalog.artist_album_ids(artist_id, groups)
        total += max(1, math.ceil(len(listed) / page))
        albums.extend(listed)
    unique_albums = list(dict.fromkeys(albums))
    if depth < Depth.TRACKS:
        return total
    total += len(unique_albums) if dev else math.ceil(len(unique_albums) / 20)
    total += sum(math.ceil(max(0, catalog.album(a).total_tracks - 50) / 50) for a in unique_albums)
    if depth < Depth.TRACK_DETAILS:
        return total
    tracks = {t for a in unique_albums for t in catalog.album_track_ids(a)}
    return total + (len(tracks) if dev else math.ceil(len(tracks) / 50))


def new_engine(path: Path) -> sa.Engine:
    return db.open_database(f"sqlite:///{path}")
