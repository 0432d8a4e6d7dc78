"""Load: the collector against a slow API, its CPU per request, and the same crawl done the lesson's way.

The emulator runs as ``spotify-catalog emulator --profile extended --latency-ms 50`` in its own process.
First the crawl whose CPU per request is guarded: ``--ids`` artists by id (``random.Random(42).sample``
of the catalog's), depth ``track-details``, in this process, with 1, 8 and 16 workers into SQLite and 8
and 16 into PostgreSQL and MariaDB (the servers of ``SPOTIFY_CATALOG_TEST_POSTGRES_URL`` /
``SPOTIFY_CATALOG_TEST_MYSQL_URL``, a fresh database each; skipped when they cannot be reached): wall
time against the bound ``requests x latency / workers`` and the CPU the crawling process used
(``getrusage(RUSAGE_SELF)``: user + system; the emulator is another process), per request; then the
guard line: that CPU per request on SQLite with 8 workers against ``GUARD_MS`` (a change that raises
it above needs a reason in its commit). Then the collector crawls ``--artists`` artists (by name; small
discographies) at depth ``track-details`` with ``--workers`` workers: requests/s against the bound
``workers / latency``; then with 16 workers under the emulator's rate limit (``--rate-limit`` per
30 s): requests/s against what a rolling 30 s window admits in that time (``limit * (1 + T/30) / T``).
Finally a subset (``--lesson-artists``) is crawled both ways, for the request counts: the collector
with one worker, and the lesson's way (one request at a time, single-item calls, no reuse of embedded
objects: search each name, GET each artist, each album page, GET each album, each further track page,
GET each track). Prints a markdown table. ``python -m benchmarks load`` (about 5 minutes on 2 cores;
``--only-ids`` for the first part).
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks import _servers
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth, collecting_less
from spotify_catalog.emulator import Catalog
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.settings import Settings
from spotify_catalog.storage.migrate import open_database
from spotify_catalog.transform import normalize_name

CLIENT = ("emulator-client-id", "emulator-client-secret")
GUARD_MS = 8.0  # the crawl's CPU per request, SQLite, 8 workers: above it, a change needs a reason
GUARD_PREFIX = "guard:"


@dataclass
class Row:
    way: str
    workers: int
    artists: int
    requests: int
    seconds: float
    bound: float | None  # requests/s the setting allows at best
    note: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@contextmanager
def emulator(latency_ms: float, artists: int, profile: str = "extended") -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotify_catalog", "-q", "emulator", "--profile", profile,
         "--latency-ms", str(latency_ms), "--artists", str(artists)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def web_requests(url: str) -> int:
    stats = httpx.get(url + "/_emulator/stats").json()
    return int(stats["requests"]) - int(stats["by_route"].get("POST /api/token", 0))


def reset(url: str, **config: Any) -> None:
    httpx.post(url + "/_emulator/config", json=config).raise_for_status()
    httpx.post(url + "/_emulator/reset").raise_for_status()


def pick_names(catalog: Catalog, count: int, max_albums: int = 10) -> list[str]:
    """Names unique in the catalog, of artists with small discographies."""
    counts = Counter(normalize_name(n) for n in catalog.artist_names())
    names = []
    for artist_id, name in zip(catalog.artist_ids(), catalog.artist_names(), strict=True):
        if counts[normalize_name(name)] == 1 and len(catalog.artist_album_ids(artist_id)) <= max_albums:
            names.append(name)
        if len(names) == count:
            break
    return names


def collector(url: str, names: list[str], workers: int, directory: Path) -> tuple[int, float]:
    """(Web API requests, seconds) of one crawl into a new SQLite database."""
    settings = Settings.load(
        {"client_id": CLIENT[0], "client_secret": CLIENT[1], "api_url": url + "/v1",
         "token_url": url + "/api/token", "mode": "extended", "max_wait": 60},
        environ={}, dotenv_path=directory / "none.env",
    )  # fmt: skip
    engine = open_database(f"sqlite:///{directory / f'crawl-{workers}-{time.monotonic_ns()}.db'}")
    options = CrawlOptions(
        artists=tuple(ArtistInput(n, False) for n in names), depth=Depth.TRACK_DETAILS, workers=workers
    )
    before = web_requests(url)
    started = time.perf_counter()
    with SpotifyClient(settings) as client, collecting_less():  # as the command line crawls
        result = Crawler(engine, client, options).run()
    seconds = time.perf_counter() - started
    engine.dispose()
    assert result.status == "done", result
    return web_requests(url) - before, seconds


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class IdRow:
    backend: str
    workers: int
    requests: int
    seconds: float
    cpu: float  # seconds of CPU of this process (user + system) during the crawl
    latency: float

    @property
    def bound(self) -> float:
        """The shortest wall time ``workers`` can take for ``requests`` at ``latency``."""
        return self.requests * self.latency / self.workers


def crawl_ids(
    url: str, database: str, ids: list[str], workers: int, directory: Path
) -> tuple[int, float, float]:
    """(Web API requests, seconds, CPU seconds) of one crawl by id into the new database ``database``."""
    settings = Settings.load(
        {"client_id": CLIENT[0], "client_secret": CLIENT[1], "api_url": url + "/v1",
         "token_url": url + "/api/token", "mode": "extended", "max_wait": 60},
        environ={}, dotenv_path=directory / "none.env",
    )  # fmt: skip
    engine = open_database(database)
    options = CrawlOptions(
        artists=tuple(ArtistInput(i, True) for i in ids), depth=Depth.TRACK_DETAILS, workers=workers
    )
    before = web_requests(url)
    cpu = cpu_seconds()
    started = time.perf_counter()
    with SpotifyClient(settings) as client, collecting_less():  # as the command line crawls
        result = Crawler(engine, client, options).run()
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    engine.dispose()
    assert result.status == "done", result
    return web_requests(url) - before, seconds, cpu


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a new empty database of ``backend`` (dropped at the end)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'ids-{time.monotonic_ns()}.db'}"
        return
    with _servers.fresh_database(backend) as url:
        yield url


def reachable(backend: str) -> str | None:
    """Why ``backend``'s server cannot be used, or ``None``."""
    return None if backend == "sqlite" else _servers.unreachable(backend)


def id_table(rows: list[IdRow]) -> str:
    lines = [
        "| backend | workers | requests | wall | bound (requests x latency / workers) | share of the bound "
        "| CPU | CPU per request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.workers} | {r.requests} | {r.seconds:.1f} s | {r.bound:.1f} s | "
            f"{100 * r.bound / r.seconds:.0f} % | {r.cpu:.1f} s | {1000 * r.cpu / r.requests:.1f} ms |"
        )
    return "\n".join(lines)


def guard_line(rows: list[IdRow], guarded: bool) -> str:
    """The guarded figure: CPU per request on SQLite with 8 workers, against ``GUARD_MS``; ``guarded``:
    whether the crawl was the guarded one (the defaults: 100 artists, 50 ms of latency)."""
    row = next((r for r in rows if r.backend == "sqlite" and r.workers == 8), None)
    if row is None:
        return f"{GUARD_PREFIX} CPU per request, SQLite, 8 workers: not measured (no sqlite:8 run)"
    ms = 1000 * row.cpu / row.requests
    verdict = ("within" if ms <= GUARD_MS else "ABOVE") + f" the guard, {GUARD_MS:g} ms"
    if not guarded:
        verdict = f"not the guarded crawl of 100 artists at 50 ms: the guard, {GUARD_MS:g} ms, does not apply"
    return f"{GUARD_PREFIX} CPU per request, SQLite, 8 workers: {ms:.1f} ms ({verdict})"


def by_id(url: str, ids: list[str], runs: list[tuple[str, int]], latency: float, tmp: Path) -> list[IdRow]:
    rows: list[IdRow] = []
    skipped: dict[str, str | None] = {}
    for backend, workers in runs:
        if backend not in skipped:
            skipped[backend] = reachable(backend)
            if skipped[backend]:
                print(f"{backend} skipped: {skipped[backend]}", file=sys.stderr)
        if skipped[backend]:
            continue
        reset(url, rate_limit=0)
        with fresh_database(backend, tmp) as database:
            requests, seconds, cpu = crawl_ids(url, database, ids, workers, tmp)
        rows.append(IdRow(backend, workers, requests, seconds, cpu, latency))
        print(
            f"by id, {backend}, {workers} workers: {requests} requests in {seconds:.1f} s, "
            f"CPU {cpu:.1f} s ({1000 * cpu / requests:.1f} ms a request)",
            file=sys.stderr,
            flush=True,
        )
    return rows


def lesson(url: str, names: list[str]) -> tuple[int, float]:
    """The lesson's crawl: one request at a time, one item per call, nothing reused."""
    requests = 0
    started = time.perf_counter()
    with httpx.Client(base_url=url + "/v1") as http:
        token = httpx.post(url + "/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

        def get(path: str, **params: Any) -> Any:
            nonlocal requests
            requests += 1
            answer = http.get(path, params=params)
            answer.raise_for_status()
            return answer.json()

        for name in names:
            found = get("/search", q=name, type="artist", limit=1)["artists"]["items"]
            if not found:
                continue
            artist = get(f"/artists/{found[0]['id']}")
            album_ids, offset = [], 0
            while True:
                page = get(f"/artists/{artist['id']}/albums", offset=offset)
                album_ids += [a["id"] for a in page["items"]]
                offset += len(page["items"])
                if not page["next"]:
                    break
            for album_id in album_ids:
                album = get(f"/albums/{album_id}")
                track_ids = [t["id"] for t in album["tracks"]["items"]]
                offset = len(track_ids)
                while offset < album["tracks"]["total"]:
                    page = get(f"/albums/{album_id}/tracks", offset=offset, limit=50)
                    track_ids += [t["id"] for t in page["items"]]
                    offset += len(page["items"])
                for track_id in track_ids:
                    get(f"/tracks/{track_id}")
    return requests, time.perf_counter() - started


def table(rows: list[Row], latency_ms: float) -> str:
    lines = [
        "| way | workers | artists | requests | seconds | requests/s | bound (req/s) | of the bound | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        bound = f"{r.bound:.0f}" if r.bound else "-"
        share = f"{100 * r.rate / r.bound:.0f} %" if r.bound else "-"
        lines.append(
            f"| {r.way} | {r.workers} | {r.artists} | {r.requests} | {r.seconds:.1f} | {r.rate:.1f} | "
            f"{bound} | {share} | {r.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="load")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", default="1,4,8,16")
    parser.add_argument("--ids", type=int, default=100, help="artists by id of the first part")
    parser.add_argument(
        "--id-runs",
        default="sqlite:1,sqlite:8,sqlite:16,postgresql:8,postgresql:16,mariadb:8,mariadb:16",
        help="backend:workers of the first part",
    )
    parser.add_argument("--only-ids", action="store_true", help="the first part only")
    parser.add_argument("--artists", type=int, default=100)
    parser.add_argument("--rate-limit", type=int, default=200, help="per 30 s; 0: skip that run")
    parser.add_argument("--lesson-artists", type=int, default=10)
    args = parser.parse_args(argv)
    logging.getLogger("spotify_catalog").setLevel(logging.ERROR)  # 429 retries are expected here
    latency = args.latency_ms / 1000
    catalog = Catalog(42, 2000)
    names = pick_names(catalog, args.artists)
    ids = random.Random(42).sample(catalog.artist_ids(), args.ids)
    runs = [(b, int(w)) for b, _, w in (r.partition(":") for r in args.id_runs.split(",") if r)]
    rows: list[Row] = []
    with emulator(args.latency_ms, 2000) as url, tempfile.TemporaryDirectory() as tmp:
        id_rows = by_id(url, ids, runs, latency, Path(tmp))
        print(f"emulator: extended profile, latency {args.latency_ms:g} ms; {len(ids)} artists by id, depth "
              f"track-details; Python {sys.version.split()[0]}\n")  # fmt: skip
        print(id_table(id_rows))
        guarded = args.ids == 100 and args.latency_ms == 50
        print(f"\n{guard_line(id_rows, guarded)}", flush=True)
        if args.only_ids:
            return
        print()
        for workers in (int(w) for w in args.workers.split(",")):
            reset(url, rate_limit=0)
            requests, seconds = collector(url, names, workers, Path(tmp))
            rows.append(
                Row(
                    "collector",
                    workers,
                    len(names),
                    requests,
                    seconds,
                    workers / latency if latency else None,
                )
            )
            print(f"collector, {workers} workers: {requests} requests in {seconds:.1f} s", file=sys.stderr)
        if args.rate_limit:
            reset(url, rate_limit=args.rate_limit)
            requests, seconds = collector(url, names, 16, Path(tmp))
            refused = int(httpx.get(url + "/_emulator/stats").json()["by_status"].get("429", 0))
            note = f"emulator rate limit {args.rate_limit}/30 s; {refused} more answered 429 (not counted)"
            admitted = requests - refused
            # a rolling 30 s window admits at most limit * (1 + T / 30) requests in T seconds
            bound = args.rate_limit * (1 + seconds / 30) / seconds
            rows.append(Row("collector", 16, len(names), admitted, seconds, bound, note))
        subset = names[: args.lesson_artists]
        reset(url, rate_limit=0)
        requests, seconds = collector(url, subset, 1, Path(tmp))
        bound = 1 / latency if latency else None
        rows.append(Row("collector", 1, len(subset), requests, seconds, bound, "same artists as below"))
        reset(url, rate_limit=0)
        requests, seconds = lesson(url, subset)
        rows.append(Row("lesson's way", 1, len(subset), requests, seconds, bound, "single-item calls"))
    print(f"{len(names)} artists by name (small discographies), depth track-details:\n")
    print(table(rows, args.latency_ms))
    ratio = rows[-1].requests / rows[-2].requests
    print(f"\nthe lesson's way needs {ratio:.1f}x the requests of the collector for the same catalog")


if __name__ == "__main__":
    main(sys.argv[1:])
