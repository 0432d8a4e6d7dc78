"""The API mode: learnt from answers the crawl needs anyway, saved at once, never poisoning the
database; a given ``--mode`` the API contradicts stops the run; every answered request is kept."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from crawl_helpers import T0, crawl, minimum_requests, new_engine, pick

from emulated import contents, differences, web_requests
from spotify_catalog.crawl import Depth
from spotify_catalog.errors import Stopped, WrongModeError
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema, state


def _mode(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return state.get_state(conn, "api_mode")


def _task_states(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.tasks.c.state, sa.func.count()).group_by(schema.tasks.c.state))
        return {s: int(n) for s, n in rows}


def test_the_mode_is_saved_the_moment_it_is_learnt(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    with pytest.raises(Stopped):
        crawl(emu, engine, [ArtistInput(i, True) for i in pick().ids], mode=None, budget=1)
    assert _mode(engine) == "development"
    with engine.connect() as conn:  # the one answered request, the first discography page, is written
        listed = conn.execute(sa.select(schema.artist_albums.c.artist_id).distinct()).scalars().all()
    assert listed == [pick().ids[0]]


@pytest.mark.parametrize("workers", [1, 3])
def test_a_small_budget_in_auto_mode_makes_progress_to_the_same_database(
    make_emulator: Any, tmp_path: Path, workers: int
) -> None:
    """The mode livelock once seen: 12 artists by id, auto mode, 7 requests a run, Development Mode."""
    ids = tuple(pick().ids) + tuple(make_emulator(profile="development").catalog.artist_ids()[100:110])
    artists = [ArtistInput(i, True) for i in ids]
    clean_emu = make_emulator(profile="development")
    clean = new_engine(tmp_path / "clean.db")
    crawl(clean_emu, clean, artists, mode=None, depth=Depth.TRACKS, workers=workers)

    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    stops = 0
    for _ in range(200):
        try:
            crawl(emu, engine, artists, mode=None, depth=Depth.TRACKS, budget=7, workers=workers)
        except Stopped:
            stops += 1
            continue
        break
    else:
        pytest.fail("the crawl did not finish in 200 runs")
    minimum = minimum_requests(emu.catalog, {}, ids, mode="development", depth=Depth.TRACKS)
    assert stops >= 30
    assert minimum <= web_requests(emu) <= minimum + workers * stops
    diff = differences(contents(engine, emu.url), contents(clean, clean_emu.url))
    assert not diff, "\n".join(diff)


@pytest.mark.parametrize(
    ("profile", "given", "inputs"),
    [
        ("development", "extended", "names"),
        ("development", "extended", "ids"),
        ("extended", "development", "names"),
        ("extended", "development", "ids"),
    ],
)
def test_a_wrong_mode_stops_at_once_and_the_right_one_completes(
    make_emulator: Any, tmp_path: Path, profile: str, given: str, inputs: str
) -> None:
    artists = [ArtistInput(n, False) for n in pick().names] if inputs == "names" else None
    if inputs == "ids":
        artists = [ArtistInput(i, True) for i in pick().ids]
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    with pytest.raises(WrongModeError) as caught:
        crawl(emu, engine, artists, mode=given, depth=Depth.TRACKS, workers=3)
    assert str(caught.value).endswith(f"run again with --mode {profile} (or --mode auto)")
    assert web_requests(emu) <= 3  # stopped at the first answer that shows the mode
    assert _task_states(engine).get("failed", 0) == 0
    assert _mode(engine) is None  # a contradicted mode is never saved

    crawl(emu, engine, artists, mode=profile, depth=Depth.TRACKS, workers=3)
    clean_emu = make_emulator(profile=profile)
    clean = new_engine(tmp_path / "clean.db")
    crawl(clean_emu, clean, artists, mode=profile, depth=Depth.TRACKS, workers=3)
    diff = differences(contents(engine, emu.url), contents(clean, clean_emu.url))
    assert not diff, "\n".join(diff)
    assert _mode(engine) == profile


def test_tasks_a_wrong_mode_failed_are_pending_again_when_the_mode_changes(
    make_emulator: Any, tmp_path: Path
) -> None:
    """A database an older version poisoned: ``api_mode`` extended saved from a wrong --mode, the
    discography page failed with 400 Invalid limit. The right mode fetches it; 404s stay failed."""
    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    artist = pick().ids[0]
    crawl(emu, engine, [ArtistInput(artist, True)], mode="development", depth=Depth.ARTISTS)
    with engine.begin() as conn:
        state.set_state(conn, "api_mode", "extended")
        key = f"{artist}|album,single,compilation,appears_on|0"
        state.finish_tasks(conn, "artist_albums", [key], now=T0, run_id=None, state="failed", error="400 x")
        gone = ["0000000000000000000000"]
        state.finish_tasks(conn, "artist", gone, now=T0, run_id=None, state="failed", error="not found")
    result = crawl(emu, engine, [ArtistInput(artist, True)], mode="development", depth=Depth.ALBUMS)
    assert result.requests == max(1, math.ceil(len(emu.catalog.artist_album_ids(artist)) / 10))
    with engine.connect() as conn:
        links = conn.execute(sa.select(sa.func.count()).select_from(schema.artist_albums)).scalar_one()
    assert links == len(emu.catalog.artist_album_ids(artist))
    assert _task_states(engine).get("failed") == 1  # the 404 stays failed
    assert _mode(engine) == "development"


def test_a_discography_page_corrects_a_saved_development_mode(make_emulator: Any, tmp_path: Path) -> None:
    """The app moved to Extended Quota Mode after a crawl saved development: the first discography page
    (albums with ``album_group``) corrects the saved mode at once, and the pages after it hold 50."""
    ids = pick().ids
    engine = new_engine(tmp_path / "c.db")
    crawl(
        make_emulator(profile="development"), engine, [ArtistInput(i, True) for i in ids], depth=Depth.ARTISTS
    )
    assert _mode(engine) == "development"
    emu = make_emulator(profile="extended")
    result = crawl(emu, engine, [ArtistInput(i, True) for i in ids], depth=Depth.ALBUMS)
    assert _mode(engine) == "extended"
    assert result.api_mode == "extended"
    pages = minimum_requests(emu.catalog, {}, ids, mode="extended", depth=Depth.ALBUMS) - math.ceil(
        len(ids) / 50
    )
    assert pages <= result.requests == web_requests(emu) <= pages + 1  # the first page, asked with 10
