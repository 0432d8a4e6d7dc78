"""Load: the collector against a slow API, and the same crawl done the lesson's way.

The emulator runs as ``spotify-catalog emulator --profile extended --latency-ms 50`` in its own process.
The collector crawls ``--artists`` artists (by name; small discographies) at depth ``track-details``
with 1, 4, 8 and 16 workers: requests/s against the bound ``workers / latency``; then with 16 workers
under the emulator's rate limit (``--rate-limit`` per 30 s): requests/s against what a rolling 30 s
window admits in that time (``limit * (1 + T/30) / T``). Finally a subset (``--lesson-artists``) is
crawled both ways, for the request counts: the collector with one worker, and the lesson's way (one
request at a time, single-item calls, no reuse of embedded objects: search each name, GET each
artist, each album page, GET each album, each further track page, GET each track). Prints a markdown
table. ``python -m benchmarks load`` (about 2.5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import logging
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

from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.emulator import Catalog
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.settings import Settings
from spotify_catalog.storage import db
from spotify_catalog.transform import normalize_name

CLIENT = ("emulator-client-id", "emulator-client-secret")


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
    engine = db.open_database(f"sqlite:///{directory / f'crawl-{workers}-{time.monotonic_ns()}.db'}")
    options = CrawlOptions(
        artists=tuple(ArtistInput(n, False) for n in names), depth=Depth.TRACK_DETAILS, workers=workers
    )
    before = web_requests(url)
    started = time.perf_counter()
    with SpotifyClient(settings) as client:
        result = Crawler(engine, client, options).run()
    seconds = time.perf_counter() - started
    engine.dispose()
    assert result.status == "done", result
    return web_requests(url) - before, seconds


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
    parser.add_argument("--artists", type=int, default=100)
    parser.add_argument("--rate-limit", type=int, default=200, help="per 30 s; 0: skip that run")
    parser.add_argument("--lesson-artists", type=int, default=10)
    args = parser.parse_args(argv)
    logging.getLogger("spotify_catalog").setLevel(logging.ERROR)  # 429 retries are expected here
    latency = args.latency_ms / 1000
    catalog = Catalog(42, 2000)
    names = pick_names(catalog, args.artists)
    rows: list[Row] = []
    with emulator(args.latency_ms, 2000) as url, tempfile.TemporaryDirectory() as tmp:
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
    print(f"emulator: extended profile, latency {args.latency_ms:g} ms; depth track-details; Python "
          f"{sys.version.split()[0]}\n")  # fmt: skip
    print(table(rows, args.latency_ms))
    ratio = rows[-1].requests / rows[-2].requests
    print(f"\nthe lesson's way needs {ratio:.1f}x the requests of the collector for the same catalog")


if __name__ == "__main__":
    main(sys.argv[1:])
