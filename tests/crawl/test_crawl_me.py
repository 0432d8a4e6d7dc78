"""``crawl --me``: a user's own data collected against the emulator's test users, with the fewest
requests, the same on every backend; the listening history collected exactly once, its gaps said."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from emulated import contents, differences, emulator_settings, stored_login, web_requests
from spotify_catalog import transform
from spotify_catalog.crawl import Crawler, CrawlOptions, CrawlResult, Depth
from spotify_catalog.crawl import me as me_crawl
from spotify_catalog.emulator import EmulatorConfig, serve_in_thread
from spotify_catalog.emulator.users import KEPT_PLAYS, iso
from spotify_catalog.errors import LoginRequired, ScopeMissing, Stopped, UserNotRegistered
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.settings import Secret
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database
from spotify_catalog.users import LoginStore, user_client

USERS = ("alice", "bob", "carol")
START = 1_800_000_000.0  # 2027-01-15 08:00 UTC: the emulator's clock at the first crawl
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def start_emulator(clock: Clock, **config: Any) -> Any:
    return serve_in_thread(EmulatorConfig(artists=60, users=USERS, **config), clock=clock)


@pytest.fixture
def emu(clock: Clock) -> Iterator[Any]:
    with start_emulator(clock) as running:
        yield running


def store_login(emu: Any, directory: Path, user: str = "alice", scopes: Any = None) -> LoginStore:
    """A login of ``user`` stored in ``directory``."""
    store = LoginStore(directory)
    stored_login(emu, store, user, scopes)
    return store


def crawl_me(
    emu: Any,
    engine: sa.Engine,
    store: LoginStore,
    clock: Clock,
    *,
    user: str = "alice",
    budget: int | None = None,
    **options: Any,
) -> CrawlResult:
    login = store.load(user)
    opts = CrawlOptions(me=login.user_id, depth=options.pop("depth", Depth.ARTISTS), **options)
    moment = datetime.fromtimestamp(clock.now, UTC)
    with user_client(user, emulator_settings(emu), store=store, request_budget=budget) as client:
        return Crawler(engine, client, opts, now=lambda: moment, command="test").run()


def rows(engine: sa.Engine, table: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(*(table.c[c] for c in columns))))


def spent(emu: Any, before: dict[str, int]) -> dict[str, int]:
    """Requests per route since ``before`` (token requests left out)."""
    now = emu.stats()["by_route"]
    return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0) and "token" not in k}


def stored_plays(engine: sa.Engine, user_id: str) -> list[tuple[datetime, str]]:
    p = schema.plays
    with engine.connect() as conn:
        query = sa.select(p.c.played_at, p.c.track_id).where(p.c.user_id == user_id).order_by(p.c.played_at)
        return [(t, track) for t, track in conn.execute(query)]


def expected_plays(emu: Any, user: str, first: float, last: float) -> list[tuple[datetime, str]]:
    """The emulator's history as a collector that ran at ``first`` and then at ``last`` without a
    gap has it: the 50 plays Spotify kept at ``first``, then every play until ``last``."""
    person = emu.users.get(user)
    plays = [*person.recent_plays(first), *person.plays(first, last)]
    return sorted({(datetime.fromtimestamp(p.played_at_ms / 1000, UTC), p.track.id) for p in plays})


def _pages(count: int) -> int:
    return max(1, -(-count // 50))


def first_run_requests(emu: Any, user: str) -> int:
    """docs/crawl.md's count of a first ``crawl --me`` (depth artists), from the emulator's truth."""
    person = emu.users.get(user)
    library = person.library
    saved = (library.saved_tracks, library.saved_albums, library.saved_shows, library.saved_episodes)
    listed = emu.users.playlists_of(person)
    readable = [p for p in listed if emu.users.may_read_items(person, p)]
    items = sum(1 + -(-max(0, p.total_items - 100) // 50) for p in readable)
    lists = sum(_pages(len(s)) for s in saved) + _pages(len(library.followed_artists)) + _pages(len(listed))
    return 1 + lists + 6 + 1 + items


# ------------------------------------------------------------------------------ what is collected


def test_a_development_mode_app_collects_everything_and_a_rerun_spends_only_what_can_change(
    emu: Any, clock: Clock, tmp_path: Path
) -> None:
    store = store_login(emu, tmp_path / "config")
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    alice = emu.users.get("alice")
    library = alice.library

    result = crawl_me(emu, engine, store, clock)
    assert result.status == "done"
    assert result.api_mode == "development"
    assert result.requests == first_run_requests(emu, "alice")
    assert rows(engine, schema.users, "id") == [(alice.id,)]
    assert rows(engine, schema.saved_tracks, "track_id") == sorted((t.id,) for t, _ in library.saved_tracks)
    assert rows(engine, schema.saved_albums, "album_id") == sorted((a.id,) for a, _ in library.saved_albums)
    assert len(rows(engine, schema.saved_shows, "show_id")) == len(library.saved_shows)
    assert len(rows(engine, schema.saved_episodes, "episode_id")) == len(library.saved_episodes)
    followed = sorted((a.id,) for a in library.followed_artists)
    assert rows(engine, schema.followed_artists, "artist_id") == followed
    listed = emu.users.playlists_of(alice)
    assert len(rows(engine, schema.user_playlists, "playlist_id")) == len(listed)
    # the items of the playlists she owns or collaborates on, the metadata only of the others
    readable = {p.id for p in listed if emu.users.may_read_items(alice, p)}
    with_items = {r[0] for r in rows(engine, schema.playlist_items, "playlist_id")}
    assert with_items == readable
    assert not {r[0] for r in rows(engine, schema.playlists, "id")} ^ {p.id for p in listed}
    assert emu.stats()["by_status"].get("403", 0) == 0  # no 403 spent on a playlist it cannot read
    by_route = emu.stats()["by_route"]
    assert by_route["GET /v1/playlists/{id}"] == len(readable)  # nor any request for the others
    top = rows(engine, schema.top_items, "item_type", "time_range")
    assert {(t, r) for t, r in top} == {(t, r) for t in ("artist", "track") for r in me_crawl.TIME_RANGES}
    assert stored_plays(engine, alice.id) == expected_plays(emu, "alice", clock.now, clock.now)
    assert len(stored_plays(engine, alice.id)) == KEPT_PLAYS
    # every saved track is a full catalog row
    t = schema.tracks
    with engine.connect() as conn:
        saved = [tr.id for tr, _ in library.saved_tracks]
        details = set(conn.execute(sa.select(t.c.detail).where(t.c.id.in_(saved))).scalars())
    assert details == {"full"}

    before_db, before = contents(engine), dict(emu.stats()["by_route"])
    again = crawl_me(emu, engine, store, clock)
    assert again.status == "done"
    pages = {"GET /v1/me/following": -(-len(library.followed_artists) // 50)}
    pages["GET /v1/me/playlists"] = -(-len(listed) // 50)
    assert spent(emu, before) == {
        "GET /v1/me": 1,
        "GET /v1/me/tracks": 1,
        "GET /v1/me/albums": 1,
        "GET /v1/me/shows": 1,
        "GET /v1/me/episodes": 1,
        "GET /v1/me/player/recently-played": 1,
        **pages,
    }
    assert not differences(contents(engine), before_db)
    engine.dispose()


def test_an_extended_app_collects_the_items_of_every_playlist(clock: Clock, tmp_path: Path) -> None:
    with start_emulator(clock, profile="extended") as emu:
        store = store_login(emu, tmp_path / "config", "bob")
        engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
        assert crawl_me(emu, engine, store, clock, user="bob").api_mode == "extended"
        listed = {p.id for p in emu.users.playlists_of(emu.users.get("bob"))}
        assert {r[0] for r in rows(engine, schema.playlist_items, "playlist_id")} == listed
        assert rows(engine, schema.users, "followers") != [(None,)]
        engine.dispose()


def test_the_same_database_on_every_backend(
    emu: Any, clock: Clock, tmp_path: Path, postgres_url: str, mysql_url: str
) -> None:
    store = store_login(emu, tmp_path / "config")
    got = {}
    for url in (f"sqlite:///{tmp_path / 'me.db'}", postgres_url, mysql_url):
        engine = open_database(url)
        clock.now = START
        assert crawl_me(emu, engine, store, clock, depth=Depth.ALBUMS).status == "done"
        clock.now += 2 * HOUR  # a rerun reads the stored lists and plays back, each backend its way
        before = dict(emu.stats()["by_route"])
        assert crawl_me(emu, engine, store, clock, depth=Depth.ALBUMS).status == "done"
        assert spent(emu, before)["GET /v1/me/tracks"] == 1, engine.dialect.name
        got[engine.dialect.name] = contents(engine)
        engine.dispose()
    assert got["sqlite"]["plays"]
    assert got["sqlite"]["artist_albums"]
    for name in ("postgresql", "mysql"):
        diff = differences(got[name], got["sqlite"])
        assert not diff, "\n".join(diff)


def test_a_missing_scope_is_one_line_before_any_request(emu: Any, clock: Clock, tmp_path: Path) -> None:
    store = store_login(emu, tmp_path / "config", scopes=("user-library-read", "playlist-read-private"))
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    before = web_requests(emu)
    with pytest.raises(ScopeMissing, match=r"user-follow-read.*auth login"):
        crawl_me(emu, engine, store, clock)
    assert web_requests(emu) == before
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.runs)).scalar() == 0
    engine.dispose()


# ------------------------------------------------------------------------------ the history


def test_every_play_once_through_twelve_runs_two_hours_apart(emu: Any, clock: Clock, tmp_path: Path) -> None:
    store = store_login(emu, tmp_path / "config")
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    user_id = emu.users.get("alice").id
    first = clock.now
    crawl_me(emu, engine, store, clock)
    for _ in range(12):
        clock.now += 2 * HOUR
        before = dict(emu.stats()["by_route"])
        assert crawl_me(emu, engine, store, clock).status == "done"
        assert spent(emu, before)["GET /v1/me/player/recently-played"] == 1
    want = expected_plays(emu, "alice", first, clock.now)
    assert stored_plays(engine, user_id) == want
    assert len(want) > KEPT_PLAYS + 12 * 10
    with engine.connect() as conn:
        assert me_crawl.describe_gaps(conn, [user_id]) == {}
    engine.dispose()


def test_a_30_hour_gap_is_said_and_kept(
    emu: Any, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_login(emu, tmp_path / "config")
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    user_id = emu.users.get("alice").id
    crawl_me(emu, engine, store, clock)
    newest = stored_plays(engine, user_id)[-1][0]
    clock.now += 30 * HOUR
    caplog.set_level(logging.WARNING)
    assert crawl_me(emu, engine, store, clock).status == "done"
    assert "plays may have been missed between" in caplog.text
    oldest_new = min(t for t, _ in stored_plays(engine, user_id) if t > newest)
    with engine.connect() as conn:
        assert me_crawl.describe_gaps(conn, [user_id]) == {
            user_id: [[newest.isoformat(), oldest_new.isoformat()]]
        }
    caplog.clear()
    clock.now += 2 * HOUR  # back on schedule: no new gap
    crawl_me(emu, engine, store, clock)
    assert "missed" not in caplog.text
    engine.dispose()


def _saved_tracks(emu: Any, change: Any) -> None:
    """Change alice's saved tracks in the emulator (``change``: the list, newest first -> the new one)."""
    alice = emu.users.get("alice")
    library = alice.library
    alice.__dict__["library"] = dataclasses.replace(library, saved_tracks=tuple(change(library.saved_tracks)))


def test_a_saved_list_grown_on_top_costs_one_request_and_any_other_change_all_its_pages(
    emu: Any, clock: Clock, tmp_path: Path
) -> None:
    store = store_login(emu, tmp_path / "config")
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    crawl_me(emu, engine, store, clock)
    alice = emu.users.get("alice")
    saved = [t for t, _ in alice.library.saved_tracks]
    assert len(saved) > 50  # two pages
    other = next(t for p in alice.library.own_playlists for t in p.tracks if t not in saved)
    newest = transform.parse_time(alice.library.saved_tracks[0][1])
    assert newest is not None
    added = iso(newest + timedelta(days=1))
    _saved_tracks(emu, lambda tracks: [(other, added), *tracks])
    before = dict(emu.stats()["by_route"])
    crawl_me(emu, engine, store, clock)
    assert spent(emu, before)["GET /v1/me/tracks"] == 1
    want = sorted((t.id, transform.parse_time(a)) for t, a in alice.library.saved_tracks)
    assert rows(engine, schema.saved_tracks, "track_id", "added_at") == want

    _saved_tracks(emu, lambda tracks: [*tracks[:-1]])  # the oldest one removed
    before = dict(emu.stats()["by_route"])
    crawl_me(emu, engine, store, clock)
    assert spent(emu, before)["GET /v1/me/tracks"] == 2
    want = sorted((t.id, transform.parse_time(a)) for t, a in alice.library.saved_tracks)
    assert rows(engine, schema.saved_tracks, "track_id", "added_at") == want
    engine.dispose()


def test_a_refused_login_is_one_line_and_leaves_the_database_and_the_login_as_they_were(
    emu: Any, clock: Clock, tmp_path: Path
) -> None:
    store = store_login(emu, tmp_path / "config")
    login = store.load("alice")
    store.save(dataclasses.replace(login, refresh_token=Secret("revoked-or-expired")))
    saved = store.path("alice").read_bytes()
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    before = web_requests(emu)
    with pytest.raises(LoginRequired, match=r"log in again with spotify-catalog auth login --user alice"):
        crawl_me(emu, engine, store, clock)
    assert web_requests(emu) == before
    assert store.path("alice").read_bytes() == saved
    with engine.connect() as conn:
        for table in (schema.runs, schema.tasks):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    engine.dispose()


def test_a_user_the_app_does_not_have_ends_the_run_with_one_line(clock: Clock, tmp_path: Path) -> None:
    users = ("alice", "bob", "carol", "dave", "erin", "frank")  # Development Mode: five users an app
    with serve_in_thread(EmulatorConfig(artists=60, users=users), clock=clock) as emu:
        store = store_login(emu, tmp_path / "config", "frank")  # then removed from the app, say
        store.save(dataclasses.replace(store.load("frank"), user_id=emu.users.get("frank").id))
        engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
        before = web_requests(emu)
        with pytest.raises(UserNotRegistered, match="not one of this app's users"):
            crawl_me(emu, engine, store, clock, user="frank")
        assert web_requests(emu) == before + 1  # GET /me, and nothing after it
        with engine.connect() as conn:
            run = conn.execute(sa.select(schema.runs.c.status, schema.runs.c.reason)).one()
        assert run.status == "failed"
        assert "developer.spotify.com/dashboard" in run.reason
        assert rows(engine, schema.users, "id") == []
        engine.dispose()


def test_runs_stopped_by_a_request_budget_end_with_the_uninterrupted_crawls_database(
    emu: Any, clock: Clock, tmp_path: Path
) -> None:
    store = store_login(emu, tmp_path / "config")
    whole = open_database(f"sqlite:///{tmp_path / 'whole.db'}")
    crawl_me(emu, whole, store, clock, depth=Depth.ALBUMS)
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    runs = 0
    while True:
        runs += 1
        assert runs < 200
        try:
            if crawl_me(emu, engine, store, clock, budget=4, depth=Depth.ALBUMS).status == "done":
                break
        except Stopped:
            continue
    assert runs > 5
    diff = differences(contents(engine), contents(whole))
    assert not diff, "\n".join(diff)
    engine.dispose()
    whole.dispose()


def test_followed_artists_are_read_page_by_page_with_their_cursor(
    emu: Any, clock: Clock, tmp_path: Path
) -> None:
    alice = emu.users.get("alice")
    everyone = tuple(emu.catalog.artist(i) for i in range(emu.catalog.size))
    assert len(everyone) > 50
    alice.__dict__["library"] = dataclasses.replace(alice.library, followed_artists=everyone)
    store = store_login(emu, tmp_path / "config")
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    crawl_me(emu, engine, store, clock)
    assert emu.stats()["by_route"]["GET /v1/me/following"] == 2
    assert rows(engine, schema.followed_artists, "artist_id") == sorted((a.id,) for a in everyone)
    engine.dispose()


def test_with_the_catalog_inputs_in_one_run(emu: Any, clock: Clock, tmp_path: Path) -> None:
    store = store_login(emu, tmp_path / "config")
    engine = open_database(f"sqlite:///{tmp_path / 'me.db'}")
    other = emu.catalog.artist_ids()[-1]
    playlist = emu.catalog.playlists[0].id
    result = crawl_me(emu, engine, store, clock, artists=(ArtistInput(other, True),), playlists=(playlist,))
    assert result.status == "done"
    assert (other,) in rows(engine, schema.artists, "id")
    assert (playlist,) in rows(engine, schema.playlists, "id")
    assert rows(engine, schema.users, "id") == [(emu.users.get("alice").id,)]
    engine.dispose()
