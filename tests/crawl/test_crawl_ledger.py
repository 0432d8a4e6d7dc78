"""The daily budget is the account's, counted in its ledger: several crawl processes sharing a database,
or two crawls of one account into two databases, stay within it together; a stop says when the oldest
request leaves the rolling window; a killed crawl's reservation still counts; one-off commands are
counted too; ``status``, ``crawl --plan`` and ``report`` read the account's use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from crawl_helpers import T0, Clock, minimum_requests, new_engine, pick

from emulated import (
    CLIENT_ID,
    CLIENT_SECRET,
    contents,
    differences,
    emulator_settings,
    wait_for_requests,
    web_requests,
)
from spotify_catalog import ledger
from spotify_catalog.cli import main
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.errors import BudgetSpent, Stopped
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema
from spotify_catalog.storage.engine import create_engine

ENV = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}
DAY = timedelta(hours=24)


def _small_artists(catalog: Any, count: int, skip: int = 0) -> list[str]:
    """Artists with small discographies (quick), each with at least one album."""
    sizes = []
    for artist_id in catalog.artist_ids()[1:]:
        albums = catalog.artist_album_ids(artist_id)
        if albums:
            sizes.append((sum(catalog.album(a).total_tracks for a in albums), artist_id))
    return [artist_id for _, artist_id in sorted(sizes)[skip : skip + count]]


def _command(emu: Any, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
        emu.url + "/api/token", *args,
    ]  # fmt: skip


def _cli(emu: Any, *args: str, env: dict[str, str] | None = None) -> Result:
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    return CliRunner().invoke(main, [*base, *args], env={**ENV, **(env or {})})


def _ledger_total(url: str, account: str = CLIENT_ID) -> int:
    engine = create_engine(url)
    b = ledger.blocks
    with engine.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(b.c.requests), 0)).where(b.c.account == account)
        ).scalar_one()
    engine.dispose()
    return int(total)


# ------------------------------------------------------------------------------------ one database


@pytest.mark.slow
@pytest.mark.parametrize("where", ["data directory", "postgresql", "mysql"])
def test_three_crawls_sharing_one_postgresql_database_spend_the_daily_budget_together(
    make_emulator: Any, postgres_url: str, request: pytest.FixtureRequest, where: str
) -> None:
    emu = make_emulator(profile="development", latency_ms=3)
    ids = _small_artists(emu.catalog, 30)
    need = minimum_requests(emu.catalog, {}, ids, mode="development", depth=Depth.TRACKS)
    assert need > 3 * 60  # each of the three could spend the whole budget alone
    # the ledger: the user's data directory, the crawl's own PostgreSQL database, or a MariaDB one
    where_args = {
        "data directory": [],
        "postgresql": ["--ledger", postgres_url],
        "mysql": ["--ledger", str(request.getfixturevalue("mysql_url"))] if where == "mysql" else [],
    }[where]
    env = {**os.environ, **ENV}
    env.pop("SPOTIFY_CATALOG_MODE", None)
    crawl = ["crawl", "--db", postgres_url, "--daily-budget", "60", "--workers", "2", "--quiet"]
    artists = [arg for i in ids for arg in ("--artist", i)]
    procs = [
        subprocess.Popen(
            _command(emu, *where_args, *crawl, *artists),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 75, err
        assert f"daily budget of 60 requests of account {CLIENT_ID} used up" in err
        assert "Traceback" not in err
    # on main: 60 + 52 + 41; each took its budget once, when it started
    assert web_requests(emu) == 60
    assert emu.stats()["by_status"].get("429", 0) == 0
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(schema.runs.c.status, schema.runs.c.requests)).all()
    engine.dispose()
    assert sorted(status for status, _ in runs) == ["stopped"] * len(runs)
    assert sum(requests for _, requests in runs) == 60


# ---------------------------------------------------------------------------------- two databases


def _crawl_until_stopped(
    emu: Any, engine: sa.Engine, book: ledger.Ledger, artists: list[str], clock: Clock
) -> tuple[str, int]:
    """One scheduled run of a crawl with ``--daily-budget 100``: its status and its requests."""
    before = web_requests(emu)
    options = CrawlOptions(artists=tuple(ArtistInput(i, True) for i in artists), depth=Depth.TRACKS)
    budget = ledger.AccountBudget(book, CLIENT_ID, limit=100, clock=clock)
    with SpotifyClient(emulator_settings(emu, "development"), budget=budget) as client:
        try:
            status = Crawler(engine, client, options, now=clock, command="cron").run().status
        except BudgetSpent as exc:
            status, retry_at = "stopped", exc.retry_at
            assert retry_at is not None
            assert retry_at > clock.now
    return status, web_requests(emu) - before


@pytest.mark.slow
def test_two_crawls_of_one_account_run_alternately_stay_within_its_daily_budget(
    make_emulator: Any, tmp_path: Path
) -> None:
    clock = Clock(T0)
    # Spotify's side: at most 100 requests in any rolling 24 h, on the same clock as the crawls
    emu = make_emulator(profile="development", quota=100, clock=lambda: clock.now.timestamp())
    lists = [_small_artists(emu.catalog, 20), _small_artists(emu.catalog, 20, skip=20)]
    needs = [minimum_requests(emu.catalog, {}, ids, mode="development", depth=Depth.TRACKS) for ids in lists]
    assert all(100 < need < 300 for need in needs), needs
    book = ledger.Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    engines = [new_engine(tmp_path / "a.db"), new_engine(tmp_path / "b.db")]
    status = ["", ""]
    sent: list[tuple[Any, int]] = []  # (when, requests) of each run
    # cron: crawl a at 0:00, 8:00, 16:00 and crawl b at 4:00, 12:00, 20:00, until both are done
    for slot in range(40):
        which = slot % 2
        if status[which] != "done":
            status[which], requests = _crawl_until_stopped(emu, engines[which], book, lists[which], clock)
            sent.append((clock.now, requests))
        if status == ["done", "done"]:
            break
        clock.now += timedelta(hours=4)
    assert status == ["done", "done"]
    assert emu.stats()["by_status"].get("429", 0) == 0
    for when, _ in sent:  # never more than 100 of the account in any rolling 24 h
        assert sum(r for t, r in sent if when - DAY < t <= when) <= 100
    assert sum(r for _, r in sent) == sum(needs)  # nothing fetched twice
    assert len(sent) > 2 * sum(needs) / 100  # the budget did stop runs
    book.close()
    # each ends identical to a clean crawl
    clean_emu = make_emulator(profile="development")
    for ids, engine, name in zip(lists, engines, ("a", "b"), strict=True):
        clean = new_engine(tmp_path / f"clean-{name}.db")
        options = CrawlOptions(artists=tuple(ArtistInput(i, True) for i in ids), depth=Depth.TRACKS)
        with SpotifyClient(emulator_settings(clean_emu, "development")) as client:
            Crawler(clean, client, options, now=lambda: T0, command="clean").run()
        diff = differences(contents(engine, emu.url), contents(clean, clean_emu.url))
        assert not diff, "\n".join(diff)
        clean.dispose()
        engine.dispose()


# ------------------------------------------------------------------------------ the stop


def test_a_budget_stop_says_when_the_oldest_request_leaves_the_window(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="development")
    book = ledger.Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    engine = new_engine(tmp_path / "c.db")
    clock = Clock(T0)
    options = CrawlOptions(artists=pick().inputs, depth=Depth.TRACKS)
    # 20 requests at T0 (a run stopped by --max-requests), counted in the ledger too
    budget = ledger.AccountBudget(book, CLIENT_ID, clock=clock)
    with (
        SpotifyClient(emulator_settings(emu, "development"), request_budget=20, budget=budget) as client,
        pytest.raises(Stopped),
    ):
        Crawler(engine, client, options, now=clock).run()
    assert _ledger_total(book.url) == 20
    # 3 h later, with a daily budget of 50: 30 more, then a stop that names the time the 20 of T0 leave
    clock.now = T0 + timedelta(hours=3)
    budget = ledger.AccountBudget(book, CLIENT_ID, limit=50, clock=clock)
    with (
        SpotifyClient(emulator_settings(emu, "development"), budget=budget) as client,
        pytest.raises(BudgetSpent) as stop,
    ):
        Crawler(engine, client, options, now=clock).run()
    frees = T0 + DAY + ledger.IN_FLIGHT
    assert stop.value.retry_at == frees
    assert str(stop.value) == (
        f"stopped: daily budget of 50 requests of account {CLIENT_ID} used up; "
        "continue after 2026-11-26 10:01:00 UTC"
    )
    assert web_requests(emu) == 50
    with engine.connect() as conn:
        last = conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id.desc())).first()
    assert last is not None
    assert (last.status, last.requests, last.retry_at) == ("stopped", 30, frees)
    # before that time the next run sends nothing and records no run
    clock.now = frees - timedelta(seconds=1)
    budget = ledger.AccountBudget(book, CLIENT_ID, limit=50, clock=clock)
    with (
        SpotifyClient(emulator_settings(emu, "development"), budget=budget) as client,
        pytest.raises(BudgetSpent) as refused,
    ):
        Crawler(engine, client, options, now=clock).run()
    assert "(50 in the last 24 h); nothing was sent" in str(refused.value)
    assert refused.value.retry_at == frees
    assert web_requests(emu) == 50
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.runs)).scalar_one() == 2
    # at that time the 20 have left: 20 more may go
    clock.now = frees
    budget = ledger.AccountBudget(book, CLIENT_ID, limit=50, clock=clock)
    with SpotifyClient(emulator_settings(emu, "development"), budget=budget) as client:
        try:
            Crawler(engine, client, options, now=clock).run()
        except BudgetSpent:
            pass
    assert web_requests(emu) in range(51, 71)
    book.close()
    engine.dispose()


# ------------------------------------------------------------------------------ a killed crawl


@pytest.mark.slow
def test_a_killed_crawl_s_reservation_still_counts(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development", latency_ms=20)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {**os.environ, **ENV}
    env.pop("SPOTIFY_CATALOG_MODE", None)
    command = _command(emu, "crawl", "--db", url, "--daily-budget", "40", "--quiet", *pick().args())
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_requests(emu, proc, 12)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if proc.stderr:
        proc.stderr.close()
    killed_at = web_requests(emu)
    ledger_url = ledger.default_url()
    reserved = _ledger_total(ledger_url)
    assert reserved >= killed_at  # its open block counts whole, what it sent of it or not
    again = _cli(emu, "crawl", "--db", url, "--daily-budget", "40", *pick().args())
    assert again.exit_code == 75, again.output
    assert web_requests(emu) <= 40
    assert web_requests(emu) - killed_at == 40 - reserved  # the rest, and not one more
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        still_open = conn.execute(
            sa.select(sa.func.count()).where(ledger.blocks.c.closed.is_(False))
        ).scalar_one()
    engine.dispose()
    assert still_open == 0  # the dead process's block was found and closed


# ------------------------------------------------------------------------------ one-off commands


def test_one_off_commands_are_counted_in_the_account_s_ledger(make_emulator: Any) -> None:
    emu = make_emulator(profile="development")
    artist = emu.catalog.artist_ids()[3]
    assert _cli(emu, "get", "artist", artist).exit_code == 0
    assert _cli(emu, "search", "a", "--limit", "5").exit_code == 0
    assert _cli(emu, "--account", "team", "get", "artist", artist).exit_code == 0
    url = ledger.default_url()
    assert (_ledger_total(url), _ledger_total(url, "team")) == (2, 1)
    engine = create_engine(url)
    bb = ledger.block_buckets
    with engine.connect() as conn:
        buckets = conn.execute(sa.select(bb.c.bucket, sa.func.sum(bb.c.requests)).group_by(bb.c.bucket)).all()
    engine.dispose()
    assert dict(buckets) == {"artists": 2, "search": 1}
    # a daily budget of the account holds for them too: nothing is sent past it
    budget = {"SPOTIFY_CATALOG_DAILY_BUDGET": "2"}
    refused = _cli(emu, "get", "artist", artist, env=budget)
    assert refused.exit_code == 75
    spent = f"daily budget of 2 requests of account {CLIENT_ID} used up (2 in the last 24 h)"
    assert refused.stderr.startswith(f"Error: {spent}; continue after ")
    assert web_requests(emu) == 3
    assert _cli(emu, "--account", "team", "get", "artist", artist, env=budget).exit_code == 0


def test_status_plan_and_report_show_the_account_s_use(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    crawl = _cli(emu, "crawl", "--db", url, "--max-requests", "7", "--quiet", *pick().args())
    assert crawl.exit_code == 75, crawl.output
    assert _cli(emu, "--account", "other", "get", "artist", emu.catalog.artist_ids()[3]).exit_code == 0
    # status needs no credentials: the account is the one the crawl recorded
    result = CliRunner().invoke(main, ["status", "--db", url, "--format", "json", "--daily-budget", "10"])
    data = json.loads(result.stdout)
    assert (data["account"], data["requests_last_24h"], data["ledger"]) == (
        CLIENT_ID,
        7,
        ledger.default_url(),
    )
    plan = _cli(emu, "crawl", "--db", url, "--plan", "--daily-budget", "10", *pick().args())
    assert plan.exit_code == 0, plan.output
    assert f"requests in the last 24 h: 7 of a daily budget of 10 (account {CLIENT_ID})" in plan.stdout
    out = tmp_path / "report.html"
    assert CliRunner().invoke(main, ["report", "--db", url, "--out", str(out)]).exit_code == 0
    page = out.read_text("utf-8")
    assert 'id="requests-24h" data-value="7"' in page
    assert f"account {CLIENT_ID}" in page
