"""Stopping and resuming: a request budget, the quota, Ctrl-C; the same data in the end, whatever the
number of workers or the database backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from crawl_helpers import crawl, new_engine, pick

from emulated import contents, differences, emulator_settings, web_requests
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.errors import Interrupted, Stopped, WrongModeError
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database


def _runs(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id)).mappings()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Uninterrupted crawls (depth track-details) per profile: their table contents."""
    from spotify_catalog.emulator import EmulatorConfig, serve_in_thread

    found = {}
    for profile in ("development", "extended"):
        with serve_in_thread(EmulatorConfig(profile=profile, artists=200)) as emu:
            engine = new_engine(tmp_path_factory.mktemp("ref") / f"{profile}.db")
            crawl(emu, engine, mode=profile, depth=Depth.TRACK_DETAILS, workers=4)
            found[profile] = contents(engine, emu.url)
            engine.dispose()
    return found


@pytest.mark.parametrize(("profile", "budget"), [("development", 97), ("extended", 4)])
def test_budget_stops_and_resumes_to_the_same_data(
    make_emulator: Any, tmp_path: Path, reference: dict[str, Any], profile: str, budget: int
) -> None:
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    messages: list[str] = []
    while True:
        start = web_requests(emu)
        try:
            crawl(emu, engine, mode=profile, depth=Depth.TRACK_DETAILS, budget=budget, workers=3)
        except Stopped as exc:
            messages.append(str(exc))
            assert web_requests(emu) - start <= budget
            continue
        break
    stops = len(messages)
    assert stops >= 3
    assert all("budget" in m and "run the same command again" in m for m in messages)
    runs = _runs(engine)
    assert [r["status"] for r in runs] == ["stopped"] * stops + ["done"]
    assert all(r["requests"] <= budget for r in runs)
    assert sum(r["requests"] for r in runs) == web_requests(emu)
    diff = differences(contents(engine, emu.url), reference[profile])
    assert not diff, "\n".join(diff)
    engine.dispose()


def test_ctrl_c_is_recorded_and_the_rerun_completes(
    make_emulator: Any, tmp_path: Path, reference: dict[str, Any]
) -> None:
    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    calls = 0

    def interrupt_at_the_40th(_progress: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 40:
            raise KeyboardInterrupt

    options = CrawlOptions(artists=pick().inputs, depth=Depth.TRACK_DETAILS, workers=2)
    with SpotifyClient(emulator_settings(emu, "development")) as client:
        crawler = Crawler(engine, client, options, on_progress=interrupt_at_the_40th, command="test")
        with pytest.raises(Interrupted) as info:
            crawler.run()
    assert info.value.exit_code == 130
    assert _runs(engine)[-1]["status"] == "interrupted"
    crawl(emu, engine, mode="development", depth=Depth.TRACK_DETAILS)
    assert contents(engine, emu.url) == reference["development"]
    engine.dispose()


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_worker_count_does_not_change_the_data(
    make_emulator: Any, tmp_path: Path, reference: dict[str, Any], profile: str
) -> None:
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    crawl(emu, engine, mode=profile, depth=Depth.TRACK_DETAILS, workers=8)
    diff = differences(contents(engine, emu.url), reference[profile])
    assert not diff, "\n".join(diff)
    one = new_engine(tmp_path / "one.db")
    crawl(emu, one, mode=profile, depth=Depth.TRACK_DETAILS, workers=1)
    assert contents(one, emu.url) == reference[profile]
    engine.dispose()
    one.dispose()


def test_backends_hold_the_same_data(make_emulator: Any, db_url: str, reference: dict[str, Any]) -> None:
    emu = make_emulator(profile="extended")
    engine = open_database(db_url)
    result = crawl(emu, engine, mode="extended", depth=Depth.TRACK_DETAILS, workers=4)
    assert result.status == "done"
    got = contents(engine, emu.url)
    assert got == reference["extended"]
    assert len(got["tracks"]) > 250
    assert crawl(emu, engine, mode="extended", depth=Depth.TRACK_DETAILS).requests == 0
    engine.dispose()


def test_server_faults_are_retried_to_the_same_data(
    make_emulator: Any, tmp_path: Path, reference: dict[str, Any]
) -> None:
    emu = make_emulator(profile="development", fault_rate=0.2)
    engine = new_engine(tmp_path / "c.db")
    result = crawl(
        emu, engine, mode="development", depth=Depth.TRACK_DETAILS, workers=4, sleep=lambda s: None
    )
    assert result.status == "done"
    faults = sum(n for status, n in emu.stats()["by_status"].items() if status != "200")
    assert faults > 20
    diff = differences(contents(engine, emu.url), reference["development"])
    assert not diff, "\n".join(diff)
    engine.dispose()


def test_a_batch_refused_in_extended_mode_fails_the_run_with_a_hint(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    with pytest.raises(WrongModeError, match=r"run again with --mode development"):
        crawl(emu, engine, [ArtistInput(pick().ids[0], True)], mode="extended")
    assert web_requests(emu) == 1
    run = _runs(engine)[-1]
    assert run["status"] == "failed"
    assert "development mode, not extended" in run["reason"]
    with engine.connect() as conn:
        states = conn.execute(sa.select(schema.tasks.c.state)).scalars().all()
    assert states == ["pending"]  # not given up: the right mode will fetch it
    engine.dispose()


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_unknown_ids_are_reported_and_not_asked_again(
    make_emulator: Any, tmp_path: Path, profile: str
) -> None:
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    unknown = "0000000000000000000000"
    artists = [ArtistInput(unknown, True), ArtistInput(pick().ids[0], True)]
    result = crawl(emu, engine, artists, mode=profile, depth=Depth.ALBUMS)
    assert result.not_found == [unknown]
    assert result.status == "done"
    assert crawl(emu, engine, artists, mode=profile, depth=Depth.ALBUMS).requests == 0
    with engine.connect() as conn:
        ids = (
            conn.execute(sa.select(schema.artists.c.id).where(schema.artists.c.detail == "full"))
            .scalars()
            .all()
        )
    assert ids == [pick().ids[0]]
    engine.dispose()
