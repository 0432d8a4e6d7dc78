"""When the catalog changes: a refreshed discography replaces the artist's links, albums no discography
lists any more and entities answered 404 are marked gone and not asked for again within the refresh
window, and the export leaves gone rows out (docs/crawl.md "When the catalog changes").

The change is real: the emulator restarted with another seed. Only BTS's id is the same in every
seed; its albums (and every other id) differ, so BTS loses its whole discography and gains another."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
from crawl_helpers import GROUPS, T0, minimum_requests, new_engine, pick

from emulated import emulator_settings, web_requests
from spotify_catalog import export as lake_export
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, CrawlResult, Depth
from spotify_catalog.emulator import Catalog
from spotify_catalog.errors import Stopped
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.migrate import open_database

BTS = "3Nrfpe0tUJi4K4DXYWgMUX"
OLD, NEW = 42, 7  # seeds: BTS has 151 albums in the first, 176 others in the second
HOUR = timedelta(hours=1)


def run(
    emu: Any,
    engine: sa.Engine,
    artists: Sequence[ArtistInput],
    when: datetime,
    *,
    refresh: timedelta = timedelta(0),
    depth: Depth = Depth.TRACKS,
    mode: str | None = None,
    budget: int | None = None,
    workers: int = 1,
) -> CrawlResult:
    options = CrawlOptions(artists=tuple(artists), depth=depth, refresh_after=refresh, workers=workers)
    with SpotifyClient(emulator_settings(emu, mode), request_budget=budget) as client:
        return Crawler(engine, client, options, now=lambda: when, command="test").run()


def not_found(emu: Any) -> int:
    return int(emu.stats()["by_status"].get("404", 0))


def ids(engine: sa.Engine, table: sa.Table, *where: Any) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.id).where(*where)).scalars())


def links(engine: sa.Engine, artist_id: str) -> set[str]:
    aa = schema.artist_albums
    with engine.connect() as conn:
        return set(conn.execute(sa.select(aa.c.album_id).where(aa.c.artist_id == artist_id)).scalars())


def gone_times(engine: sa.Engine, table: sa.Table, keys: set[str]) -> set[datetime | None]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.gone_at).where(table.c.id.in_(sorted(keys)))).scalars())


def tracks_of(catalog: Catalog, albums: Sequence[str]) -> set[str]:
    return {t for a in albums for t in catalog.album_track_ids(a)}


@pytest.mark.slow
def test_a_changed_catalog_replaces_links_marks_gone_and_costs_the_minimum(
    make_emulator: Any, tmp_path: Path
) -> None:
    gone_artist = pick().ids[0]  # exists only in the old catalog
    assert Catalog(NEW, 200).artist_by_id(gone_artist) is None
    artists = [ArtistInput("BTS", False), ArtistInput(gone_artist, True)]
    engine = new_engine(tmp_path / "c.db")
    old = make_emulator(seed=OLD)
    assert run(old, engine, artists, T0).status == "done"
    old_albums = old.catalog.artist_album_ids(BTS)
    gone_albums = set(old_albums) | set(old.catalog.artist_album_ids(gone_artist))
    gone_tracks = tracks_of(old.catalog, sorted(gone_albums))
    assert links(engine, BTS) == set(old_albums)

    new = make_emulator(seed=NEW)  # the emulator restarted with another catalog
    new_albums = new.catalog.artist_album_ids(BTS)
    assert (len(old_albums), len(new_albums), set(old_albums) & set(new_albums)) == (151, 176, set())
    minimum = minimum_requests(new.catalog, {"BTS": BTS}, (), mode="development", depth=Depth.TRACKS) + 1
    second = run(new, engine, artists, T0 + HOUR)
    assert second.status == "done"
    assert second.not_found == [gone_artist]
    assert not_found(new) == 1  # the gone artist's id; none on a removed album
    assert second.requests == web_requests(new) == minimum
    assert links(engine, BTS) == set(new_albums)
    assert links(engine, gone_artist) == set()
    assert gone_times(engine, schema.albums, gone_albums) == {T0 + HOUR}
    assert gone_times(engine, schema.tracks, gone_tracks) == {T0 + HOUR}
    assert gone_times(engine, schema.artists, {gone_artist}) == {T0 + HOUR}
    assert gone_times(engine, schema.albums, set(new_albums)) == {None}
    with engine.connect() as conn:  # nothing left queued for the gone albums
        pending = (
            conn.execute(sa.select(schema.tasks.c.key).where(schema.tasks.c.state == "pending"))
            .scalars()
            .all()
        )
    assert pending == []

    third = run(new, engine, artists, T0 + 2 * HOUR, workers=4)
    assert third.requests == web_requests(new) - second.requests == minimum
    assert not_found(new) == 2
    assert links(engine, BTS) == set(new_albums)
    assert gone_times(engine, schema.albums, gone_albums) == {T0 + HOUR}  # first found gone

    current_tracks = tracks_of(new.catalog, new_albums)
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    lake_export.export(engine, schema.metadata, lake, T0.date())
    read = _reader(tmp_path / "lake")
    assert set(read("albums")["id"]) == set(new_albums)
    assert set(read("tracks")["id"]) == current_tracks
    assert gone_artist not in set(read("artists")["id"])
    assert "gone_at" not in read("albums")
    assert set(read("artist_albums")["album_id"]) == set(new_albums)
    assert not set(read("album_artists")["album_id"]) & gone_albums
    assert not set(read("track_artists")["track_id"]) & gone_tracks

    lake_export.export(engine, schema.metadata, lake, T0.date(), include_gone=True)
    albums = read("albums")
    assert set(albums["id"]) == set(new_albums) | gone_albums
    when = dict(zip(albums["id"], albums["gone_at"], strict=True))
    assert {when[a] for a in gone_albums} == {(T0 + HOUR).replace(tzinfo=None)}  # INT96: UTC, no zone
    assert {when[a] for a in new_albums} == {None}
    assert set(read("tracks")["id"]) == current_tracks | gone_tracks
    assert gone_artist in set(read("artists")["id"])
    engine.dispose()


def _reader(root: Path) -> Any:
    def read(table: str) -> dict[str, list[Any]]:
        parquet = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(coerce_int96_timestamp_unit="us"))
        data = ds.dataset(root / table, format=parquet, partitioning="hive").to_table()
        return {name: data.column(name).to_pylist() for name in data.column_names}

    return read


@pytest.mark.slow
def test_a_stop_between_pages_keeps_the_old_links_until_the_listing_is_whole(
    make_emulator: Any, tmp_path: Path
) -> None:
    """Refreshing a discography that shrank (176 albums to 151 in development mode: 18 pages to 16),
    stopped after its third page: nothing is removed yet; the resumed run finishes the listing and
    removes exactly the albums not listed, with the minimum of requests over both runs."""
    artists = [ArtistInput(BTS, True)]
    engine = new_engine(tmp_path / "c.db")
    before = make_emulator(seed=NEW)
    run(before, engine, artists, T0, depth=Depth.ALBUMS)
    old_albums = set(before.catalog.artist_album_ids(BTS))

    after = make_emulator(seed=OLD)
    new_albums = after.catalog.artist_album_ids(BTS)
    with pytest.raises(Stopped):
        run(after, engine, artists, T0 + HOUR, depth=Depth.ALBUMS, budget=4)  # the artist, 3 pages
    listed = links(engine, BTS) - old_albums
    assert old_albums <= links(engine, BTS)  # nothing removed before the listing is whole
    assert len(listed) == 30
    assert listed <= set(new_albums)

    resumed = run(after, engine, artists, T0 + HOUR, depth=Depth.TRACKS, refresh=HOUR)
    assert resumed.status == "done"
    assert links(engine, BTS) == set(new_albums)
    assert not_found(after) == 0
    minimum = minimum_requests(after.catalog, {}, (BTS,), mode="development", depth=Depth.TRACKS)
    assert web_requests(after) == minimum
    with engine.connect() as conn:  # the 17th and 18th pages of the old listing are not queued
        keys = (
            conn.execute(sa.select(schema.tasks.c.key).where(schema.tasks.c.kind == "artist_albums"))
            .scalars()
            .all()
        )
    assert len(keys) == math.ceil(len(new_albums) / 10)
    assert gone_times(engine, schema.albums, old_albums) == {T0 + HOUR}
    engine.dispose()


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_a_404_marks_albums_and_tracks_gone_and_they_are_not_asked_again(
    make_emulator: Any, tmp_path: Path, profile: str
) -> None:
    """Albums listed by a discography but gone when fetched (single requests answered 404 in
    development mode, nulls in a batch in extended mode), and tracks the same."""
    albums_only, with_tracks = pick().ids  # exist only in the old catalog
    engine = new_engine(tmp_path / "c.db")
    old = make_emulator(seed=OLD, profile=profile)
    run(old, engine, [ArtistInput(albums_only, True)], T0, depth=Depth.ALBUMS, mode=profile)
    run(old, engine, [ArtistInput(with_tracks, True)], T0, depth=Depth.TRACKS, mode=profile)
    fetched = old.catalog.artist_album_ids(with_tracks)
    listed = [a for a in old.catalog.artist_album_ids(albums_only) if a not in fetched]
    tracks = tracks_of(old.catalog, fetched)

    new = make_emulator(seed=NEW, profile=profile)  # the albums and tracks are gone
    both = [ArtistInput(albums_only, True), ArtistInput(with_tracks, True)]
    second = run(new, engine, both, T0 + HOUR, refresh=timedelta(days=7), depth=Depth.TRACK_DETAILS)
    dev = profile == "development"
    assert second.requests == (
        len(listed) + len(tracks) if dev else math.ceil(len(listed) / 20) + math.ceil(len(tracks) / 50)
    )
    assert not_found(new) == (second.requests if dev else 0)
    assert gone_times(engine, schema.albums, set(listed)) == {T0 + HOUR}
    assert gone_times(engine, schema.tracks, tracks) == {T0 + HOUR}

    third = run(new, engine, both, T0 + 2 * HOUR, refresh=timedelta(days=7), depth=Depth.TRACK_DETAILS)
    assert third.requests == 0
    assert web_requests(new) == second.requests
    engine.dispose()


def test_a_later_fetch_clears_gone(make_emulator: Any, db_url: str) -> None:
    """An artist answered 404 has no discography any more (its albums listed nowhere else are gone,
    with their tracks); when it is back, so are its links, albums and tracks. On every backend."""
    artist = [ArtistInput(pick().ids[1], True)]  # two discography pages
    engine = open_database(db_url)
    old = make_emulator(seed=OLD)
    run(old, engine, artist, T0)
    albums = set(old.catalog.artist_album_ids(artist[0].value))
    tracks = tracks_of(old.catalog, sorted(albums))
    run(make_emulator(seed=NEW), engine, artist, T0 + HOUR)
    assert gone_times(engine, schema.artists, {artist[0].value}) == {T0 + HOUR}
    assert links(engine, artist[0].value) == set()
    assert gone_times(engine, schema.albums, albums) == {T0 + HOUR}
    assert gone_times(engine, schema.tracks, tracks) == {T0 + HOUR}

    run(old, engine, artist, T0 + 2 * HOUR)
    assert gone_times(engine, schema.artists, {artist[0].value}) == {None}
    assert links(engine, artist[0].value) == albums
    assert gone_times(engine, schema.albums, albums) == {None}
    assert gone_times(engine, schema.tracks, tracks) == {None}
    engine.dispose()


def test_a_404_on_a_track_page_or_a_discography_page_marks_the_album_or_the_artist(
    make_emulator: Any, tmp_path: Path
) -> None:
    """Pages queued before the catalog changed (as a stop leaves them) answered 404: the album of an
    ``album_tracks`` page and the artist of an ``artist_albums`` page are gone, and not asked again."""
    engine = new_engine(tmp_path / "c.db")
    old = make_emulator(seed=OLD)
    big = next(  # an artist with an album of more than 50 tracks
        a
        for a in pick().names.values()
        if any(old.catalog.album(al).total_tracks > 50 for al in old.catalog.artist_album_ids(a))
    )
    run(old, engine, [ArtistInput(big, True)], T0, depth=Depth.TRACKS)
    albums = old.catalog.artist_album_ids(big)
    album = next(a for a in albums if old.catalog.album(a).total_tracks > 50)
    new = make_emulator(seed=NEW)
    with engine.begin() as conn:  # as a stop in the middle of the album leaves it
        state.ensure_tasks(conn, "album_tracks", [f"{album}|50"], now=T0, fresh_since=T0 + HOUR)
    second = run(new, engine, [ArtistInput(big, True)], T0 + HOUR, refresh=timedelta(days=7))
    assert (second.requests, not_found(new)) == (1, 1)
    assert gone_times(engine, schema.albums, set(albums)) == {None, T0 + HOUR}
    assert gone_times(engine, schema.albums, {album}) == {T0 + HOUR}
    assert gone_times(engine, schema.tracks, tracks_of(old.catalog, [album])) == {T0 + HOUR}
    assert gone_times(engine, schema.artists, {big}) == {None}

    with engine.begin() as conn:  # as a stop in the middle of the discography leaves it
        state.ensure_tasks(
            conn, "artist_albums", [f"{big}|{','.join(GROUPS)}|10"], now=T0, fresh_since=T0 + HOUR
        )
    third = run(new, engine, [ArtistInput(big, True)], T0 + 2 * HOUR, refresh=timedelta(days=7))
    assert (third.requests, not_found(new)) == (1, 2)
    assert gone_times(engine, schema.artists, {big}) == {T0 + 2 * HOUR}
    assert links(engine, big) == set()
    assert gone_times(engine, schema.albums, set(albums) - {album}) == {T0 + 2 * HOUR}
    assert gone_times(engine, schema.tracks, tracks_of(old.catalog, albums)) == {T0 + HOUR, T0 + 2 * HOUR}
    assert run(new, engine, [ArtistInput(big, True)], T0 + 3 * HOUR, refresh=timedelta(days=7)).requests == 0
    engine.dispose()
