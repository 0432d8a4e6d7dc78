"""Helpers of the status tests: a crawl of the emulator that may stop at a request budget, artists
with discographies of every size, and the ``status`` command."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner, Result

from emulated import emulator_settings, web_requests
from spotify_catalog.cli import main
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.errors import Stopped
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage.migrate import open_database

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@functools.lru_cache
def sample(step: int = 8, names: int = 4, seed: int = 42, artists: int = 200) -> tuple[ArtistInput, ...]:
    """Every ``step``-th artist of the emulator's catalog (discographies of every size), the first
    ``names`` of them by a name unique in the catalog, the others by id."""
    from spotify_catalog.emulator import Catalog
    from spotify_catalog.transform import normalize_name

    catalog = Catalog(seed=seed, artists=artists)
    all_names = catalog.artist_names()
    counts: dict[str, int] = {}
    for name in all_names:
        counts[normalize_name(name)] = counts.get(normalize_name(name), 0) + 1
    chosen: list[ArtistInput] = []
    for position, (artist_id, name) in enumerate(zip(catalog.artist_ids(), all_names, strict=True)):
        if position % step != step - 1:
            continue
        by_name = sum(1 for a in chosen if not a.is_id) < names and counts[normalize_name(name)] == 1
        chosen.append(ArtistInput(name, False) if by_name else ArtistInput(artist_id, True))
    return tuple(chosen)


def command(depth: Depth) -> str:
    """The command line a crawl records in ``_runs``."""
    return f"spotify-catalog crawl --depth {depth.label}"


def crawl(
    emu: Any,
    engine: sa.Engine,
    artists: Sequence[ArtistInput],
    *,
    mode: str,
    depth: Depth = Depth.TRACKS,
    budget: int | None = None,
    now: datetime = T0,
    workers: int = 1,
) -> int:
    """Crawl (stopping quietly at ``budget``); the Web API requests the emulator answered."""
    before = web_requests(emu)
    options = CrawlOptions(artists=tuple(artists), depth=depth, workers=workers)
    with SpotifyClient(emulator_settings(emu, mode), request_budget=budget) as client:
        try:
            Crawler(engine, client, options, now=lambda: now, command=command(depth)).run()
        except Stopped:
            pass
    return web_requests(emu) - before


def new_engine(path: Path) -> sa.Engine:
    return open_database(f"sqlite:///{path}")


def status(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        main, ["status", *args], env={"SPOTIFY_CATALOG_DAILY_BUDGET": "", **(env or {})}
    )


def status_json(url: str, *args: str) -> dict[str, Any]:
    result = status("--db", url, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data
