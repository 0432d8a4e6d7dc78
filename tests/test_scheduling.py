"""What an orchestrator runs (spotify_catalog.scheduling, under the Airflow operators): a connection's
settings and nothing of the worker's environment, a crawl's options from plain values, a crawl that
stops on purpose as a time to continue at, the same crawl going on from there without spending a
request twice, errors raised, the export of one date's partition."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from emulated import CLIENT_ID, CLIENT_SECRET, contents, web_requests
from spotify_catalog import ledger, scheduling
from spotify_catalog.crawl import Depth
from spotify_catalog.errors import AuthenticationError, UsageError
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.migrate import open_database

DAY = 86_400
MOMENT = datetime(2026, 12, 1, 6, tzinfo=UTC)


def emulator_connection(emu: Any, tmp_path: Path, **extra: Any) -> scheduling.Settings:
    host, _, port = emu.url.rpartition(":")
    return scheduling.connection_settings(
        login=CLIENT_ID,
        password=CLIENT_SECRET,
        host=host,
        port=int(port),
        extra={"ledger": f"sqlite:///{tmp_path / 'ledger.db'}", **extra},
    )


def top_artists(emu: Any, n: int = 3) -> list[str]:
    return [emu.catalog.artist(i).id for i in emu.catalog.by_popularity()[:n]]


def test_the_settings_are_the_connections_and_never_the_environments(monkeypatch):
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "from-the-environment")
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "environment-secret")
    monkeypatch.setenv("SPOTIFY_CATALOG_DAILY_BUDGET", "7")
    settings = scheduling.connection_settings(
        login="app-id",
        password="connection-secret",
        host="http://127.0.0.1",
        port=8080,
        extra={"max_wait": "5", "daily_budget": 900},
        overrides={"mode": "development", "daily_budget": None},
    )
    assert (settings.client_id, settings.client_secret.reveal()) == ("app-id", "connection-secret")
    assert settings.api_url == "http://127.0.0.1:8080/v1"
    assert settings.token_url == "http://127.0.0.1:8080/api/token"
    assert (settings.max_wait, settings.daily_budget, str(settings.mode)) == (5.0, 900, "development")
    assert "connection-secret" not in repr(settings)
    budget = scheduling.connection_settings(login="a", password="b", overrides={"daily_budget": 3})
    assert budget.daily_budget == 3
    spotify = scheduling.connection_settings(login="a", password="b")
    assert (spotify.api_url, spotify.daily_budget) == ("https://api.spotify.com/v1", None)
    assert scheduling.connection_settings(login="a", password="b", host="api.example.com/").api_url == (
        "https://api.example.com/v1"
    )
    with pytest.raises(UsageError, match=r"no client id \(login\) or no client secret \(password\)"):
        scheduling.connection_settings(login=None, password="b")
    with pytest.raises(UsageError, match=r"unknown key\(s\) in the connection's extra: client_secret"):
        scheduling.connection_settings(login="a", password="b", extra={"client_secret": "x"})


def test_crawl_options_from_the_values_an_operator_gives(tmp_path):
    listed = tmp_path / "artists.txt"
    listed.write_text("spotify:artist:3Nrfpe0tUJi4K4DXYWgMUX\n")
    options = scheduling.crawl_options(
        artists=["BTS", "https://open.spotify.com/artist/06HL4z0CvFAxyc27GXpf02"],
        artists_file=str(listed),
        include_groups="album, single",
        depth="albums",
        refresh_after="12h",
    )
    assert options.artists == (
        ArtistInput("BTS", False),
        ArtistInput("06HL4z0CvFAxyc27GXpf02", True),
        ArtistInput("3Nrfpe0tUJi4K4DXYWgMUX", True),
    )
    assert (options.include_groups, options.depth, options.refresh_after) == (
        ("album", "single"),
        Depth.ALBUMS,
        timedelta(hours=12),
    )
    with pytest.raises(UsageError, match="unknown depth"):
        scheduling.crawl_options(artists=["BTS"], depth="everything")
    with pytest.raises(UsageError, match="needs --market"):
        scheduling.crawl_options(shows=["5CfCWKI5pZ28U0uOzXkDHe"])
    with pytest.raises(UsageError) as bad:  # every bad value in one line, before any file is read
        scheduling.crawl_options(
            artists=["spotify:track:3Nrfpe0tUJi4K4DXYWgMUX"], playlists=["x"], artists_file="/nonexistent"
        )
    assert "--artist 'spotify:track:3Nrfpe0tUJi4K4DXYWgMUX': " in str(bad.value)
    assert "; --playlist 'x': " in str(bad.value)
    # the depth, when not given: a user's own data alone goes to its artists, anything more to tracks
    assert scheduling.crawl_options(me="alice").depth == Depth.ARTISTS
    assert scheduling.crawl_options(me="alice", artists=["BTS"]).depth == Depth.TRACKS


def test_a_quota_stop_is_a_time_and_the_same_crawl_goes_on_from_there(make_emulator, tmp_path):
    """The quota spent: a :class:`Stop` at the time the 429 gave; asked again before it, nothing is
    sent; at that time the crawl goes on, and the database is one uninterrupted crawl's, with the
    requests of one crawl."""
    whole = make_emulator()
    options = scheduling.crawl_options(artists=top_artists(whole))
    one_go = open_database(f"sqlite:///{tmp_path / 'one-go.db'}")
    done = scheduling.crawl(str(one_go.url), emulator_connection(whole, tmp_path), options)
    assert not isinstance(done, scheduling.Stop)
    assert done.status == "done"

    emu = make_emulator(quota=40)
    settings, db_url = emulator_connection(emu, tmp_path), f"sqlite:///{tmp_path / 'catalog.db'}"
    before = datetime.now(UTC)
    stop = scheduling.crawl(db_url, settings, options)
    assert isinstance(stop, scheduling.Stop)
    assert stop.message.startswith("quota bucket parked (Spotify answered 429 QUOTA_EXCEEDED)")
    assert before + timedelta(seconds=DAY - 60) < stop.retry_at <= datetime.now(UTC) + timedelta(seconds=DAY)
    assert scheduling.describe_stop(stop).endswith(f"deferred until {stop.retry_at:%Y-%m-%d %H:%M:%S} UTC")
    spent = web_requests(emu)

    again = scheduling.crawl(db_url, settings, options)  # before the time: refused, nothing sent
    assert isinstance(again, scheduling.Stop)
    assert (again.retry_at, web_requests(emu)) == (stop.retry_at, spent)

    emu.advance(DAY)
    # the ledger frees the bucket when the blocks sent before the 429 leave its window: up to a
    # request's time in flight after Spotify's time
    later = stop.retry_at + ledger.IN_FLIGHT + timedelta(seconds=1)
    result = scheduling.crawl(db_url, settings, options, now=lambda: later)
    assert not isinstance(result, scheduling.Stop)
    assert result.status == "done"
    assert web_requests(whole) == done.requests
    assert web_requests(emu) == done.requests + 1  # the one the quota refused, sent again
    engine = sa.create_engine(db_url)
    assert contents(engine, emu.url) == contents(one_go, whole.url)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(schema.runs.c.status, schema.runs.c.command)).all()
    assert runs == [("stopped", "spotify-catalog crawl"), ("done", "spotify-catalog crawl")]
    engine.dispose()
    one_go.dispose()


def test_a_stop_without_a_time_waits_the_untimed_wait(emulator, tmp_path):
    """Another crawl writing into the SQLite file: exit 75 without a time, a stop of ten minutes."""
    db_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = open_database(db_url)
    state.start_run(engine, command="spotify-catalog crawl (another)", now=MOMENT)
    engine.dispose()
    options = scheduling.crawl_options(artists=top_artists(emulator))
    stop = scheduling.crawl(db_url, emulator_connection(emulator, tmp_path), options, now=lambda: MOMENT)
    assert isinstance(stop, scheduling.Stop)
    assert stop.message.startswith("another crawl is writing into this SQLite database")
    assert stop.retry_at == MOMENT + scheduling.UNTIMED_WAIT
    assert web_requests(emulator) == 0


def test_errors_are_raised_with_their_exit_code(emulator, tmp_path):
    options = scheduling.crawl_options(artists=top_artists(emulator))
    host, _, port = emulator.url.rpartition(":")
    wrong = scheduling.connection_settings(
        login=CLIENT_ID, password="not-the-secret", host=host, port=int(port)
    )
    with pytest.raises(AuthenticationError) as raised:
        scheduling.crawl(f"sqlite:///{tmp_path / 'catalog.db'}", wrong, options)
    assert raised.value.exit_code == 1
    assert "not-the-secret" not in str(raised.value)
    top = scheduling.crawl_options(artists=top_artists(emulator), top_tracks=True)
    development = emulator_connection(emulator, tmp_path, mode="development")
    with pytest.raises(UsageError) as usage:
        scheduling.crawl(f"sqlite:///{tmp_path / 'never.db'}", development, top)
    assert usage.value.exit_code == 2
    assert not (tmp_path / "never.db").exists()  # refused before the database is opened


def test_the_export_writes_the_partition_of_the_date_given(emulator, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    options = scheduling.crawl_options(artists=top_artists(emulator, 1), depth="albums")
    scheduling.crawl(db_url, emulator_connection(emulator, tmp_path), options)
    day = scheduling.snapshot_date("2026-11-30")
    written = scheduling.export_lake(db_url, str(tmp_path / "lake"), day, tables=["artists", "albums"])
    assert {(item.table, item.rows > 0) for item in written} == {("artists", True), ("albums", True)}
    assert sorted(p.name for p in (tmp_path / "lake" / "artists").iterdir()) == ["dt=2026-11-30"]
    assert scheduling.snapshot_date(date(2026, 1, 2)) == date(2026, 1, 2)
    with pytest.raises(UsageError, match="is not a date YYYY-MM-DD"):
        scheduling.snapshot_date("2026-13-01")
