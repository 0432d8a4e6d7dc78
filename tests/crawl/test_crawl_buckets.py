"""Quota buckets: a ``429 QUOTA_EXCEEDED`` parks only the bucket it came from. Its tasks wait until its
Retry-After, every other task goes on, the run exits 75 naming the bucket and its time; the ledger keeps
the bucket parked for every later run and process of the account and learns its size (what it counted
in the bucket in the 24 h before the 429), which ``status`` shows."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from crawl_helpers import GROUPS, T0, Clock, minimum_requests, new_engine

from emulated import CLIENT_ID, CLIENT_SECRET, contents, differences, emulator_settings, web_requests
from spotify_catalog import ledger
from spotify_catalog.cli import main
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.errors import BucketParked
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.status import read_status
from spotify_catalog.storage import schema, state

SMALL = 30
"""The size of the artist-albums bucket; every other bucket is large."""


def _artists(catalog: Any, pages: range) -> list[str]:
    """Artists (in the catalog's order) whose discography pages in development mode (10 albums a page)
    add up to a number in ``pages``."""
    chosen, total = [], 0
    for artist_id in catalog.artist_ids():
        n = max(1, math.ceil(len(catalog.artist_album_ids(artist_id, GROUPS)) / 10))
        if total + n < pages.stop:
            chosen.append(artist_id)
            total += n
        if total in pages:
            return chosen
    raise AssertionError("no such artists in the catalog")


def _run(emu: Any, engine: sa.Engine, book: ledger.Ledger, ids: list[str], clock: Clock) -> Any:
    options = CrawlOptions(artists=tuple(ArtistInput(i, True) for i in ids), depth=Depth.TRACKS)
    budget = ledger.AccountBudget(book, CLIENT_ID, clock=clock)
    settings = emulator_settings(emu, "development")
    with SpotifyClient(settings, budget=budget, wall_clock=clock) as client:
        return Crawler(engine, client, options, now=clock, command="test").run()


def _small_albums_bucket(make_emulator: Any, clock: Clock) -> Any:
    """An emulator on ``clock`` whose artist-albums bucket holds :data:`SMALL` requests a day, the
    others 100,000."""
    return make_emulator(
        profile="development",
        quota=100_000,
        quota_buckets={"artist-albums": SMALL},
        clock=lambda: clock.now.timestamp(),
    )


def _pending(engine: sa.Engine) -> dict[str, int]:
    t = schema.tasks
    with engine.connect() as conn:
        query = sa.select(t.c.kind, sa.func.count()).where(t.c.state == state.PENDING).group_by(t.c.kind)
        return {kind: int(n) for kind, n in conn.execute(query)}


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_a_quota_429_parks_its_bucket_the_rest_goes_on_and_the_rerun_finishes(
    make_emulator: Any, tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    clock = Clock(T0)
    emu = _small_albums_bucket(make_emulator, clock)
    ids = _artists(emu.catalog, range(SMALL + 10, 2 * SMALL))  # two runs' worth of discography pages
    need = minimum_requests(emu.catalog, {}, ids, mode="development", depth=Depth.TRACKS)
    # the ledger: a SQLite file, or a PostgreSQL database (crawls on several machines share it)
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}"
        if where == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    book = ledger.Ledger(url)
    engine = new_engine(tmp_path / "c.db")
    with pytest.raises(BucketParked) as parked:
        _run(emu, engine, book, ids, clock)
    until = T0 + timedelta(hours=24)  # the emulator's Retry-After: when the 30 of T0 leave its window
    assert parked.value.parked == {"artist-albums": until}
    assert parked.value.exit_code == 75
    assert str(parked.value) == (
        "quota bucket parked (Spotify answered 429 QUOTA_EXCEEDED): artist-albums until "
        "2026-11-26 10:00:00 UTC; every other task is done"
    )
    assert emu.stats()["by_status"]["429"] == 1
    # every other task went on: the albums of the discographies fetched, and their tracks
    assert set(_pending(engine)) == {"artist_albums"}
    with engine.connect() as conn:
        done_albums = conn.execute(sa.select(sa.func.count()).select_from(schema.albums)).scalar_one()
        run = conn.execute(sa.select(schema.runs)).one()
    assert done_albums > 0
    assert (run.status, run.retry_at) == ("stopped", until)
    # the learnt size: what the ledger counted in the bucket before its 429
    settings = emulator_settings(emu, "development", ledger=book.url)
    with engine.connect() as conn:
        status = read_status(conn, now=clock.now, settings=settings).to_json()
    assert status["buckets"]["artist-albums"] == {
        "spent_24h": SMALL + 1,
        "learnt_size": SMALL,
        "parked_until": until.isoformat(),
    }
    assert status["buckets"]["albums"]["learnt_size"] is None
    # a second process of the account before that time: the ledger refuses, nothing is sent
    before = web_requests(emu)
    clock.now = until - timedelta(seconds=1)
    with pytest.raises(BucketParked):
        _run(emu, new_engine(tmp_path / "other.db"), book, ids[:1], clock)
    assert web_requests(emu) - before == 1  # its artist (another bucket), not its discography
    # once the clocks pass that time (and the ledger's minute in flight) the rerun finishes: the
    # minimum + the one 429 (the other process's artist left out)
    clock.now = until + ledger.IN_FLIGHT + timedelta(seconds=1)
    assert _run(emu, engine, book, ids, clock).status == "done"
    assert emu.stats()["by_status"]["429"] == 1
    assert web_requests(emu) - 1 == need + 1
    book.close()
    _assert_as_a_clean_crawl(make_emulator, engine, emu.url, ids, tmp_path)


def _assert_as_a_clean_crawl(
    make_emulator: Any, engine: sa.Engine, url: str, ids: list[str], tmp: Path
) -> None:
    clean_emu = make_emulator(profile="development")
    clean = new_engine(tmp / "clean.db")
    options = CrawlOptions(artists=tuple(ArtistInput(i, True) for i in ids), depth=Depth.TRACKS)
    with SpotifyClient(emulator_settings(clean_emu, "development")) as client:
        Crawler(clean, client, options, now=lambda: T0, command="clean").run()
    diff = differences(contents(engine, url), contents(clean, clean_emu.url))
    assert not diff, "\n".join(diff)
    clean.dispose()
    engine.dispose()


def test_the_learnt_size_holds_the_next_windows_without_another_429(
    make_emulator: Any, tmp_path: Path
) -> None:
    clock = Clock(T0)
    emu = _small_albums_bucket(make_emulator, clock)
    ids = _artists(emu.catalog, range(2 * SMALL + 5, 3 * SMALL))  # three windows' worth of pages
    need = minimum_requests(emu.catalog, {}, ids, mode="development", depth=Depth.TRACKS)
    book = ledger.Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    engine = new_engine(tmp_path / "c.db")
    with pytest.raises(BucketParked):
        _run(emu, engine, book, ids, clock)  # 30 pages, and the 429 of the 31st
    # the next window: 30 pages, then the ledger stops the bucket itself (its learnt size reached)
    clock.now = T0 + timedelta(hours=24) + ledger.IN_FLIGHT + timedelta(seconds=1)
    before = web_requests(emu)
    with pytest.raises(BucketParked) as full:
        _run(emu, engine, book, ids, clock)
    assert str(full.value) == (  # when the ledger's 30 of this window leave it
        "quota bucket full (as many requests in the last 24 h as Spotify let through before its 429): "
        "artist-albums until 2026-11-27 10:02:01 UTC; every other task is done"
    )
    assert emu.stats()["quota"][CLIENT_ID]["artist-albums"]["used"] == SMALL
    assert web_requests(emu) - before > SMALL  # the albums of those discographies too
    clock.now = T0 + timedelta(hours=48, minutes=3)
    assert _run(emu, engine, book, ids, clock).status == "done"
    assert emu.stats()["by_status"]["429"] == 1  # Spotify refused one request in three windows
    assert web_requests(emu) == need + 1
    book.close()
    _assert_as_a_clean_crawl(make_emulator, engine, emu.url, ids, tmp_path)


def test_the_command_line_names_the_parked_bucket_and_status_shows_its_learnt_size(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="development", quota=100_000, quota_buckets={"artist-albums": 5})
    ids = _artists(emu.catalog, range(14, 18))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    env = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}
    args = [*base, "crawl", "--db", url, "--quiet", *(arg for i in ids for arg in ("--artist", i))]
    first = CliRunner().invoke(main, args, env=env)
    assert first.exit_code == 75, first.output
    lines = [line for line in first.stderr.splitlines() if line.startswith("quota bucket")]
    assert len(lines) == 1, first.stderr
    assert "parked (Spotify answered 429 QUOTA_EXCEEDED): artist-albums until 20" in lines[0]
    assert lines[0].endswith("every other task is done")
    assert "Traceback" not in first.output
    status = CliRunner().invoke(main, ["status", "--db", url, "--format", "json"])
    data = json.loads(status.stdout)
    buckets = data["buckets"]
    assert buckets["artist-albums"]["learnt_size"] == 5
    assert buckets["artist-albums"]["parked_until"] is not None
    assert buckets["artists"] == {"spent_24h": len(ids), "learnt_size": None, "parked_until": None}
    # the days left: the discography pages left at the learnt 5 a day, the rest at the assumed 1,000
    left = data["requests_left_by_kind"]["artist_albums"]
    assert data["days_left_by"] == [
        {
            "bucket": None,
            "requests_left": data["requests_left"],
            "per_day": 1000,
            "source": "assumed",
            "days": 1,
        },
        {
            "bucket": "artist-albums",
            "requests_left": left,
            "per_day": 5,
            "source": "learnt",
            "days": -(-left // 5),
        },
    ]
    assert data["days_left"] == -(-left // 5) > 1
    learnt = f"artist-albums: {left} left at 5 a day (learnt from Spotify's 429 QUOTA_EXCEEDED)"
    text = CliRunner().invoke(main, ["status", "--db", url]).stdout
    assert f"day(s) at 1,000 a day (assumed: no daily budget set); {learnt}" in text
    assert "quota bucket artist-albums: 5 a day (learnt), 6 in the last 24 h; parked until 20" in text
    plan = CliRunner().invoke(main, [*args, "--plan", "--daily-budget", "500"], env=env).stdout
    assert "500 a day (given: --daily-budget); artist-albums: " in plan
    out = tmp_path / "report.html"
    assert CliRunner().invoke(main, ["report", "--db", url, "--out", str(out)]).exit_code == 0
    assert f"{learnt}" in out.read_text("utf-8").replace("&#39;", "'")
    # the same command again: refused before anything is sent (Spotify's time, from the run and the ledger)
    before = web_requests(emu)
    again = CliRunner().invoke(main, args, env=env)
    assert again.exit_code == 75
    assert web_requests(emu) == before
    # a one-off command of the account to another bucket goes on
    assert CliRunner().invoke(main, [*base, "get", "artist", ids[0]], env=env).exit_code == 0
    assert web_requests(emu) == before + 1


def test_a_bucket_whose_time_comes_after_its_phase_leaves_its_tasks_to_the_next_run(
    make_emulator: Any, tmp_path: Path
) -> None:
    clock = Clock(T0)
    emu = _small_albums_bucket(make_emulator, clock)
    ids = _artists(emu.catalog, range(SMALL + 10, 2 * SMALL))
    book = ledger.Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    engine = new_engine(tmp_path / "c.db")
    options = CrawlOptions(artists=tuple(ArtistInput(i, True) for i in ids), depth=Depth.TRACKS)

    def later(progress: Any) -> None:  # the albums phase outlasts the bucket's time
        if progress.phase == "albums" and progress.event == "end":
            clock.now = T0 + timedelta(hours=25)

    budget = ledger.AccountBudget(book, CLIENT_ID, clock=clock)
    with (
        SpotifyClient(emulator_settings(emu, "development"), budget=budget, wall_clock=clock) as client,
        pytest.raises(BucketParked) as parked,
    ):
        Crawler(engine, client, options, now=clock, on_progress=later).run()
    assert parked.value.parked == {"artist-albums": T0 + timedelta(hours=24)}  # passed: run again now
    assert set(_pending(engine)) == {"artist_albums"}
    assert _run(emu, engine, book, ids, clock).status == "done"
    assert emu.stats()["by_status"]["429"] == 1
    book.close()
    engine.dispose()


def test_one_off_commands_park_a_bucket_and_keep_off_it(make_emulator: Any) -> None:
    emu = make_emulator(profile="development", quota_buckets={"search": 1})
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    env = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, [*base, *args], env=env)

    assert run("search", "a", "--limit", "5").exit_code == 0
    refused = run("search", "b", "--limit", "5")  # Spotify's 429: the bucket parked in the ledger
    assert refused.exit_code == 75, refused.output
    assert emu.stats()["by_status"]["429"] == 1
    again = run("search", "c", "--limit", "5")  # the ledger's refusal: nothing sent
    assert again.exit_code == 75
    line = again.stderr.strip()
    assert line.startswith("Error: quota bucket parked (Spotify answered 429 QUOTA_EXCEEDED): search until ")
    assert line.endswith("; nothing was sent to it")
    assert "\n" not in line
    assert web_requests(emu) == 2
    assert run("get", "artist", emu.catalog.artist_ids()[3]).exit_code == 0  # another bucket answers
