"""The app owner's Premium lapsing mid-crawl (every Web API call answers Spotify's plain-text 403,
reference §1.11: zmb3/spotify#301): the run stops (exit 75) with one line and a time to run again an
hour later, no task failed and no mode changed; once the Premium is back, the rerun ends as a clean
crawl does."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from crawl_helpers import GROUPS, T0, crawl, new_engine, pick

from emulated import contents, differences, emulator_settings, table_contents
from spotify_catalog.cli import main
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth, Progress
from spotify_catalog.errors import EXIT_TEMPFAIL, PREMIUM_LAPSED, Stopped
from spotify_catalog.storage import schema, state

LAPSE_AFTER = 6
"""Requests answered before the owner's Premium lapses."""


def _set_premium(emu: Any, active: bool) -> None:
    httpx.post(f"{emu.url}/_emulator/config", json={"owner_premium": active}).raise_for_status()


def _everything_but_runs(engine: sa.Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {
            t.name: table_contents(conn, t, exclude=())
            for t in schema.metadata.sorted_tables
            if t.name != "_runs"
        }


def _crawl(emu: Any, engine: sa.Engine, at: datetime, lapse_after: int | None = None) -> str:
    """A crawl (auto mode, 3 workers) at ``at`` (the crawl's clock and the client's alike); with
    ``lapse_after``, the owner's Premium lapses once that many requests were answered."""

    def lapse(progress: Progress) -> None:
        if lapse_after is not None and progress.requests >= lapse_after:
            _set_premium(emu, False)

    options = CrawlOptions(artists=pick().inputs, depth=Depth.TRACKS, workers=3, include_groups=GROUPS)
    with SpotifyClient(emulator_settings(emu), wall_clock=lambda: at) as client:
        return (
            Crawler(engine, client, options, now=lambda: at, command="test", on_progress=lapse).run().status
        )


def test_a_lapsed_premium_stops_the_crawl_and_the_rerun_ends_as_a_clean_one(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    with pytest.raises(Stopped) as caught:
        _crawl(emu, engine, T0, lapse_after=LAPSE_AFTER)
    stop = caught.value
    assert stop.exit_code == EXIT_TEMPFAIL
    assert str(stop).startswith(f"stopped: {PREMIUM_LAPSED}; continue after ")
    assert "\n" not in str(stop)
    assert stop.retry_at == T0 + timedelta(hours=1)
    with engine.connect() as conn:
        failed = conn.execute(
            sa.select(sa.func.count()).select_from(schema.tasks).where(schema.tasks.c.error.is_not(None))
        ).scalar_one()
        assert failed == 0  # no task failed, none carries the 403
        assert state.get_state(conn, "api_mode") == "development"  # learnt before, left alone
        run = conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id.desc())).mappings().first()
    assert run is not None
    assert run["status"] == "stopped"
    assert run["reason"].startswith(PREMIUM_LAPSED)

    # still lapsed an hour later: the run row is all that changes
    before = _everything_but_runs(engine)
    with pytest.raises(Stopped):
        _crawl(emu, engine, T0 + timedelta(hours=1))
    assert _everything_but_runs(engine) == before

    _set_premium(emu, True)
    assert _crawl(emu, engine, T0 + timedelta(hours=2)) == "done"
    clean_emu = make_emulator(profile="development")
    clean = new_engine(tmp_path / "clean.db")
    crawl(clean_emu, clean, mode=None, depth=Depth.TRACKS, workers=3)
    diff = differences(contents(engine, emu.url), contents(clean, clean_emu.url))
    assert not diff, "\n".join(diff)
    engine.dispose()
    clean.dispose()


def test_the_command_line_says_the_lapse_in_one_line_and_status_shows_it(
    make_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPOTIFY_CATALOG_MODE", raising=False)
    emu = make_emulator(profile="development", owner_premium=False)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    environment = {
        "SPOTIFY_CLIENT_ID": "emulator-client-id",
        "SPOTIFY_CLIENT_SECRET": "emulator-client-secret",
    }
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    result = CliRunner().invoke(main, [*base, "crawl", "--db", db, *pick().args()], env=environment)
    assert result.exit_code == EXIT_TEMPFAIL, result.output
    stops = [line for line in result.stderr.splitlines() if line.startswith("stopped:")]
    assert len(stops) == 1, result.stderr
    assert stops[0].startswith(f"stopped: {PREMIUM_LAPSED}; continue after ")
    assert "Traceback" not in result.stderr
    shown = CliRunner().invoke(main, ["status", "--db", db], env=environment)
    assert shown.exit_code == 0, shown.output
    assert f"stopped: {PREMIUM_LAPSED}" in shown.stdout
    assert "run again after " in shown.stdout
