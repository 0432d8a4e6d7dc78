"""Crawl throughput against the emulator: requests/s and entities/s, for several worker counts.

The emulator runs as ``spotify-catalog emulator`` in its own process (``--latency-ms 30``, extended
profile by default); the crawl is the demo's 20 artists at depth ``track-details`` into a fresh
SQLite file per worker count. ``python -m benchmarks crawl_throughput`` (options: ``--workers 1,8``,
``--latency-ms``, ``--profile``, ``--depth``, ``--artists``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from benchmarks.load import emulator
from spotify_catalog.cli.crawl import demo_artists
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth, collecting_less
from spotify_catalog.emulator import Catalog
from spotify_catalog.settings import Settings
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database


def run_once(url: str, workers: int, depth: Depth, artists: int, directory: Path) -> tuple[int, int, float]:
    """(requests, entities stored, seconds) of one crawl into a new database."""
    settings = Settings.load(
        {
            "client_id": "emulator-client-id",
            "client_secret": "emulator-client-secret",
            "api_url": url + "/v1",
            "token_url": url + "/api/token",
        },
        environ={},
        dotenv_path=directory / "none.env",
    )
    inputs = tuple(demo_artists(Catalog())[:artists])
    engine = open_database(f"sqlite:///{directory / f'w{workers}.db'}")
    started = time.perf_counter()
    with SpotifyClient(settings) as client, collecting_less():  # as the command line crawls
        result = Crawler(engine, client, CrawlOptions(artists=inputs, depth=depth, workers=workers)).run()
    seconds = time.perf_counter() - started
    with engine.connect() as conn:
        entities = sum(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (schema.artists, schema.albums, schema.tracks)
        )
    engine.dispose()
    return result.requests, entities, seconds


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="crawl_throughput")
    parser.add_argument("--workers", default="1,8")
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--profile", default="extended", choices=["development", "extended"])
    parser.add_argument("--depth", default="track-details")
    parser.add_argument("--artists", type=int, default=20)
    args = parser.parse_args(argv)
    depth = Depth.parse(args.depth)
    print(f"emulator: {args.profile} profile, latency {args.latency_ms:g} ms; "
          f"{args.artists} demo artists, depth {depth.label}")  # fmt: skip
    with emulator(args.latency_ms, 2000, args.profile) as url, tempfile.TemporaryDirectory() as tmp:
        for workers in (int(w) for w in args.workers.split(",")):
            requests, entities, seconds = run_once(url, workers, depth, args.artists, Path(tmp))
            print(
                f"workers={workers:<2} {requests:5d} requests in {seconds:6.2f} s = "
                f"{requests / seconds:7.1f} req/s; "
                f"{entities} entities (artists+albums+tracks) = {entities / seconds:8.0f} entities/s",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
