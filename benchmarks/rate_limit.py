"""Rate limit: a crawl against the emulator's rolling 30-second limit, its 429s and its wall time.

The emulator runs as ``spotify-catalog emulator --profile extended --latency-ms 50`` in its own process,
its rate limit set to ``--rate-limit`` requests per rolling 30 s. Each run crawls ``--ids`` artists by
id (``random.Random(42).sample`` of the catalog's), depth ``tracks``, mode extended, with the command
line (``spotify-catalog crawl``, one process each): 1, 8 and 16 workers into SQLite, then 2 processes of
8 workers sharing a PostgreSQL database (``SPOTIFY_CATALOG_TEST_POSTGRES_URL``; skipped when it cannot be
reached). Every run uses the same ledger (``--ledger``: a database on that server, else a SQLite file),
so a run starts with the pace the runs before it learnt; ``--cold`` repeats a run (``16``) with a ledger
of its own that has learnt nothing. The emulator is reset before each run.

Prints per run: the Web API requests the emulator admitted, the 429s it answered (in all, and the most
within any 30 s, from its counters read every quarter second), the wall time (the processes' start
included), the time from the emulator's first request to the end, the bound (the shortest time the
limit allows for that many requests: the first ``limit`` at once, each later ``limit`` 30 s after, the
last ones taking their latency, as many at a time as there are workers) and the ratio of the time from
the first request to the bound. Goals: at most one 429 in any 30 s, and a ratio of at most 1.05.
``python -m benchmarks rate_limit`` (about 8 minutes: the runs wait on the limit).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks import _servers, shared_queue
from benchmarks.load import emulator, reset
from spotify_catalog.emulator import Catalog

WINDOW = 30.0
LEFT = 32.0
"""Seconds between two runs under the limit: what a run sent counts for the next (in its ledger) until
it has left the window, as it would on Spotify, where the emulator's reset forgets it at once."""
_last_end = [float("-inf")]


@dataclass
class Run:
    name: str
    admitted: int
    refused: int
    busiest: int  # most 429s within any 30 s
    seconds: float
    requesting: float  # from the first request the emulator counted to the end
    bound: float
    unlimited: float | None = None  # the same crawl's time from its first request, without the limit
    floor: float | None = None  # the bound with the last window's requests at the crawl's own speed

    @property
    def ratio(self) -> float:
        return self.requesting / self.bound if self.bound else float("nan")


def bound(admitted: int, limit: int, latency: float, workers: int) -> float:
    """The shortest time ``admitted`` requests take under ``limit`` per rolling 30 s with ``workers``
    making one request at a time, each taking ``latency``: request ``k`` (from 0) cannot be admitted
    before ``30 * (k // limit)`` s, and the last window's requests take their latency, ``workers`` at
    a time."""
    if not admitted:
        return 0.0
    windows = (admitted - 1) // limit if limit else 0
    last = admitted - windows * limit
    return WINDOW * windows + math.ceil(last / workers) * latency


def floor(admitted: int, limit: int, seconds_a_request: float) -> float:
    """The bound with the last window's requests made at the crawl's own speed without the limit."""
    windows = (admitted - 1) // limit
    return WINDOW * windows + (admitted - windows * limit) * seconds_a_request


class Refusals:
    """The emulator's count of 429s, read every ``every`` seconds while a run lasts."""

    def __init__(self, url: str, every: float = 0.25) -> None:
        self.url, self.every = url, every
        self.samples: list[tuple[float, int]] = []
        self.first_request: float | None = None  # when the emulator had first counted a request
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _count(self) -> int:
        stats = httpx.get(self.url + "/_emulator/stats").json()
        if self.first_request is None and stats["by_route"].keys() - {"POST /api/token"}:
            self.first_request = time.monotonic()
        return int(stats["by_status"].get("429", 0))

    def _poll(self) -> None:
        while not self._done.wait(self.every):
            self.samples.append((time.monotonic(), self._count()))

    def __enter__(self) -> Refusals:
        self.samples.append((time.monotonic(), self._count()))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self._count()))

    def busiest(self) -> int:
        """The most 429s counted within any 30 s (from the samples: a window may span a sample more)."""
        most = 0
        for i, (started, before) in enumerate(self.samples):
            later = [n for t, n in self.samples[i:] if t - started <= WINDOW]
            most = max(most, later[-1] - before)
        return most


@contextmanager
def database(backend: str, tmp: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'{name}-{time.monotonic_ns()}.db'}"
        return
    with _servers.fresh_database(backend) as url:
        yield url


Start = tuple[str, str, Path, int, int]
"""A run's crawl database, ledger, artists file, workers, processes."""


def measure(api: str, name: str, limit: int, latency: float, start: Start) -> Run:
    """One run: the emulator reset, the crawl, what the emulator counted."""
    reset(api, rate_limit=limit)
    db, ledger, artists_file, workers, processes = start
    with Refusals(api) as refusals:
        seconds = shared_queue.run(db, api, artists_file, processes, workers, mode="extended", ledger=ledger)
    ended = time.monotonic()
    requesting = ended - (refusals.first_request or ended)
    stats = httpx.get(api + "/_emulator/stats").json()
    refused = int(stats["by_status"].get("429", 0))
    admitted = int(stats["requests"]) - int(stats["by_route"].get("POST /api/token", 0)) - refused
    least = bound(admitted, limit, latency, workers * processes)
    run = Run(name, admitted, refused, refusals.busiest(), seconds, requesting, least)
    print(f"{name}: {admitted} requests, {refused} x 429, {seconds:.1f} s", file=sys.stderr, flush=True)
    return run


def with_own_speed(api: str, limit: int, latency: float, start: Start, tmp: Path) -> Run:
    """The run of ``start`` under the limit, after the same crawl without it (a ledger of its own,
    nothing learnt; a database of the same backend) for the crawl's own speed."""
    db, _, artists_file, workers, processes = start
    backend = "postgresql" if db.startswith("postgresql") else "sqlite"
    with database(backend, tmp, "own") as own_db, database("sqlite", tmp, "own-ledger") as own_ledger:
        alone = measure(
            api, "without the limit", 0, latency, (own_db, own_ledger, artists_file, workers, processes)
        )
    name = f"{workers} worker(s)" if processes == 1 else f"{processes} processes x {workers} workers"
    time.sleep(max(0.0, _last_end[0] + LEFT - time.monotonic()))
    run = measure(api, name, limit, latency, start)
    _last_end[0] = time.monotonic()
    run.unlimited = alone.requesting
    run.floor = floor(run.admitted, limit, alone.requesting / alone.admitted)
    return run


def table(runs: list[Run]) -> str:
    lines = [
        "| run | requests | 429s | most 429s in 30 s | wall | from the first request | bound | ratio "
        "| without the limit | floor | to the floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        own = "| - | - | - |"
        if r.unlimited is not None and r.floor:
            own = f"| {r.unlimited:.1f} s | {r.floor:.1f} s | {r.requesting / r.floor:.2f} |"
        lines.append(
            f"| {r.name} | {r.admitted} | {r.refused} | {r.busiest} | {r.seconds:.1f} s | "
            f"{r.requesting:.1f} s | {r.bound:.1f} s | {r.ratio:.2f} {own}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="rate_limit")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rate-limit", type=int, default=150, help="per rolling 30 s")
    parser.add_argument("--ids", type=int, default=100, help="artists by id")
    parser.add_argument("--workers", default="1,8,16", help="single processes into SQLite")
    parser.add_argument("--processes", type=int, default=2, help="of 8 workers on PostgreSQL; 0: none")
    parser.add_argument("--cold", default="16", help="workers of runs with a ledger of their own")
    args = parser.parse_args(argv)
    latency = args.latency_ms / 1000
    ids = random.Random(42).sample(Catalog(42, 2000).artist_ids(), args.ids)
    postgres = _servers.unreachable("postgresql") if args.processes else "not asked for"
    if postgres and args.processes:
        print(f"postgresql skipped: {postgres}", file=sys.stderr)
    runs: list[Run] = []
    with emulator(args.latency_ms, 2000) as api, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        artists_file = tmp / "artists.txt"
        artists_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
        with database("sqlite" if postgres else "postgresql", tmp, "ledger") as ledger:
            for workers in (int(w) for w in args.workers.split(",") if w):
                with database("sqlite", tmp, "crawl") as db:
                    start = (db, ledger, artists_file, workers, 1)
                    runs.append(with_own_speed(api, args.rate_limit, latency, start, tmp))
            if not postgres:
                with database("postgresql", tmp, "crawl") as db:
                    start = (db, ledger, artists_file, 8, args.processes)
                    runs.append(with_own_speed(api, args.rate_limit, latency, start, tmp))
                    runs[-1].name += ", PostgreSQL"
        for workers in (int(w) for w in args.cold.split(",") if w):
            with database("sqlite", tmp, "crawl") as db, database("sqlite", tmp, "ledger") as ledger:
                start = (db, ledger, artists_file, workers, 1)
                runs.append(
                    measure(api, f"{workers} workers, nothing learnt", args.rate_limit, latency, start)
                )
    print(f"\nemulator: extended profile, latency {args.latency_ms:g} ms, rate limit {args.rate_limit} "
          f"per rolling 30 s; {len(ids)} artists by id, depth tracks, one ledger for the runs in "
          "order\n")  # fmt: skip
    print(table(runs))
    print("\nwall: the crawl processes' time, their start included; ratio: the time from the first "
          "request (within 0.25 s) to the end, to the bound (the first `limit` requests at once, each later "
          "`limit` 30 s after, the last ones taking their latency, a worker each); goals: at most one 429 "
          "in any 30 s, a ratio of at most 1.05")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
