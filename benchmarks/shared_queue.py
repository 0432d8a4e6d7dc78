"""Shared queue: 1, 2 and 4 crawl processes into one PostgreSQL database, sharing the work.

The emulator runs as ``spotify-catalog emulator --profile development --latency-ms 50`` in its own
process. Each crawl process is given the same artists (by id, small discographies, depth ``tracks``) and
``--workers 2``; the processes claim tasks from the database (``FOR UPDATE SKIP LOCKED``), so each request
is made once whatever the number of processes. Prints requests, wall time, requests/s and the speed-up over
one process. The database is ``SPOTIFY_CATALOG_TEST_POSTGRES_URL`` (default: the local test server), a
fresh database per run. ``python -m benchmarks shared_queue`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _servers
from benchmarks.load import CLIENT, emulator, reset, web_requests
from spotify_catalog.emulator import Catalog


def small_artists(catalog: Catalog, count: int) -> list[str]:
    found = []
    for artist_id in catalog.artist_ids()[1:]:
        albums = catalog.artist_album_ids(artist_id)
        if 0 < len(albums) <= 10 and all(catalog.album(a).total_tracks <= 50 for a in albums):
            found.append(artist_id)
        if len(found) == count:
            break
    return found


def run(
    url: str,
    api: str,
    artists_file: Path,
    processes: int,
    workers: int,
    *,
    mode: str = "development",
    ledger: str | None = None,
) -> float:
    """Seconds ``processes`` crawl processes of ``workers`` workers take, started together."""
    env = {**os.environ, "SPOTIFY_CLIENT_ID": CLIENT[0], "SPOTIFY_CLIENT_SECRET": CLIENT[1]}
    env.pop("SPOTIFY_CATALOG_MODE", None)
    command = [
        sys.executable, "-m", "spotify_catalog", "-q", "--api-url", api + "/v1", "--token-url",
        api + "/api/token", *(["--ledger", ledger] if ledger else []), "crawl", "--db", url,
        "--artists-file", str(artists_file), "--depth", "tracks", "--workers", str(workers), "--mode", mode,
    ]  # fmt: skip
    started = time.perf_counter()
    procs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    for proc in procs:
        _out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"a crawl process failed ({proc.returncode}): {err.strip()}")
    return time.perf_counter() - started


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="shared_queue")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--artists", type=int, default=80)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--workers", type=int, default=2, help="per process")
    args = parser.parse_args(argv)
    ids = small_artists(Catalog(42, 2000), args.artists)
    rows = []
    with emulator(args.latency_ms, 2000, "development") as api, tempfile.TemporaryDirectory() as tmp:
        artists_file = Path(tmp) / "artists.txt"
        artists_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
        for processes in (int(p) for p in args.processes.split(",")):
            reset(api, rate_limit=0)
            with _servers.fresh_database("postgresql") as url:
                seconds = run(url, api, artists_file, processes, args.workers)
            requests = web_requests(api)
            rows.append((processes, requests, seconds))
            print(f"{processes} process(es): {requests} requests in {seconds:.1f} s", file=sys.stderr)
    base = rows[0][1] / rows[0][2]
    print(f"\n{len(ids)} artists by id, depth tracks, Development profile, latency {args.latency_ms:g} ms, "
          f"--workers {args.workers} per process, PostgreSQL\n")  # fmt: skip
    print("| processes | requests | time | requests/s | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    for processes, requests, seconds in rows:
        rate = requests / seconds
        print(f"| {processes} | {requests} | {seconds:.1f} s | {rate:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1:])
