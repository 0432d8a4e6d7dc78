"""Helpers of the crawler tests: a client for an emulator, a crawl in one call, table contents,
and the minimum request count computed from the emulator's catalog truth."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from emulated import emulator_settings
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, CrawlResult, Depth
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage.migrate import open_database

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
    more: Extras | None = None,
    market: str | None = None,
    refresh_after: timedelta | None = None,
) -> CrawlResult:
    more = more or Extras()
    options = CrawlOptions(
        artists=tuple(pick().inputs if artists is None else artists),
        depth=depth,
        workers=workers,
        include_groups=groups,
        top_tracks=more.top_tracks,
        playlists=more.playlists,
        shows=more.shows,
        audiobooks=more.audiobooks,
        market=market or ("US" if more.shows or more.audiobooks else None),
        **({"refresh_after": refresh_after} if refresh_after is not None else {}),
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
    more: Extras | None = None,
    market: str | None = None,
) -> int:
    """docs/crawl.md's formula, from the catalog's truth. ``names`` maps each name to the artist the
    search is expected to choose; ``more``: top tracks, playlists, shows, audiobooks."""
    dev = mode == "development"
    crawl_artists = list(dict.fromkeys([*names.values(), *ids]))
    fetch_ids = [i for i in dict.fromkeys(ids) if i not in names.values()]
    total = len(names) + (len(fetch_ids) if dev else math.ceil(len(fetch_ids) / 50))
    full: set[str] = set()
    if more is not None:
        extra, full = extras_minimum(catalog, crawl_artists, more, mode=mode)
        total += extra
    if depth < Depth.ALBUMS:
        return total
    page = 10 if dev else 50
    albums: list[str] = []
    for artist_id in crawl_artists:
        if more is not None and (more.shows or more.audiobooks):
            market = market or "US"  # as crawl() gives
        listed = catalog.artist_album_ids(artist_id, groups, market)
        total += max(1, math.ceil(len(listed) / page))
        albums.extend(listed)
    unique_albums = list(dict.fromkeys(albums))
    if depth < Depth.TRACKS:
        return total
    total += len(unique_albums) if dev else math.ceil(len(unique_albums) / 20)
    total += sum(math.ceil(max(0, catalog.album(a).total_tracks - 50) / 50) for a in unique_albums)
    if depth < Depth.TRACK_DETAILS:
        return total
    tracks = {t for a in unique_albums for t in catalog.album_track_ids(a)} - full
    return total + (len(tracks) if dev else math.ceil(len(tracks) / 50))


def new_engine(path: Path) -> sa.Engine:
    return open_database(f"sqlite:///{path}")


# ------------------------------------------------------------------------------------------ the rest


@dataclass(frozen=True)
class Extras:
    """Playlists, shows and audiobooks to crawl, and whether to fetch the artists' top tracks."""

    playlists: tuple[str, ...] = ()
    shows: tuple[str, ...] = ()
    audiobooks: tuple[str, ...] = ()
    top_tracks: bool = False


def extras(catalog: Any, *, top_tracks: bool = False) -> Extras:
    """Three playlists (one of more than 100 items, one of 51-100, one of at most 50), two shows and
    two audiobooks (one of more than 50 episodes/chapters each), all available in the US."""
    lists = catalog.playlists
    playlists = (
        next(p for p in lists if p.total_items > 100).id,
        next(p for p in lists if 50 < p.total_items <= 100).id,
        next(p for p in lists if p.total_items <= 50).id,
    )
    us_shows = [s for s in catalog.shows if "US" in s.markets]
    shows = (
        next(s for s in us_shows if s.total_episodes > 100).id,
        next(s for s in us_shows if s.total_episodes <= 50).id,
    )
    books = catalog.audiobooks
    audiobooks = (
        next(b for b in books if b.total_chapters > 50).id,
        next(b for b in books if b.total_chapters <= 50).id,
    )
    return Extras(playlists, shows, audiobooks, top_tracks)


def top_track_ids(catalog: Any, artist_id: str) -> list[str]:
    """The emulator's top tracks of an artist (its ten most popular tracks of its ten most popular albums)."""
    artist = catalog.lookup(artist_id)
    albums = sorted(catalog.discography(artist.index), key=lambda al: -al.popularity)[:10]
    tracks = sorted(
        (t for al in albums for t in catalog.tracks_of(al.artist, al.number)),
        key=lambda t: (-t.popularity, t.id),
    )[:10]
    return [t.id for t in tracks]


def _pages(total: int, first: int, step: int = 50) -> int:
    return math.ceil(max(0, total - first) / step)


def extras_minimum(catalog: Any, artists: Sequence[str], more: Extras, *, mode: str) -> tuple[int, set[str]]:
    """docs/crawl.md's formula for top tracks, playlists, shows and audiobooks; and the tracks these
    delivered in full (left out of track details)."""
    dev = mode == "development"
    total = 0
    full: set[str] = set()
    if more.top_tracks and not dev:
        total += len(set(artists))
        full |= {t for a in set(artists) for t in top_track_ids(catalog, a)}
    for playlist_id in dict.fromkeys(more.playlists):
        playlist = catalog.lookup(playlist_id)
        total += 1
        if not dev:
            total += _pages(playlist.total_items, 100)
            full |= {t.id for t in catalog.playlist_items(playlist.index)}
    for show_id in dict.fromkeys(more.shows):
        total += 1 + _pages(catalog.lookup(show_id).total_episodes, 50)
    books = list(dict.fromkeys(more.audiobooks))
    total += len(books) if dev else math.ceil(len(books) / 50)
    total += sum(_pages(catalog.lookup(b).total_chapters, 50) for b in books)
    return total, full
