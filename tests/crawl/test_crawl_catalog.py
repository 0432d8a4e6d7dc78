"""Top tracks, playlists, shows and audiobooks in the crawl: the fewest requests (docs/crawl.md), a rerun
makes none, a stop loses nothing, the same tables on every backend, the export reads them back."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from crawl_helpers import T0, Extras, crawl, extras, minimum_requests, new_engine, pick, top_track_ids
from test_crawl_cli import run

from emulated import contents, differences, emulator_settings, wait_for_requests, web_requests
from spotify_catalog import export as lake_export
from spotify_catalog import plan as plan_lib
from spotify_catalog import transform
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Depth, catalog, response_problem
from spotify_catalog.crawl.catalog import Playlist, handle_playlist
from spotify_catalog.crawl.units import make_unit
from spotify_catalog.errors import InvalidResponseError, Stopped, UsageError
from spotify_catalog.inputs import ArtistInput, parse_spotify_id, read_ids_file
from spotify_catalog.settings import ApiMode
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("SPOTIFY_CATALOG_MODE", raising=False)


def _count(engine: sa.Engine, table: sa.Table, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


@pytest.mark.parametrize("depth", [Depth.ARTISTS, Depth.TRACK_DETAILS], ids=lambda d: d.label)
@pytest.mark.parametrize("profile", ["development", "extended"])
def test_request_count_is_the_minimum(make_emulator: Any, tmp_path: Path, profile: str, depth: Depth) -> None:
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    more = extras(emu.catalog, top_tracks=profile == "extended")
    names, ids = pick().names, pick().ids
    result = crawl(emu, engine, mode=profile, depth=depth, workers=4, more=more)
    expected = minimum_requests(emu.catalog, names, ids, mode=profile, depth=depth, more=more)
    assert result.status == "done"
    assert web_requests(emu) == result.requests == expected

    cat = emu.catalog
    shows = [cat.lookup(s) for s in more.shows]
    books = [cat.lookup(b) for b in more.audiobooks]
    lists = [cat.lookup(p) for p in more.playlists]
    assert _count(engine, schema.shows) == len(shows)
    assert _count(engine, schema.episodes) == sum(s.total_episodes for s in shows)
    assert _count(engine, schema.audiobooks) == len(books)
    assert _count(engine, schema.chapters) == sum(b.total_chapters for b in books)
    assert _count(engine, schema.playlists) == len(lists)
    items = sum(p.total_items for p in lists) if profile == "extended" else 0
    assert _count(engine, schema.playlist_items) == items
    with engine.connect() as conn:
        listed = conn.execute(
            sa.select(schema.playlist_items.c.track_id)
            .where(schema.playlist_items.c.playlist_id == lists[0].id)
            .order_by(schema.playlist_items.c.position)
        ).scalars()
        if profile == "extended":
            assert list(listed) == [t.id for t in cat.playlist_items(lists[0].index)]
        top = conn.execute(
            sa.select(schema.artist_top_tracks.c.track_id)
            .where(schema.artist_top_tracks.c.artist_id == ids[0])
            .order_by(schema.artist_top_tracks.c.position)
        ).scalars()
        assert list(top) == (top_track_ids(cat, ids[0]) if profile == "extended" else [])
        episodes = conn.execute(
            sa.select(schema.episodes.c.id).where(schema.episodes.c.show_id == shows[0].id)
        ).scalars()
        assert set(episodes) == {e.id for e in cat.episodes_of(shows[0].index)}

    before = web_requests(emu)
    again = crawl(emu, engine, mode=profile, depth=depth, workers=4, more=more, now=T0 + timedelta(days=6))
    assert again.requests == 0
    assert web_requests(emu) == before
    engine.dispose()


def test_top_tracks_market_and_snapshot_date(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="extended")
    engine = new_engine(tmp_path / "c.db")
    artist = pick().ids[0]
    more = Extras(top_tracks=True)
    crawl(emu, engine, [ArtistInput(artist, True)], mode="extended", depth=Depth.ARTISTS, more=more)
    crawl(
        emu, engine, [ArtistInput(artist, True)], mode="extended", depth=Depth.ARTISTS, more=more, market="JP"
    )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(schema.artist_top_tracks.c.market, schema.artist_top_tracks.c.snapshot_date)
            .distinct()
            .order_by(schema.artist_top_tracks.c.market)
        ).all()
        details = set(conn.execute(sa.select(schema.tracks.c.detail)).scalars())
    assert [tuple(r) for r in rows] == [("JP", date(2026, 11, 25)), ("US", date(2026, 11, 25))]
    assert details == {"full"}
    engine.dispose()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_top_tracks_in_development_mode_given_is_refused_before_any_request(
    emulator: Any, tmp_path: Path, how: str
) -> None:
    given = ["--mode", "development"] if how == "option" else []
    env = {"SPOTIFY_CATALOG_MODE": "development"} if how == "environment" else {}
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = run(emulator, "crawl", "--db", url, "--artist", "BTS", "--with", "top-tracks", *given, env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert "Extended Quota Mode" in lines[0]
    assert emulator.stats()["requests"] == 0
    assert not (tmp_path / "c.db").exists()


def test_top_tracks_in_auto_mode_are_skipped_once_development_is_known(
    make_emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    names, ids = pick().names, pick().ids
    with caplog.at_level(logging.WARNING):
        result = crawl(emu, engine, mode=None, depth=Depth.ARTISTS, more=Extras(top_tracks=True))
    assert result.skipped == ["top-tracks"]
    assert result.requests == minimum_requests(
        emu.catalog, names, ids, mode="development", depth=Depth.ARTISTS
    )
    assert emu.stats()["by_route"].get("GET /v1/artists/{id}/top-tracks", 0) == 0
    assert sum("top tracks skipped" in r.getMessage() for r in caplog.records) == 1
    engine.dispose()


def test_a_playlist_whose_snapshot_did_not_change_costs_one_request(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="extended")
    engine = new_engine(tmp_path / "c.db")
    more = Extras(playlists=extras(emu.catalog).playlists)
    first = crawl(emu, engine, [], mode="extended", more=more)
    assert first.requests == 1 + 1 + 1 + 1  # the one of 128 items: 100 with the playlist, a page of 50
    later = T0 + timedelta(hours=1)
    again = crawl(emu, engine, [], mode="extended", more=more, refresh_after=timedelta(0), now=later)
    assert again.requests == 3
    # the big playlist changes: its items are fetched again, and replaced
    big = emu.catalog.lookup(more.playlists[0])
    emu.catalog.playlists[big.index] = dataclasses.replace(big, snapshot_id="changed", total_items=40)
    emu.catalog.playlist_items.cache_clear()
    third = crawl(
        emu,
        engine,
        [],
        mode="extended",
        more=more,
        refresh_after=timedelta(0),
        now=later + timedelta(hours=1),
    )
    assert third.requests == 3
    assert _count(engine, schema.playlist_items, schema.playlist_items.c.playlist_id == big.id) == 40
    with engine.connect() as conn:
        snap = conn.execute(
            sa.select(schema.playlists.c.items_snapshot_id).where(schema.playlists.c.id == big.id)
        )
        assert snap.scalar_one() == "changed"
    engine.dispose()


def test_development_mode_stores_playlist_metadata_and_says_once_items_need_extended(
    make_emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    more = Extras(playlists=extras(emu.catalog).playlists)
    with caplog.at_level(logging.WARNING):
        result = crawl(emu, engine, [], mode=None, more=more)
    assert result.status == "done"
    assert result.requests == 3
    warnings = [r.getMessage() for r in caplog.records if "Extended Quota Mode" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("3 playlist(s)")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.playlists).order_by(schema.playlists.c.id)).mappings().all()
    assert len(rows) == 3
    for row in rows:
        playlist = emu.catalog.lookup(row["id"])
        assert (row["name"], row["owner_id"], row["followers"]) == (
            playlist.name,
            playlist.owner_id,
            playlist.followers,
        )
        assert row["snapshot_id"] == playlist.snapshot_id
        assert row["items_snapshot_id"] is None
    assert _count(engine, schema.playlist_items) == 0
    engine.dispose()


def test_local_files_and_removed_tracks_are_kept_as_items() -> None:
    track = {"id": "t" * 22, "type": "track", "name": "x", "uri": "spotify:track:" + "t" * 22}
    episode = {"id": "e" * 22, "type": "episode", "name": "y", "uri": "spotify:episode:" + "e" * 22}
    local = {"id": None, "type": "track", "is_local": True, "name": "z", "uri": "spotify:local:a:b:z:120"}
    entries = [
        {"added_at": "2025-01-02T03:04:05Z", "added_by": {"id": "u"}, "is_local": False, "item": track},
        {"added_at": None, "added_by": None, "is_local": True, "track": local},
        {"added_at": "2025-01-02T03:04:05Z", "added_by": {"id": "u"}, "is_local": False, "track": None},
        {"added_at": "2025-01-02T03:04:05Z", "added_by": {"id": "u"}, "is_local": False, "item": episode},
    ]
    meta = {"id": "p" * 22, "type": "playlist", "snapshot_id": "s1", "items": {"items": entries, "total": 4}}
    rows = transform.Rows()
    outcome = handle_playlist(["p" * 22], Playlist(meta, [meta["items"]]), rows, T0)
    assert outcome.done == ["p" * 22]
    assert outcome.also_done == [("track", ["t" * 22])]
    items = rows.children["playlist_items"]["p" * 22]
    assert [
        (i["position"], i["item_type"], i["track_id"], i["episode_id"], i["is_local"]) for i in items
    ] == [
        (0, "track", "t" * 22, None, False),
        (1, "track", None, None, True),
        (2, None, None, None, False),
        (3, "episode", None, "e" * 22, False),
    ]
    assert items[0]["added_at"] == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert items[1]["local_uri"] == "spotify:local:a:b:z:120"
    assert [r["id"] for r in rows.upserts["episodes"]] == ["e" * 22]


def _page(items: list[Any], *, offset: int = 0, limit: int = 50, total: int | None = None) -> dict[str, Any]:
    """A paging object as Spotify sends it."""
    total = offset + len(items) if total is None else total
    return {"href": "h", "items": items, "limit": limit, "next": None, "offset": offset, "total": total}


def _track(n: int) -> dict[str, Any]:
    return {"id": f"{n:022d}", "type": "track", "name": f"t{n}", "uri": f"spotify:track:{n:022d}"}


def _entry(obj: Any) -> dict[str, Any]:
    return {"added_at": None, "added_by": {"id": "u", "type": "user"}, "is_local": False, "item": obj}


def test_local_files_and_removed_tracks_are_not_an_incomplete_response() -> None:
    local = {"id": None, "type": "track", "is_local": True, "uri": "spotify:local:a:b:z:120"}
    page = _page([{"is_local": True, "track": local}, {"is_local": False, "track": None}, None])
    meta = {"id": "p" * 22, "type": "playlist", "snapshot_id": "s", "items": page}
    assert response_problem("playlist", Playlist(meta, [page])) is None
    assert (
        response_problem("playlist", Playlist(meta, [{"items": [], "limit": 50}]))
        == "page without items or total"
    )
    assert response_problem("playlist", Playlist({"name": "x"})) == "a playlist without an id"


def _second(*entries: Any, **fields: Any) -> dict[str, Any]:
    """The second page of a playlist of 3 items whose first page holds 2."""
    return _page(list(entries), **{"offset": 2, "total": 3, **fields})


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        (_second(_entry(_track(2))), None),
        (_second(_entry({"type": "track", "name": "x"})), "a playlist track without an id"),
        (_second({**_entry(_track(2)), "added_by": {"type": "user"}}),
         "a playlist item added by a user without an id"),
        (_second(_entry("x")), "a playlist item whose track is not an object"),
        (_second(None, _entry(_track(2))), "page with items past its total (2 + 2 > 3)"),
        (_second(*[_entry(_track(2))] * 3, limit=2, total=9), "page of 3 items, more than its limit 2"),
        (_second(_entry(_track(2)), offset=0), "page at offset 0 answered for offset 2"),
        (_second(_entry(_track(2)), limit=0), "page without its offset or limit"),
    ],
)  # fmt: skip
def test_an_incomplete_playlist_page_is_refused(second: dict[str, Any], problem: str | None) -> None:
    first = _page([_entry(_track(0)), _entry(_track(1))], limit=2, total=3)
    meta = {"id": "p" * 22, "type": "playlist", "snapshot_id": "s", "items": first}
    assert response_problem("playlist", Playlist(meta, [first, second])) == problem


def test_null_items_keep_their_place_and_shift_nothing() -> None:
    """A removed track (``null``) is an item at its page's offset + index; a short page (fewer items
    than its limit) leaves a gap, the next page still starts at offset + limit. A ``null`` episode
    stores nothing and moves no page."""
    first = _page([_entry(_track(0)), None, _entry(None)], limit=4, total=7)
    meta = {"id": "p" * 22, "type": "playlist", "snapshot_id": "s", "items": first}
    assert catalog.more_pages(meta, "items", 50) == [4]
    second = _page([_entry(_track(4)), None, _entry(_track(6))], offset=4, total=7)
    assert response_problem("playlist", Playlist(meta, [first, second])) is None
    rows = transform.Rows()
    handle_playlist(["p" * 22], Playlist(meta, [first, second]), rows, T0)
    items = rows.children["playlist_items"]["p" * 22]
    assert [(i["position"], i["track_id"]) for i in items] == [
        (0, _track(0)["id"]), (1, None), (2, None), (4, _track(4)["id"]), (5, None), (6, _track(6)["id"])
    ]  # fmt: skip

    episodes = [{"id": f"e{n:021d}", "type": "episode", "name": f"e{n}"} for n in range(53)]
    episodes[1] = episodes[51] = None  # type: ignore[call-overload]
    show = {"id": "s" * 22, "type": "show", "name": "s", "episodes": _page(episodes[:50], total=53)}
    pages = {f"{'s' * 22}|50": _page(episodes[50:], offset=50, total=53)}
    assert catalog.more_pages(show, "episodes", 50) == [50]
    assert response_problem("show", catalog.Paged([show], pages)) is None
    rows = transform.Rows()
    catalog.handle_shows(["s" * 22], catalog.Paged([show], pages), rows, T0)
    stored = [r["id"] for r in rows.upserts["episodes"]]
    assert sorted(stored) == sorted(e["id"] for e in episodes if e)

    chapters = _page([{"id": "c" * 22, "type": "chapter"}, None])
    book = {"id": "b" * 22, "type": "audiobook", "name": "b", "chapters": chapters}
    assert response_problem("audiobook", catalog.Paged([book])) == "a null item in a page of chapters"


@pytest.mark.parametrize("kind", ["show", "playlist"])
def test_a_first_answer_without_its_id_is_refused_before_its_further_pages(
    make_emulator: Any, kind: str
) -> None:
    emu = make_emulator(profile="extended", fault_rate=1.0, fault_kinds=("missing_field",))
    more = extras(emu.catalog)
    key = more.shows[0] if kind == "show" else more.playlists[0]
    with SpotifyClient(emulator_settings(emu, "extended")) as client:
        unit = make_unit(client, kind, [key], "US")
        with pytest.raises(InvalidResponseError, match=f"{kind} {key}: incomplete response: .*without an id"):
            unit.fetch()
    assert web_requests(emu) == 1  # not the pages after the first


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_a_budget_stop_loses_nothing_and_resumes_to_the_same_tables(
    make_emulator: Any, tmp_path: Path, profile: str
) -> None:
    emu = make_emulator(profile=profile)
    more = extras(emu.catalog, top_tracks=profile == "extended")
    artists = [ArtistInput(i, True) for i in pick().ids]
    reference = new_engine(tmp_path / "ref.db")
    crawl(emu, reference, artists, mode=profile, depth=Depth.ALBUMS, more=more)
    want = contents(reference)
    needed = web_requests(emu)

    engine = new_engine(tmp_path / "c.db")
    start, runs = web_requests(emu), 0
    while True:
        runs += 1
        assert runs < 40
        try:
            crawl(emu, engine, artists, mode=profile, depth=Depth.ALBUMS, more=more, budget=5, workers=2)
            break
        except Stopped:
            pass
    diff = differences(contents(engine), want)
    assert not diff, "\n".join(diff)
    assert runs > 2
    spent = web_requests(emu) - start
    assert needed <= spent <= needed + 5 * runs  # a unit cut by a stop is fetched again
    reference.dispose()
    engine.dispose()


def test_backends_hold_the_same_tables_and_the_lake_reads_them_back(
    make_emulator: Any, db_url: str, tmp_path: Path
) -> None:
    emu = make_emulator(profile="extended")
    more = extras(emu.catalog, top_tracks=True)
    artists = [ArtistInput(pick().ids[0], True)]
    reference = new_engine(tmp_path / "ref.db")
    crawl(emu, reference, artists, mode="extended", depth=Depth.ARTISTS, more=more)
    engine = open_database(db_url)
    try:
        crawl(emu, engine, artists, mode="extended", depth=Depth.ARTISTS, more=more)
        diff = differences(contents(engine), contents(reference))
        assert not diff, "\n".join(diff)

        lake = lake_export.open_lake(str(tmp_path / "lake"))
        exported = {
            e.table: e.rows for e in lake_export.export(engine, schema.metadata, lake, date(2026, 11, 25))
        }
        con = duckdb.connect()
        con.execute(lake_export.ddl(schema.metadata, lake.uri, "duckdb"))
        for name in (
            "artist_top_tracks",
            "playlists",
            "playlist_items",
            "shows",
            "episodes",
            "audiobooks",
            "chapters",
        ):
            table = schema.metadata.tables[name]
            assert exported[name] == _count(engine, table) > 0, name
            assert con.execute(f"SELECT count(*) FROM {name}").fetchone() == (exported[name],)
        types = con.execute(
            "SELECT DISTINCT typeof(languages), typeof(release_date) FROM episodes"
        ).fetchall()
        assert types == [("VARCHAR[]", "DATE")]  # release_date: a DATE in the lake
    finally:
        engine.dispose()
        reference.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--show", "6a1syFnDDmU5cCPwp4V8fs"], "--show needs --market"),
        (["--audiobook", "1uB1WnkXtEtGAWShPrNPZZ"], "--audiobook needs --market"),
        (["--playlist", "spotify:album:6a1syFnDDmU5cCPwp4V8fs"], "is an album, not a playlist"),
        (["--playlist", "Top Hits"], "not a Spotify playlist id, URI or URL"),
        (["--with", "top-tracks", "--playlist", "6a1syFnDDmU5cCPwp4V8fs"], "--with top-tracks needs artists"),
        (["--playlists-file", "missing.txt"], "playlists file not found"),
    ],
)
def test_bad_catalog_options_exit_2(emulator: Any, args: list[str], message: str) -> None:
    result = run(emulator, "crawl", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert emulator.stats()["requests"] == 0


def test_cli_crawls_playlists_from_a_file_and_shows(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="extended")
    more = extras(emu.catalog)
    listing = tmp_path / "playlists.txt"
    listing.write_text(
        f"# mine\nspotify:playlist:{more.playlists[1]}\nhttps://open.spotify.com/playlist/{more.playlists[2]}\n"
    )
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = run(
        emu, "crawl", "--db", url, "--mode", "extended", "--playlists-file", str(listing),
        "--show", more.shows[1], "--market", "US", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(url)
    assert _count(engine, schema.playlists) == 2
    assert _count(engine, schema.shows) == 1
    assert _count(engine, schema.artists, schema.artists.c.detail == "full") == 0
    engine.dispose()


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_plan_counts_the_new_task_kinds(make_emulator: Any, tmp_path: Path, profile: str) -> None:
    """``crawl --plan`` / ``status``: exact once the database knows the totals, every kind included."""
    emu = make_emulator(profile=profile)
    more = extras(emu.catalog, top_tracks=profile == "extended")
    artists = [ArtistInput(i, True) for i in pick().ids]
    engine = new_engine(tmp_path / "c.db")
    mode = ApiMode(profile)

    def plan(fresh_since: datetime | None) -> plan_lib.Estimate:
        wanted = plan_lib.Plan(
            tuple(artists), Depth.ARTISTS, mode=mode, fresh_since=fresh_since, market="US",
            top_tracks=more.top_tracks, playlists=more.playlists, shows=more.shows,
            audiobooks=more.audiobooks,
        )  # fmt: skip
        with engine.connect() as conn:
            return plan_lib.estimate(conn, wanted)

    before = plan(None)
    assert before.requests["show"] == len(more.shows)
    assert before.requests["playlist"] == len(more.playlists)
    result = crawl(emu, engine, artists, mode=profile, depth=Depth.ARTISTS, more=more)
    assert plan(T0).total == 0
    again = plan(T0 + timedelta(seconds=1))  # everything stale: all of it again
    assert again.exact
    extra_pages = {"show": 2, "audiobook": 1}
    assert again.requests["playlist"] == len(more.playlists)  # items stored: an unchanged snapshot costs one
    assert again.requests["show"] == len(more.shows) + extra_pages["show"]
    books = len(more.audiobooks) if profile == "development" else 1
    assert again.requests["audiobook"] == books + extra_pages["audiobook"]
    assert again.requests["top_tracks"] == (len(artists) if profile == "extended" else 0)
    assert result.requests == web_requests(emu)
    engine.dispose()


def test_the_extended_demo_collects_3_playlists_and_1_show(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = run(None, "demo", "--db", url, "--profile", "extended", "--depth", "artists")
    assert result.exit_code == 0, result.output
    assert "3 playlists and 1 show" in result.output
    summary = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.output.splitlines()
        if line.count("│") == 3
    }
    assert summary["playlists"] == "3"
    assert summary["shows"] == "1"
    assert int(summary["episodes"]) > 0
    assert int(summary["playlist_items"]) > 0


def _whole(engine: sa.Engine) -> None:
    """Every stored playlist with items has all of them; every show and audiobook all its episodes and
    chapters: a unit is one transaction."""
    p, i = schema.playlists, schema.playlist_items
    with engine.connect() as conn:
        for playlist_id, total in conn.execute(
            sa.select(p.c.id, p.c.total_items).where(p.c.items_snapshot_id.is_not(None))
        ):
            assert (
                conn.execute(sa.select(sa.func.count()).where(i.c.playlist_id == playlist_id)).scalar_one()
                == total
            )
        for table, child, parent, total in (
            (schema.shows, schema.episodes, schema.episodes.c.show_id, schema.shows.c.total_episodes),
            (
                schema.audiobooks,
                schema.chapters,
                schema.chapters.c.audiobook_id,
                schema.audiobooks.c.total_chapters,
            ),
        ):
            for entity_id, count in conn.execute(
                sa.select(table.c.id, total).where(table.c.detail == "full")
            ):
                assert (
                    conn.execute(
                        sa.select(sa.func.count()).select_from(child).where(parent == entity_id)
                    ).scalar_one()
                    == count
                )


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_same_tables(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="extended", latency_ms=30)
    more = extras(emu.catalog, top_tracks=True)
    artists = [ArtistInput(i, True) for i in pick().ids]
    reference_db = new_engine(tmp_path / "ref.db")
    today = datetime.now(UTC)  # the killed crawls write snapshots of the real day
    crawl(emu, reference_db, artists, mode="extended", depth=Depth.ARTISTS, more=more, now=today)
    reference = contents(reference_db)
    total = web_requests(emu)
    args = [a for i in pick().ids for a in ("--artist", i)]
    args += [a for x in more.playlists for a in ("--playlist", x)] + [
        a for x in more.shows for a in ("--show", x)
    ]
    args += [a for x in more.audiobooks for a in ("--audiobook", x)]
    env = {
        **os.environ,
        "SPOTIFY_CLIENT_ID": "emulator-client-id",
        "SPOTIFY_CLIENT_SECRET": "emulator-client-secret",
    }
    env.pop("SPOTIFY_CATALOG_MODE", None)
    for n, kill_after in enumerate([3, total // 2, total - 3]):
        url = f"sqlite:///{tmp_path / f'kill{n}.db'}"
        command = [
            sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
            emu.url + "/api/token", "crawl", "--db", url, "--mode", "extended", "--depth", "artists",
            "--with", "top-tracks", "--market", "US", "--quiet", *args,
        ]  # fmt: skip
        start = web_requests(emu)
        proc = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_for_requests(emu, proc, start + kill_after)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
        engine = new_engine(tmp_path / f"kill{n}.db")
        _whole(engine)
        assert contents(engine) != reference  # the kill did stop it half-way
        crawl(emu, engine, artists, mode="extended", depth=Depth.ARTISTS, more=more, now=datetime.now(UTC))
        _whole(engine)
        diff = differences(contents(engine), reference)
        assert not diff, "\n".join(diff)
        engine.dispose()
    reference_db.dispose()


def test_ids_of_other_kinds_parse_like_artists(tmp_path: Path) -> None:
    pid = "3cEYpjA9oz9GiPac4AsH4n"
    for text in (pid, f"spotify:playlist:{pid}", f"https://open.spotify.com/intl-de/playlist/{pid}?si=x"):
        assert parse_spotify_id(text, "playlist") == pid
    with pytest.raises(UsageError, match="is a show, not a playlist"):
        parse_spotify_id(f"spotify:show:{pid}", "playlist")
    with pytest.raises(UsageError, match="not a Spotify audiobook id"):
        parse_spotify_id("Dune", "audiobook")
    listing = tmp_path / "lists.csv"
    listing.write_text(f"name,playlist\nmine,{pid}\nbad,spotify:track:{pid}\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"1 bad line\(s\): line 3: .* is a track, not a playlist"):
        read_ids_file(listing, "playlist")
    listing.write_text(f"\ufeffname,playlist\nmine,{pid}\n", encoding="utf-8")
    assert read_ids_file(listing, "playlist") == [pid]


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_audiobooks_alone_learn_the_mode_from_the_first_one(
    make_emulator: Any, tmp_path: Path, profile: str
) -> None:
    """With no artist to tell the mode, the first audiobook is asked alone and its answer tells it
    (Development Mode leaves out ``publisher``): the others are then batched in Extended mode."""
    emu = make_emulator(profile=profile)
    books = tuple(b.id for b in emu.catalog.audiobooks[:5])
    engine = new_engine(tmp_path / "c.db")
    result = crawl(emu, engine, [], mode=None, more=Extras(audiobooks=books))
    pages = sum(math.ceil(max(0, emu.catalog.lookup(b).total_chapters - 50) / 50) for b in books)
    assert result.api_mode == profile
    assert result.requests == web_requests(emu) == (5 if profile == "development" else 2) + pages
    assert _count(engine, schema.chapters) == sum(emu.catalog.lookup(b).total_chapters for b in books)
    with engine.connect() as conn:
        publishers = set(conn.execute(sa.select(schema.audiobooks.c.publisher)).scalars())
    assert (publishers == {None}) == (profile == "development")
    engine.dispose()


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_an_unknown_playlist_show_or_audiobook_fails_its_task_is_warned_and_not_asked_again(
    make_emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, profile: str
) -> None:
    """Each unknown id is warned (a show's or an audiobook's 404 used to end its task failed in
    silence, only a playlist's was said)."""
    emu = make_emulator(profile=profile)
    real = extras(emu.catalog)
    unknown = "0000000000000000000000"
    more = Extras(playlists=(real.playlists[2], unknown), shows=(unknown,), audiobooks=(unknown,))
    engine = new_engine(tmp_path / "c.db")
    with caplog.at_level(logging.WARNING):
        first = crawl(emu, engine, [], mode=profile, more=more)
    assert first.status == "done"
    assert first.requests == 4
    warned = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and unknown in r.getMessage()
    ]
    assert len(warned) == 3, warned
    assert warned[0].startswith(f"playlist {unknown}: Spotify answered 404")
    assert sorted(warned[1:]) == [f"audiobook {unknown} not found", f"show {unknown} not found"]
    with engine.connect() as conn:
        failed = conn.execute(
            sa.select(schema.tasks.c.kind)
            .where(schema.tasks.c.state == "failed")
            .order_by(schema.tasks.c.kind)
        ).scalars()
        assert list(failed) == ["audiobook", "playlist", "show"]
    again = crawl(emu, engine, [], mode=profile, more=more, now=T0 + timedelta(days=1))
    assert again.requests == 0
    engine.dispose()
