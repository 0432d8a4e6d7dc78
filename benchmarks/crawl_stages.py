"""Where a crawl's CPU per request goes, stage by stage, each measured alone in one thread.

The crawl of ``load`` (the emulator in its own process, extended profile, no latency; 100 artists by
id, ``random.Random(42).sample`` of the catalog's; depth ``track-details``) runs once, recording every
answer its workers got. Then, in this process, one thread, no other work of the crawl around: **fetch**
(``/tracks?ids=`` requests of 50 of these artists' tracks through ``SpotifyClient``: HTTP and JSON
parsing; first, while the process is small),
**check** (``response_problem`` of every answer), **transform** (the handlers turning every answer into
rows) and **write** (every answer written by the crawler's own ``Writer`` into a new SQLite file, in
groups of ``--group`` answers, as group commit makes them while workers keep up). CPU is
``time.thread_time`` (user + system of this thread); each of fetch, check and transform is the best
of three passes, write one pass. Figures are per request of the crawl (answers / requests: an album with
its track pages is one answer of several requests); the fetch line is per ``/tracks`` request, most of
the crawl's. ``python -m benchmarks crawl_stages`` (``--group``).

The stages ignore what running them together adds: the workers and the writer taking turns with the
GIL, and the collector's bookkeeping (claims, progress).
"""

from __future__ import annotations

import argparse
import gc
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.load import CLIENT, crawl_ids, emulator
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import response_problem
from spotify_catalog.crawl import run as crawl_run
from spotify_catalog.crawl.writer import Answer, Writer
from spotify_catalog.emulator import Catalog
from spotify_catalog.settings import Settings
from spotify_catalog.storage import state
from spotify_catalog.storage.migrate import open_database
from spotify_catalog.transform import Rows


def best_of(passes: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return best


def record(url: str, ids: list[str], tmp: Path) -> tuple[list[Answer], int]:
    """The answers of one crawl (8 workers) and the requests it made."""
    answers: list[Answer] = []
    original = crawl_run.Crawler._answer

    def keep(self: crawl_run.Crawler, unit: Any) -> Answer:
        answer = original(self, unit)
        answers.append(answer)
        return answer

    crawl_run.Crawler._answer = keep  # type: ignore[method-assign]
    try:
        requests, _, _ = crawl_ids(url, f"sqlite:///{tmp / 'recorded.db'}", ids, 8, tmp)
    finally:
        crawl_run.Crawler._answer = original  # type: ignore[method-assign]
    return answers, requests


def write_all(answers: list[Answer], group: int, tmp: Path) -> tuple[float, int]:
    """CPU of writing every answer into a new SQLite file, the tasks queued first as the phases do."""
    engine = open_database(f"sqlite:///{tmp / 'written.db'}")
    when = answers[0].when
    fresh_since = when - timedelta(days=30)
    run_id = state.start_run(engine, command="crawl_stages", now=when)
    writer = Writer(
        engine, run_id=run_id, fresh_since=fresh_since, requests=lambda: 0, written=lambda _: None
    )
    with engine.begin() as conn:
        for kind in sorted({a.unit.kind for a in answers}):
            keys = [k for a in answers if a.unit.kind == kind for k in a.unit.keys]
            state.ensure_tasks(conn, kind, keys, now=when, fresh_since=fresh_since)
    started = time.thread_time()
    for start in range(0, len(answers), group):
        writer.write(answers[start : start + group])
    cpu = time.thread_time() - started
    engine.dispose()
    return cpu, writer.rows_written


def fetch_tracks(url: str, catalog: Catalog, ids: list[str], tmp: Path) -> tuple[float, int]:
    """Best CPU of three passes of ``/tracks?ids=`` requests of 50 of these artists' tracks (run first,
    before this process holds the recorded answers), and how many requests a pass makes."""
    tracks = sorted(
        {t for a in ids for album in catalog.artist_album_ids(a) for t in catalog.album_track_ids(album)}
    )
    batches = [",".join(tracks[start : start + 50]) for start in range(0, len(tracks), 50)]
    settings = Settings.load(
        {"client_id": CLIENT[0], "client_secret": CLIENT[1], "api_url": url + "/v1",
         "token_url": url + "/api/token", "mode": "extended"},
        environ={}, dotenv_path=tmp / "none.env",
    )  # fmt: skip
    with SpotifyClient(settings) as client:
        client.get("/tracks", params={"ids": batches[0]})  # the token
        cpu = best_of(3, lambda: [client.get("/tracks", params={"ids": ids}) for ids in batches])
    return cpu, len(batches)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="crawl_stages")
    parser.add_argument("--group", type=int, default=4, help="answers written per transaction")
    args = parser.parse_args(argv)
    logging.getLogger("spotify_catalog").setLevel(logging.ERROR)
    catalog = Catalog(42, 2000)
    ids = random.Random(42).sample(catalog.artist_ids(), 100)
    with emulator(0, 2000) as url, tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        fetch, tracks = fetch_tracks(url, catalog, ids, tmp)
        answers, requests = record(url, ids, tmp)
        gc.collect()
        gc.freeze()  # the recorded answers are not garbage: no collection walks them again
        check = best_of(3, lambda: [response_problem(a.unit.kind, a.result) for a in answers])
        transform = best_of(
            3, lambda: [a.unit.handle(a.unit.keys, a.result, Rows(), a.when) for a in answers]
        )
        write, rows = write_all(answers, args.group, tmp)

    def ms(seconds: float, per: int = requests) -> str:
        return f"{1000 * seconds / per:.2f} ms"

    print(f"{requests} requests, {len(answers)} answers; {rows} rows written, {args.group} answers a group\n")
    print("| stage | CPU | per request |")
    print("|---|---:|---:|")
    print(f"| fetch (HTTP + JSON), {tracks} `/tracks?ids=` of 50 | {fetch:.2f} s | {ms(fetch, tracks)} |")
    print(f"| check | {check:.2f} s | {ms(check)} |")
    print(f"| transform | {transform:.2f} s | {ms(transform)} |")
    print(f"| write (SQLite) | {write:.2f} s | {ms(write)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
