"""``spotify-catalog status`` and ``crawl --plan``: what they report, that the requests left are what
a resumed crawl then spends (exactly once every discography is stored), and that they send no
request and write nothing."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from status_helpers import T0, crawl, new_engine, sample, status, status_json

from emulated import web_requests
from spotify_catalog import ledger
from spotify_catalog import status as status_lib
from spotify_catalog.cli import main
from spotify_catalog.crawl import ACCOUNT_STATE_KEY, OPTIONS_STATE_KEY, CrawlOptions, Depth
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.migrate import open_database

JSON_KEYS = {"tasks", "requests_last_24h", "last_run", "unresolved", "requests_left", "requests_left_exact"}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env; a default database would land here
    for variable in ("SPOTIFY_CATALOG_MODE", "SPOTIFY_CATALOG_DAILY_BUDGET", "SPOTIFY_CATALOG_CONFIG"):
        monkeypatch.delenv(variable, raising=False)


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


# ------------------------------------------------------------------------------ empty and missing


def test_a_missing_sqlite_file_is_a_usage_error_and_is_not_created(tmp_path: Path) -> None:
    target = tmp_path / "nothing-here.db"
    result = status("--db", f"sqlite:///{target}")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: no database at ")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("made_by", ["crawl", "empty file"])
def test_a_new_database_says_nothing_crawled_yet(tmp_path: Path, made_by: str) -> None:
    target = tmp_path / "new.db"
    if made_by == "crawl":
        new_engine(target).dispose()  # the schema, no run
    else:
        target.write_bytes(b"")
    result = status("--db", f"sqlite:///{target}")
    assert result.exit_code == 0, result.output
    assert "nothing crawled yet" in result.stdout
    data = status_json(f"sqlite:///{target}")
    assert JSON_KEYS <= set(data)
    assert data["tasks"] == {}
    assert data["last_run"] is None
    assert data["unresolved"] == []
    assert (data["requests_left"], data["requests_left_exact"], data["requests_last_24h"]) == (0, True, 0)


# ------------------------------------------------------------------------------ what it reports


def test_json_reports_tasks_runs_and_unresolved_names(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    path = tmp_path / "c.db"
    engine = new_engine(path)
    nobody = "Zzqx Nobody Wrote This"
    artists = (*sample()[:6], ArtistInput(nobody, False))
    crawl(emu, engine, artists, mode="development", budget=9)
    crawl(emu, engine, artists, mode="development", budget=3)
    data = status_json(f"sqlite:///{path}")
    assert JSON_KEYS <= set(data)

    t = schema.tasks
    with engine.connect() as conn:
        counts = conn.execute(
            sa.select(t.c.kind, t.c.state, sa.func.count()).group_by(t.c.kind, t.c.state)
        ).all()
        runs = conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id.desc())).mappings().all()
    expected: dict[str, dict[str, int]] = {}
    for kind, st, count in counts:
        expected.setdefault(kind, {"pending": 0, "done": 0, "failed": 0})[st] = count
    assert data["tasks"] == expected
    assert data["unresolved"] == [nobody]
    assert data["last_run"] == {
        "id": runs[0]["id"],
        "status": "stopped",
        "reason": runs[0]["reason"],
        "retry_at": None,
        "requests": 3,
    }
    assert [r["requests"] for r in data["runs"]] == [3, 9]
    assert data["requests_last_24h"] == 0  # the runs are of T0, long ago
    assert data["requests_left_exact"] is False  # discographies are still missing
    assert data["api_mode"] == "development"
    assert data["daily_budget"] is None
    assert data["daily_budget_assumed"] is True
    assert data["days_left"] == -(-data["requests_left"] // status_lib.ASSUMED_BUDGET)
    engine.dispose()


def test_table_shows_the_last_run_and_when_to_run_again(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    path = tmp_path / "c.db"
    engine = new_engine(path)
    crawl(emu, engine, sample()[:3], mode="development", budget=5)
    retry_at = T0 + timedelta(hours=20)
    with engine.begin() as conn:
        conn.execute(
            schema.runs.update().values(reason="the quota of 1000 requests is used up", retry_at=retry_at)
        )
    engine.dispose()
    result = status("--db", f"sqlite:///{path}", "--daily-budget", "1500")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "last run: #1 stopped: the quota of 1000 requests is used up; " in out
    assert "run again after 2026-11-26 06:00:00 UTC" in out
    assert "of a daily budget of 1,500" in out
    assert "names that found no artist: none" in out
    assert re.search(
        r"requests left: [\d,]+ \(estimated; depth tracks, development mode\); 1 day\(s\) at 1,500", out
    )
    for line in out.splitlines():  # stdout is not a terminal here: long lines stay whole
        assert len(line) < 400
    assert "…" not in out


def _task_rows(out: str) -> dict[str, list[str]]:
    """The task table's rows: kind -> [done, pending, failed, requests left]."""
    rows = (line.strip("│ ").split("│") for line in out.splitlines() if line.startswith("│"))
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows if len(cells) == 5}


def test_requests_left_beyond_the_pending_tasks_are_explained(make_emulator: Any, tmp_path: Path) -> None:
    """A kind with more requests left than tasks pending (the track pages of albums not fetched yet)
    is marked, and a footnote says whose they are (``album_tracks pending 0, requests left 18`` said
    nothing)."""
    emu = make_emulator(profile="development")
    path = tmp_path / "c.db"
    engine = new_engine(path)
    crawl(emu, engine, sample()[:3], mode="development", budget=5)  # stops among the discographies
    engine.dispose()
    result = status("--db", f"sqlite:///{path}")
    assert result.exit_code == 0, result.output
    rows = _task_rows(result.stdout)
    marked = {kind for kind, (_, _, _, left) in rows.items() if left.endswith("*")}
    assert {"album", "album_tracks"} <= marked  # no album task yet: each is a request to come
    for kind, (_, pending, _, left) in rows.items():
        beyond = int(left.rstrip("*").replace(",", "")) > int(pending.replace(",", ""))
        assert (kind in marked) == beyond, (kind, pending, left)
    assert (
        "* more requests left than tasks pending: the rest belong to tasks not created yet" in result.stdout
    )

    finished = tmp_path / "done.db"
    engine = new_engine(finished)
    crawl(emu, engine, sample()[:1], mode="development")
    engine.dispose()
    done = status("--db", f"sqlite:///{finished}")
    assert "*" not in done.stdout


def test_daily_budget_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    new_engine(path).dispose()
    data = status_json(f"sqlite:///{path}")
    assert data["daily_budget"] is None
    result = status(
        "--db", f"sqlite:///{path}", "--format", "json", env={"SPOTIFY_CATALOG_DAILY_BUDGET": "1200"}
    )
    assert json.loads(result.stdout)["daily_budget"] == 1200
    settings = tmp_path / "settings.toml"
    settings.write_text("[spotify]\ndaily_budget = 800\n", encoding="utf-8")
    from_file = CliRunner().invoke(
        main, ["--config", str(settings), "status", "--db", f"sqlite:///{path}", "--format", "json"]
    )
    assert json.loads(from_file.stdout)["daily_budget"] == 800
    bad = status("--db", f"sqlite:///{path}", env={"SPOTIFY_CATALOG_DAILY_BUDGET": "lots"})
    assert bad.exit_code == 2
    assert bad.stderr.startswith("Error: bad value for daily_budget (SPOTIFY_CATALOG_DAILY_BUDGET)")


# ------------------------------------------------------------------------------ the requests left


def _discography_requests(emu: Any, tmp_path: Path, artists: tuple[ArtistInput, ...], mode: str) -> int:
    """The requests of resolving the artists and fetching their discographies: a crawl to depth
    albums into a database of its own."""
    engine = new_engine(tmp_path / "albums-only.db")
    spent = crawl(emu, engine, artists, mode=mode, depth=Depth.ALBUMS)
    engine.dispose()
    return spent


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "depth"),
    [("development", Depth.TRACKS), ("extended", Depth.TRACKS), ("extended", Depth.TRACK_DETAILS)],
    ids=["development", "extended", "extended-track-details"],
)
def test_requests_left_is_exact_once_every_discography_is_stored(
    make_emulator: Any, tmp_path: Path, mode: str, depth: Depth
) -> None:
    emu = make_emulator(profile=mode)
    artists = sample()
    budget = _discography_requests(emu, tmp_path, artists, mode)
    path = tmp_path / "c.db"
    engine = new_engine(path)
    assert crawl(emu, engine, artists, mode=mode, depth=depth, budget=budget) == budget
    with engine.connect() as conn:
        pending = conn.execute(
            sa.select(sa.func.count()).where(
                schema.tasks.c.kind == "artist_albums", schema.tasks.c.state == "pending"
            )
        ).scalar_one()
    assert pending == 0  # every discography is stored, no album yet

    data = status_json(f"sqlite:///{path}")
    assert data["requests_left_exact"] is True
    rest = crawl(emu, engine, artists, mode=mode, depth=depth, workers=4)
    assert data["requests_left"] == rest > 0
    assert status_json(f"sqlite:///{path}")["requests_left"] == 0
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["development", "extended"])
@pytest.mark.parametrize("share", [0.4, 0.7])
def test_requests_left_is_close_while_discographies_are_fetched(
    make_emulator: Any, tmp_path: Path, mode: str, share: float
) -> None:
    emu = make_emulator(profile=mode)
    artists = sample()
    budget = round(_discography_requests(emu, tmp_path, artists, mode) * share)
    path = tmp_path / "c.db"
    engine = new_engine(path)
    crawl(emu, engine, artists, mode=mode, budget=budget)
    data = status_json(f"sqlite:///{path}")
    assert data["requests_left_exact"] is False
    rest = crawl(emu, engine, artists, mode=mode, workers=4)
    assert abs(data["requests_left"] - rest) <= 0.3 * rest, (data["requests_left"], rest)
    engine.dispose()


def test_a_crawl_to_depth_albums_is_finished_for_status(make_emulator: Any, tmp_path: Path) -> None:
    """The depth of the last crawl counts: its albums are not work left."""
    emu = make_emulator(profile="development")
    path = tmp_path / "c.db"
    engine = new_engine(path)
    crawl(emu, engine, sample()[:5], mode="development", depth=Depth.ALBUMS)
    data = status_json(f"sqlite:///{path}")
    assert (data["requests_left"], data["requests_left_exact"], data["depth"]) == (0, True, "albums")
    engine.dispose()


def test_saved_crawl_options_are_the_plan(make_emulator: Any, tmp_path: Path) -> None:
    """``_state.crawl_options`` (written by the crawl) names the artists still to do."""
    emu = make_emulator(profile="development")
    path = tmp_path / "c.db"
    engine = new_engine(path)
    done, later = sample()[:2], sample()[2:4]
    crawl(emu, engine, done, mode="development")
    options = {
        "depth": "tracks",
        "include_groups": ["album", "single", "compilation", "appears_on"],
        "market": None,
        "artists": [{"value": a.value, "is_id": a.is_id} for a in (*done, *later)],
    }
    with engine.begin() as conn:
        state.set_state(conn, OPTIONS_STATE_KEY, json.dumps(options))
    data = status_json(f"sqlite:///{path}")
    assert data["requests_left"] > 0
    assert data["requests_left_exact"] is False
    assert any("not fetched yet" in note for note in data["notes"])
    engine.dispose()


def test_saved_options_read_back_as_the_crawl_was_asked() -> None:
    """What ``to_json`` saves, ``from_json`` reads back; what it does not save (and a depth a saved
    text lacks) is the default of a crawl given no such option."""
    options = CrawlOptions(
        artists=(ArtistInput("Some Name", False), ArtistInput("3Nrfpe0tUJi4K4DXYWgMUX", True)),
        depth=Depth.ALBUMS,
        include_groups=("single", "album"),
        market="SE",
        top_tracks=True,
        playlists=("37i9dQZF1DXcBWIGoYBM5M",),
        shows=("4rOoJ6Egrf8K2IrywzwOMk",),
        audiobooks=("7iHfbu1YPACw6oZPAFJtqe",),
    )
    assert CrawlOptions.from_json(options.to_json()) == options
    artists_only = json.dumps({"artists": [{"value": "3Nrfpe0tUJi4K4DXYWgMUX", "is_id": True}]})
    assert CrawlOptions.from_json(artists_only) == CrawlOptions(
        artists=(ArtistInput("3Nrfpe0tUJi4K4DXYWgMUX", True),)
    )


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"artists": "BTS"}',
        '{"artists": [{"value": "BTS"}]}',
        '{"artists": [{"value": "BTS", "is_id": false}], "depth": "everything"}',
        '{"artists": [{"value": "BTS", "is_id": false}], "depth": 9}',
        '{"artists": []}',
    ],
    ids=["not-json", "not-an-object", "artists-a-string", "no-is-id", "unknown-depth", "depth-9", "nothing"],
)
def test_saved_options_that_are_not_a_crawl_s_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not saved crawl options: "):
        CrawlOptions.from_json(text)


def test_without_saved_options_status_counts_the_queue_s_artists_at_the_default_depth(
    make_emulator: Any, tmp_path: Path
) -> None:
    """A database whose crawl saved no options (a version before they were saved): the artists of the
    task queue at the depth and groups of a crawl given none, said in a note; the command line the
    run recorded is not read."""
    emu = make_emulator(profile="development")
    path = tmp_path / "c.db"
    engine = new_engine(path)
    artists = sample()[:3]
    crawl(emu, engine, artists, mode="development", depth=Depth.ALBUMS)  # records "crawl --depth albums"
    assert status_json(f"sqlite:///{path}")["requests_left"] == 0
    with engine.begin() as conn:
        conn.execute(sa.delete(schema.state).where(schema.state.c.key == OPTIONS_STATE_KEY))
    data = status_json(f"sqlite:///{path}")
    assert (data["depth"], data["counted_for"]) == ("tracks", "the task queue")
    assert data["include_groups"] == ["album", "single", "compilation", "appears_on"]
    assert any("no saved options" in note for note in data["notes"])
    rest = crawl(emu, engine, artists, mode="development", depth=Depth.TRACKS)
    assert data["requests_left"] == rest > 0  # the albums of the crawl at depth tracks
    engine.dispose()


# ------------------------------------------------------------------------------ read only


def test_status_sends_no_request_and_writes_nothing(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    path = tmp_path / "c.db"
    engine = new_engine(path)
    crawl(emu, engine, sample()[:4], mode="development", budget=40)
    # while the crawl's connections are open (SQLite keeps its last writes in the -wal file) ...
    before, requests = _fingerprint(path), web_requests(emu)
    assert status_json(f"sqlite:///{path}")["last_run"]["requests"] == 40
    assert _fingerprint(path) == before
    # ... and after they are closed
    engine.dispose()
    before = _fingerprint(path)
    for args in ([], ["--format", "json"], ["--daily-budget", "10"]):
        result = CliRunner().invoke(
            main,
            [
                "--api-url",
                emu.url + "/v1",
                "--token-url",
                emu.url + "/api/token",
                "status",
                "--db",
                f"sqlite:///{path}",
                *args,
            ],
            env={
                "SPOTIFY_CLIENT_ID": "emulator-client-id",
                "SPOTIFY_CLIENT_SECRET": "emulator-client-secret",
            },
        )
        assert result.exit_code == 0, result.output
    assert _fingerprint(path) == before
    assert web_requests(emu) == requests
    assert not Path(ledger.default_url().removeprefix("sqlite:///")).exists()  # nor a ledger created


def test_status_reads_postgresql_and_mariadb(make_emulator: Any, db_url: str) -> None:
    emu = make_emulator(profile="development")
    engine = open_database(db_url)
    crawl(emu, engine, sample()[:3], mode="development", depth=Depth.ALBUMS, budget=6)
    data = status_json(db_url)
    with engine.connect() as conn:
        pending = conn.execute(
            sa.select(sa.func.count()).where(schema.tasks.c.state == "pending")
        ).scalar_one()
    assert sum(kind["pending"] for kind in data["tasks"].values()) == pending
    assert data["last_run"]["requests"] == 6
    engine.dispose()


# ------------------------------------------------------------------------------ crawl --plan


@pytest.mark.slow
def test_plan_on_a_fresh_database_sends_nothing_and_is_close(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    artists = sample(step=8, names=0)  # ids only
    path = tmp_path / "fresh.db"
    args = [arg for a in artists for arg in ("--artist", a.value)]
    result = CliRunner().invoke(
        main,
        [
            "--api-url",
            emu.url + "/v1",
            "crawl",
            "--db",
            f"sqlite:///{path}",
            *args,
            "--mode",
            "development",
            "--plan",
        ],
        env={"SPOTIFY_CLIENT_ID": "", "SPOTIFY_CLIENT_SECRET": ""},  # no credentials needed
    )
    assert result.exit_code == 0, result.output
    assert emu.stats()["requests"] == 0
    assert not path.exists()
    match = re.search(r"requests left: ([\d,]+) \(estimated; depth tracks, development mode\)", result.stdout)
    assert match, result.stdout
    planned = int(match.group(1).replace(",", ""))
    assert f"artist        │ {len(artists):>8}" in result.stdout  # the ids: exact

    real = crawl(emu, new_engine(path), artists, mode="development")
    assert abs(planned - real) <= 0.3 * real, (planned, real)


@pytest.mark.slow
def test_plan_counts_what_the_database_holds(make_emulator: Any, tmp_path: Path) -> None:
    """After a stop, the plan of the same crawl is the requests left (exact here), and a rerun
    later than --refresh-after counts everything again."""
    emu = make_emulator(profile="extended")
    artists = sample()[:8]
    path = tmp_path / "c.db"
    engine = new_engine(path)
    disc = _discography_requests(emu, tmp_path, artists, "extended")
    crawl(emu, engine, artists, mode="extended", budget=disc)
    base = [
        "crawl",
        "--db",
        f"sqlite:///{path}",
        *[x for a in artists for x in ("--artist", a.value)],
        "--plan",
    ]
    # the plan's clock is today's, the crawl's T0: what T0 finished is still fresh for the plan too
    since_t0 = f"{(datetime.now(UTC) - T0).days + 7}d"
    result = CliRunner().invoke(
        main, [*base, "--refresh-after", since_t0], env={"SPOTIFY_CATALOG_MODE": "extended"}
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"requests left: ([\d,]+) \(exact; depth tracks, extended mode\)", result.stdout)
    assert match, result.stdout
    rest = crawl(emu, engine, artists, mode="extended")
    assert int(match.group(1)) == rest
    engine.dispose()
    # everything fresh (the crawl's clock is T0, long ago: --refresh-after 0 refetches everything)
    again = CliRunner().invoke(
        main, [*base, "--refresh-after", "0"], env={"SPOTIFY_CATALOG_MODE": "extended"}
    )
    total = crawl(emu, new_engine(tmp_path / "other.db"), artists, mode="extended")
    assert f"requests left: {total:,} (exact" in again.stdout, again.stdout


def _plan(path: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main,
        ["crawl", "--db", f"sqlite:///{path}", *args, "--plan"],
        env={"SPOTIFY_CLIENT_ID": "", "SPOTIFY_CLIENT_SECRET": "", "SPOTIFY_CATALOG_MODE": ""},
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _left(text: str, mode: str) -> int:
    match = re.search(
        rf"requests left: ([\d,]+) \(estimated; depth tracks, {mode} mode( \(assumed\))?\)", text
    )
    assert match, text
    return int(match.group(1).replace(",", ""))


def test_plan_with_the_mode_unknown_counts_both_modes_and_says_how_to_pin_it(tmp_path: Path) -> None:
    """No --mode and nothing in the database: the counts of --mode development and of --mode extended,
    per kind and in all, and the option that pins the mode."""
    path = tmp_path / "fresh.db"
    inputs = ["--artist", "BTS", "--artist", sample()[5].value, "--playlist", "7HjwED1qyXDmEoZt0Etehv"]
    both = _plan(path, *inputs)
    development, extended = (_plan(path, *inputs, "--mode", mode) for mode in ("development", "extended"))
    assert _left(both, "development") == _left(development, "development") > _left(extended, "extended")
    assert f"requests left in extended mode: {_left(extended, 'extended'):,} (estimated)" in both
    assert "  pin the mode: --mode extended|development" in both
    assert "requests (development) ┃ requests (extended)" in both
    for kind in ("artist_albums", "album"):
        dev_row = re.search(rf"{kind} +│ +([\d,]+)", development)
        ext_row = re.search(rf"{kind} +│ +([\d,]+)", extended)
        assert dev_row
        assert ext_row
        assert re.search(rf"{kind} +│ +{dev_row.group(1)} │ +{ext_row.group(1)} │", both), both
    assert "in extended mode" not in development + extended
    assert "pin the mode" not in development + extended
    assert not path.exists()


def test_status_with_the_mode_unknown_counts_both_modes(tmp_path: Path) -> None:
    """A crawl that stopped before learning the mode: the requests left in each, and how to pin it."""
    path = tmp_path / "unknown.db"
    engine = new_engine(path)
    with engine.begin() as conn:
        state.ensure_tasks(conn, "search", ["BTS", "Nobody Known"], now=T0, fresh_since=T0)
    engine.dispose()
    data = status_json(f"sqlite:///{path}")
    assert data["api_mode"] is None
    assert 0 < data["requests_left_if_extended"] < data["requests_left"]
    text = status("--db", f"sqlite:///{path}").stdout
    assert "requests left (development) ┃ requests left (extended)" in text
    assert f"requests left in extended mode: {data['requests_left_if_extended']:,}" in text
    assert "  pin the mode: crawl --mode extended|development" in text


# ------------------------------------------------------------------------------ the rolling 24 h


def _spend(account: str, requests: int, at: datetime) -> None:
    """``requests`` of ``account`` sent at ``at``, in the ledger of the user's data directory."""
    book = ledger.Ledger(ledger.default_url())
    budget = ledger.AccountBudget(book, account, clock=lambda: at)
    for _ in range(requests):
        budget.take("/artists/x")
    budget.release()
    book.close()


def test_status_counts_the_account_s_last_24_hours_from_its_ledger(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    new_engine(path).dispose()
    url = f"sqlite:///{path}"
    now = datetime.now(UTC).replace(microsecond=0)
    _spend("acct-a", 700, now - timedelta(hours=30))  # out of the window
    _spend("acct-a", 600, now - timedelta(hours=3))
    _spend("acct-a", 450, now - timedelta(minutes=2))
    _spend("acct-b", 999, now - timedelta(hours=1))  # another account
    data = status_json(url, "--daily-budget", "1000", "--account", "acct-a")
    assert (data["account"], data["ledger"]) == ("acct-a", ledger.default_url())
    assert data["requests_last_24h"] == 1050
    # the 600 leave 24 h after they were sent (and may still reach Spotify for a minute after that)
    frees = datetime.fromisoformat(data["budget_frees_at"])
    assert frees == now - timedelta(hours=3) + ledger.IN_FLIGHT + timedelta(hours=24)
    table = status("--db", url, "--daily-budget", "1000", "--account", "acct-a")
    assert (
        "requests in the last 24 h: 1,050 of a daily budget of 1,000 (under it again after "
        f"{frees.strftime('%Y-%m-%d %H:%M:%S UTC')}; account acct-a)"
    ) in table.stdout
    # without --account nor a client id: the account the database's last crawl counted in
    assert status_json(url)["requests_last_24h"] == 0
    engine = open_database(url)
    with engine.begin() as conn:
        state.set_state(conn, ACCOUNT_STATE_KEY, "acct-b")
    engine.dispose()
    assert (status_json(url)["account"], status_json(url)["requests_last_24h"]) == ("acct-b", 999)
    assert status_json(url, "--account", "acct-a")["requests_last_24h"] == 1050


def test_status_without_a_ledger_says_none_recorded_and_creates_none(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    new_engine(path).dispose()
    where = tmp_path / "nowhere" / "ledger.db"
    options = ("--account", "acct-a", "--ledger", f"sqlite:///{where}")
    result = status("--db", f"sqlite:///{path}", *options)
    assert result.exit_code == 0, result.output
    assert (
        f"requests in the last 24 h: 0 (account acct-a: none recorded, no ledger at sqlite:///{where})"
        in result.stdout
    )
    assert status_json(f"sqlite:///{path}", *options)["requests_last_24h"] == 0
    assert not where.parent.exists()
