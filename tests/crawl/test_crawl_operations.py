"""Operating a crawl that runs for days: logs fit for cron and systemd, the daily budget, Spotify's
``retry_at`` read from the database, abandoned runs, global options after the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from crawl_helpers import minimum_requests, pick

from emulated import CLIENT_ID, CLIENT_SECRET, web_requests
from spotify_catalog import ledger
from spotify_catalog.cli import main
from spotify_catalog.crawl import Depth
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.engine import create_engine
from spotify_catalog.storage.migrate import open_database

BOX = set("━─│┃┏┓┗┛┡┩├┤┼╇╈└┘┌┐▕▏█")


def run(emu: Any, *args: str) -> Result:
    env = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    return CliRunner().invoke(main, [*base, *args], env=env)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPOTIFY_CATALOG_MODE", raising=False)
    monkeypatch.delenv("SPOTIFY_CATALOG_DAILY_BUDGET", raising=False)


def _runs(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id)).mappings()]
    engine.dispose()
    return rows


def test_progress_in_a_log_is_whole_lines(make_emulator: Any, tmp_path: Path) -> None:
    """stderr to a file, as under cron: plain lines, one at each phase's start and end, nothing cut
    or wrapped, the summary rows unbroken."""
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    err = tmp_path / "err.log"
    out = tmp_path / "out.txt"
    command = [
        sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
        emu.url + "/api/token", "crawl", "--db", url, "--max-requests", "30", *pick().args(),
    ]  # fmt: skip
    env = {
        **os.environ,
        "SPOTIFY_CLIENT_ID": CLIENT_ID,
        "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET,
        "COLUMNS": "60",
    }
    with err.open("w") as e, out.open("w") as o:
        code = subprocess.run(command, stdout=o, stderr=e, env=env, cwd=tmp_path, timeout=120).returncode
    assert code == 75
    lines = err.read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        assert not BOX & set(line), line
        assert "…" not in line, line
    text = "\n".join(lines)
    assert "resolving names: started" in text
    assert "resolving ids: done" in text
    assert "artist albums: started" in text
    # the stop is one whole line, its time unbroken
    stop = [line for line in lines if "continue" in line or "stopped" in line]
    assert any("request budget of 30" in line for line in stop), lines
    summary = out.read_text(encoding="utf-8")
    assert "spotify-catalog: rows per table" in summary
    assert "requests made" in summary


def test_json_log_format_is_one_object_a_line(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = run(emu, "crawl", "--db", url, "--depth", "albums", *pick().args(), "--log-format", "json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines()]
    phases = [(e["event"], e["phase"]) for e in events if e.get("event") in ("start", "end")]
    assert ("start", "resolving names") in phases
    assert ("end", "artist albums") in phases
    finished = [e for e in events if e.get("event") == "finished"]
    assert len(finished) == 1
    assert finished[0]["requests"] == web_requests(emu)
    assert all({"time", "level", "message"} <= set(e) for e in events)


def test_global_options_work_after_the_command(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = run(emu, "crawl", "--db", url, "--depth", "artists", *pick().args(), "-vv")
    assert result.exit_code == 0, result.output
    assert " DEBUG spotify_catalog" in result.stderr
    quiet = run(emu, "crawl", "--db", url, "--depth", "artists", *pick().args(), "-q")
    assert quiet.exit_code == 0
    assert quiet.stdout == ""


@pytest.mark.parametrize("where", ["-q before", "--quiet after"])
def test_quiet_is_one_option_before_or_after_the_command(
    make_emulator: Any, tmp_path: Path, where: str
) -> None:
    """No summary, no progress, and logs of errors only, however it is written (``crawl --quiet`` was
    an option of its own that kept the warnings)."""
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["crawl", "--db", url, "--artist", "Zzqxv Nonexistent Band", "--depth", "artists"]
    args = ["-q", *args] if where == "-q before" else [*args, "--quiet"]
    result = run(emu, *args)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    loud = run(emu, "crawl", "--db", url, "--artist", "Another Nonexistent Band", "--depth", "artists")
    assert "no artist found for 'Another Nonexistent Band'" in loud.stderr  # what quiet left out


def test_unresolved_names_are_warned_in_the_run_that_searched_them(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    name = "Zzqxv Nonexistent Band"
    first = run(emu, "crawl", "--db", url, "--artist", name, "--artist", pick().ids[1], "--max-requests", "1")
    assert first.exit_code == 75
    assert f"no artist found for {name!r}" in first.stderr
    second = run(emu, "crawl", "--db", url, "--artist", name, "--artist", pick().ids[1], "--depth", "artists")
    assert second.exit_code == 0, second.output
    assert "no artist found" not in second.stderr  # said once, in the run that searched


def _summary_rows(stdout: str) -> dict[str, str]:
    """The crawl summary's rows, ``name -> value``."""
    rows = (line.strip("│┃ ").split("│") for line in stdout.splitlines() if line.startswith("│"))
    return {cells[0].strip(): cells[-1].strip() for cells in rows if len(cells) >= 2}


def test_a_run_refused_at_once_shows_the_last_run_and_the_saved_mode(
    make_emulator: Any, tmp_path: Path
) -> None:
    """A crawl the daily budget refuses before it starts (nothing sent) names the last run and the mode
    the database keeps (it showed ``run -`` and ``API mode unknown``)."""
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["crawl", "--db", url, "--daily-budget", "20", *pick().args()]
    first = run(emu, *args)
    assert first.exit_code == 75, first.output
    assert _summary_rows(first.stdout)["run"] == "1 stopped"
    assert _summary_rows(first.stdout)["API mode"] == "development"
    again = run(emu, *args)
    assert again.exit_code == 75, again.output
    assert "nothing was sent" in again.stderr
    summary = _summary_rows(again.stdout)
    assert summary["run"] == "none started (last: 1 stopped)"
    assert (summary["requests made"], summary["API mode"]) == ("0", "development")


def test_daily_budget_stops_before_the_quota(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development", quota=40)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["crawl", "--db", url, "--daily-budget", "30", "--workers", "3", *pick().args()]
    first = run(emu, *args)
    assert first.exit_code == 75, first.output
    assert f"daily budget of 30 requests of account {CLIENT_ID} used up" in first.stderr
    assert "continue after" in first.stderr
    assert web_requests(emu) == 30
    assert emu.stats()["by_status"].get("429", 0) == 0
    again = run(emu, *args)  # the same day: nothing sent
    assert again.exit_code == 75
    assert f"daily budget of 30 requests of account {CLIENT_ID} used up (30 in the last 24 h)" in again.stderr
    assert web_requests(emu) == 30
    runs = _runs(url)
    assert [r["status"] for r in runs] == ["stopped"]
    assert runs[0]["requests"] == 30
    assert runs[0]["retry_at"] is not None
    # a day later the budget is back (the times of the account's ledger moved back a day)
    ledger_db = create_engine(ledger.default_url())
    with ledger_db.begin() as conn:
        blocks = ledger.blocks
        for block_id, ends_at in conn.execute(sa.select(blocks.c.id, blocks.c.ends_at)).all():
            earlier = ends_at - timedelta(days=1, minutes=2)
            conn.execute(blocks.update().where(blocks.c.id == block_id).values(ends_at=earlier))
    ledger_db.dispose()
    emu.advance(24 * 3600 + 60)
    later = run(emu, *args)
    # the two days together send what one crawl would (nothing fetched twice), at most 30 a day
    need = minimum_requests(emu.catalog, pick().names, pick().ids, mode="development", depth=Depth.TRACKS)
    assert need > 30
    assert later.exit_code == (0 if need <= 60 else 75), later.output
    assert web_requests(emu) == min(need, 60)
    assert emu.stats()["by_status"].get("429", 0) == 0


def _running_row(url: str, *, host: str, pid: int, active: datetime, requests: int = 0) -> None:
    engine = open_database(url)
    with engine.begin() as conn:
        conn.execute(
            schema.runs.insert().values(
                started_at=active - timedelta(minutes=5),
                updated_at=active,
                status="running",
                requests=requests,
                rows_written=0,
                host=host,
                pid=pid,
            )
        )
    engine.dispose()


def test_a_run_whose_process_is_gone_is_marked_abandoned(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    dead = subprocess.Popen(["true"])
    dead.wait()
    now = datetime.now(UTC)
    host, _pid = state.this_process()
    _running_row(url, host=host, pid=dead.pid, active=now, requests=3)  # this host, its pid gone
    _running_row(url, host="elsewhere", pid=1, active=now - timedelta(hours=2))  # not heard of for 2 h
    result = run(emu, "crawl", "--db", url, "--depth", "artists", *pick().args())
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in _runs(url)] == ["abandoned", "abandoned", "done"]
    assert result.stderr.count("marked abandoned") == 2


def test_a_second_crawl_into_one_sqlite_file_says_which_crawl_holds_it(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    host, pid = state.this_process()  # a live process: this one
    _running_row(url, host=host, pid=pid, active=datetime.now(UTC))
    result = run(emu, "crawl", "--db", url, "--depth", "artists", *pick().args())
    assert result.exit_code == 75, result.output
    lines = [line for line in result.stderr.splitlines() if "another crawl" in line]
    assert len(lines) == 1
    assert f"pid {pid} on {host}" in lines[0]
    assert web_requests(emu) == 0
    assert [r["status"] for r in _runs(url)] == ["running"]


def test_a_wrong_mode_is_one_line_and_exit_1(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = run(emu, "crawl", "--db", url, "--artist", "BTS", "--mode", "extended")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: the app is in development mode, not extended as --mode extended says: "
        "run again with --mode development (or --mode auto)"
    ]
    assert web_requests(emu) == 1
    fixed = run(emu, "crawl", "--db", url, "--artist", "BTS", "--mode", "development", "--depth", "albums")
    assert fixed.exit_code == 0, fixed.output
    engine = create_engine(url)
    with engine.connect() as conn:
        links = conn.execute(sa.select(sa.func.count()).select_from(schema.artist_albums)).scalar_one()
    engine.dispose()
    assert links > 0
