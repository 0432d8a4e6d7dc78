"""What a loader reads as changed (spotify_catalog.increments, docs/dlt.md): each row with the time it
was last written, after real crawls on the three backends: a refresh of a changed catalog stopped in
the middle of a discography, then finished (tests/refresh_scenario.py); and, in Extended mode, the
dated tables (snapshots, top tracks) and a playlist whose items are now none."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import refresh_scenario as scenario
from spotify_catalog import increments
from spotify_catalog.crawl import Depth
from spotify_catalog.increments import DELETED, WRITTEN_AT
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database

MOMENT = timedelta(microseconds=1)


def read(engine: sa.Engine, since: datetime | None) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            i.name: [
                row for batch in increments.written_since(conn, i, since, batch_rows=50) for row in batch
            ]
            for i in increments.increments()
        }


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def ids(rows: list[dict[str, Any]], column: str = "id") -> set[str]:
    return {r[column] for r in rows}


@pytest.mark.slow
def test_each_row_comes_with_the_time_it_was_written_through_a_refresh(
    db_url: str, make_emulator: Any
) -> None:
    engine = open_database(db_url)
    who = scenario.artists()
    scenario.first(make_emulator, engine, who)
    everything = read(engine, None)
    for table in schema.CATALOG_TABLES:
        assert len(everything[table.name]) == count(engine, table), table.name
        assert {r[WRITTEN_AT] for r in everything[table.name]} <= {scenario.T0}, table.name
    assert all(rows == [] for rows in read(engine, scenario.T0 + MOMENT).values())
    x_albums = scenario.links(engine, who.x)

    emu = scenario.refreshed(make_emulator)
    scenario.second(emu, engine, who)  # BTS's discography half written, Y gone
    changed = read(engine, scenario.T0 + MOMENT)
    bts_links = scenario.links(engine, scenario.BTS)
    assert len(bts_links) > 151  # the old ones, and those of the pages written
    listed = changed["artist_albums"]
    assert {r["album_id"] for r in listed if r["artist_id"] == scenario.BTS} == bts_links
    assert {r[WRITTEN_AT] for r in listed} == {scenario.T1}
    assert [r for r in listed if r.get(DELETED)] == [
        {"artist_id": who.y, "album_id": "", WRITTEN_AT: scenario.T1, DELETED: True}
    ]
    y = next(r for r in changed["artists"] if r["id"] == who.y)
    assert (y["gone_at"], y[WRITTEN_AT]) == (scenario.T1, scenario.T1)
    assert who.x not in ids(changed["artists"])
    assert not ids(changed["albums"]) & x_albums
    assert {r[WRITTEN_AT] for rows in changed.values() for r in rows} == {scenario.T1}

    scenario.third(emu, engine, who)  # the rest of the discography; the old links deleted
    changed = read(engine, scenario.T1 + MOMENT)
    new_links = scenario.links(engine, scenario.BTS)
    assert len(new_links) == 176
    assert {(r["artist_id"], r["album_id"]) for r in changed["artist_albums"]} == {
        (scenario.BTS, album) for album in new_links
    }
    old = bts_links - new_links
    gone = [r for r in changed["albums"] if r["id"] in old]
    assert len(gone) == len(old) == 151
    assert {(r["gone_at"], r[WRITTEN_AT]) for r in gone} == {(scenario.T2, scenario.T2)}
    gone_tracks = [r for r in changed["tracks"] if r["album_id"] in old]
    assert gone_tracks
    assert {r["gone_at"] for r in gone_tracks} == {scenario.T2}
    assert all(len(read(engine, None)[t.name]) == count(engine, t) for t in schema.CATALOG_TABLES)
    engine.dispose()


def test_dated_tables_from_the_day_of_since_and_an_emptied_playlist(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="extended")
    engine = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    playlist = emu.catalog.playlists[0]
    more: dict[str, Any] = {"top_tracks": True, "playlists": (playlist.id,), "depth": Depth.ARTISTS}
    inputs = [ArtistInput(scenario.BTS, True)]
    assert scenario.crawl(emu, engine, inputs, scenario.T0, **more).status == "done"
    assert count(engine, schema.playlist_items) > 0
    emu.catalog.playlists[playlist.index] = dataclasses.replace(
        playlist, snapshot_id="emptied", total_items=0
    )
    emu.catalog.playlist_items.cache_clear()
    again = scenario.crawl(emu, engine, inputs, scenario.T2, refresh_after=timedelta(0), **more)
    assert again.status == "done"
    assert count(engine, schema.playlist_items) == 0

    changed = read(engine, scenario.T1)  # a load in between, on the day after the first crawl
    for name in ("artist_snapshots", "track_snapshots", "artist_top_tracks"):
        rows = changed[name]
        assert rows, name
        assert {r["snapshot_date"] for r in rows} == {scenario.T2.date()}, name  # not the first day's
        assert {r[WRITTEN_AT] for r in rows} == {scenario.T2}, name
        days = {r["snapshot_date"] for r in read(engine, None)[name]}
        assert days == {scenario.T0.date(), scenario.T2.date()}, name  # read in full: the first day's too
    assert changed["playlist_items"] == [
        {"playlist_id": playlist.id, "position": -1, WRITTEN_AT: scenario.T2, DELETED: True}
    ]
    engine.dispose()
