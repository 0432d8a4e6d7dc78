"""A crawl database that changes between daily loads (docs/dlt.md), three crawls with their own clock:

1. ``T0``, catalog of seed 42: BTS by name, and two artists by id, X and Y; depth ``albums``
   (every album in full, with its first 50 tracks). Complete.
2. ``T1``, the catalog changed (the emulator restarted with seed 7: only BTS's id is in both),
   everything asked for again (``refresh_after=0``): BTS by name and Y by id, which Spotify now
   answers 404 (Y is gone, its links deleted). Stopped by its request budget in the middle of
   BTS's new discography: the links of its first pages written, its old links still there.
3. ``T2``, the same crawl again, to the end: the rest of BTS's new discography, its old links deleted,
   its old albums and their tracks gone.

X is never crawled again after ``T0``: none of its rows changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from emulated import emulator_settings
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, CrawlResult, Depth
from spotify_catalog.errors import Stopped
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import changes, schema

BTS = "3Nrfpe0tUJi4K4DXYWgMUX"
OLD_SEED, NEW_SEED = 42, 7
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
T1, T2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
STOP_BUDGET = 8  # crawl 2: the three artists, then a few pages of BTS's discography of 18 pages


@dataclass(frozen=True)
class Artists:
    """X and Y: the two smallest discographies of seed 42 with more than one album."""

    x: str
    y: str


def artists() -> Artists:
    from spotify_catalog.emulator import Catalog

    catalog = Catalog(seed=OLD_SEED, artists=200)
    sizes = sorted((len(catalog.artist_album_ids(a)), a) for a in catalog.artist_ids() if a != BTS)
    x, y = [a for n, a in sizes if n > 1][:2]
    return Artists(x, y)


def crawl(
    emu: Any, engine: sa.Engine, inputs: Sequence[ArtistInput], when: datetime, **kw: Any
) -> CrawlResult:
    budget = kw.pop("budget", None)
    options = CrawlOptions(artists=tuple(inputs), **{"depth": Depth.TRACKS, "workers": 1, **kw})
    with SpotifyClient(emulator_settings(emu), request_budget=budget) as client:
        return Crawler(engine, client, options, now=lambda: when, command="test").run()


def first(make_emulator: Any, engine: sa.Engine, who: Artists) -> Any:
    """Crawl 1 at ``T0``; gives the emulator of seed 42."""
    emu = make_emulator(seed=OLD_SEED)
    inputs = [ArtistInput("BTS", False), ArtistInput(who.x, True), ArtistInput(who.y, True)]
    assert crawl(emu, engine, inputs, T0).status == "done"
    return emu


def refreshed(make_emulator: Any) -> Any:
    return make_emulator(seed=NEW_SEED)


def second(emu: Any, engine: sa.Engine, who: Artists) -> None:
    """Crawl 2 at ``T1`` against the changed catalog, stopped in the middle of BTS's discography."""
    inputs = [ArtistInput("BTS", False), ArtistInput(who.y, True)]
    try:
        crawl(emu, engine, inputs, T1, refresh_after=timedelta(0), budget=STOP_BUDGET)
    except Stopped:
        pass
    else:
        raise AssertionError("crawl 2 was not stopped by its budget")
    assert pending_listing_pages(engine, BTS) > 0  # the scenario: a discography half written


def third(emu: Any, engine: sa.Engine, who: Artists) -> CrawlResult:
    """Crawl 3 at ``T2``: the same crawl, to the end."""
    inputs = [ArtistInput("BTS", False), ArtistInput(who.y, True)]
    result = crawl(emu, engine, inputs, T2)
    assert result.status == "done", result
    assert pending_listing_pages(engine, BTS) == 0
    return result


def pending_listing_pages(engine: sa.Engine, artist_id: str) -> int:
    t = schema.tasks
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(
            t.c.kind == changes.LISTING_KIND, t.c.key.startswith(artist_id + "|"), t.c.state == "pending"
        )
        return int(conn.execute(query).scalar_one())


def links(engine: sa.Engine, artist_id: str) -> set[str]:
    aa = schema.artist_albums
    with engine.connect() as conn:
        return set(conn.execute(sa.select(aa.c.album_id).where(aa.c.artist_id == artist_id)).scalars())
