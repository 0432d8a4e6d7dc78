"""A crawl of 8 workers against the emulator's rolling 30-second rate limit: the gate holds every
worker on a 429, so the emulator answers at most one 429 in any 30 s window (the first window of a
client whose pace is not known yet excepted: the requests in flight when it fills are refused too), and
the pace learnt is the next run's from its first request. Fake time: the emulator's clock is the
client's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from crawl_helpers import T0, new_engine, pick

from emulated import emulator_settings
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, CrawlResult, Depth
from spotify_catalog.pace_store import PaceStore
from threaded_time import SharedTime

LIMIT = 12


def _crawl(emu: Any, path: Path, ledger: str, time: SharedTime) -> tuple[CrawlResult, int]:
    """The crawl's result, and the 429 events its gate saw."""
    options = CrawlOptions(artists=pick().inputs, depth=Depth.TRACKS, workers=8)
    store = PaceStore(ledger, "emulator-client-id", wall_clock=time.wall)
    engine = new_engine(path)
    try:
        with SpotifyClient(
            emulator_settings(emu, "development", max_wait=60),
            clock=time.clock,
            sleep=time.sleep,
            wall_clock=time.wall,
            pace_store=store,
        ) as client:
            result = Crawler(engine, client, options, now=lambda: T0, command="test").run()
            return result, client.gate.events
    finally:
        store.close()
        engine.dispose()


def _refused(emu: Any) -> int:
    return int(emu.stats()["by_status"].get("429", 0))


def test_eight_workers_meet_one_429_per_window_and_the_next_run_none(
    make_emulator: Any, tmp_path: Path
) -> None:
    time = SharedTime(pause=0.02)
    emu = make_emulator(rate_limit=LIMIT, clock=time.clock)
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    first, events = _crawl(emu, tmp_path / "first.db", ledger, time)
    assert first.status == "done"
    first_refused = _refused(emu)
    admitted = first.requests - first_refused
    assert admitted > 2 * LIMIT  # the limit was met, several windows long
    windows = math.ceil((time.now - 1000.0) / 30)
    # the first window: the requests in flight when it filled (8 workers), then one a window at most
    assert 1 <= first_refused <= 8 + windows - 1, (first_refused, windows)
    assert events <= windows
    with PaceStoreReader(ledger) as pace:
        assert 1 <= pace <= LIMIT  # learnt: what the window admitted

    emu.reset()  # counters and the window
    started = time.now
    second, _ = _crawl(emu, tmp_path / "second.db", ledger, time)
    assert second.status == "done"
    assert second.requests == admitted
    assert _refused(emu) == 0  # paced from its first request
    # and no slower than the limit allows, give or take a window (the pace may be a little low)
    assert time.now - started <= 30 * (admitted // LIMIT + 2) + 1


class PaceStoreReader:
    """The pace a ledger holds for the emulator's client id."""

    def __init__(self, url: str) -> None:
        self.store = PaceStore(url, "emulator-client-id")

    def __enter__(self) -> int:
        pace = self.store.pace()
        assert pace is not None
        return pace

    def __exit__(self, *exc: object) -> None:
        self.store.close()
