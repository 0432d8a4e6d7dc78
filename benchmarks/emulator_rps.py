"""Emulator speed: start-up time, memory, and requests/s on loopback.

The emulator runs as ``spotify-catalog emulator`` in its own process (uvloop + httptools, as the CLI
serves it); client processes with one keep-alive httpx connection each hammer one route for a few
seconds. ``python -m benchmarks emulator_rps`` (options: ``--seconds``, ``--clients``, ``--artists``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psutil

CLI = [sys.executable, "-m", "spotify_catalog"]


@contextmanager
def emulator(artists: int, *extra: str) -> Iterator[tuple[str, float, subprocess.Popen[str]]]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*CLI, "-q", "emulator", "--artists", str(artists), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        yield url, time.perf_counter() - started, proc
    finally:
        proc.terminate()
        proc.wait(10)


def _token(url: str) -> str:
    r = httpx.post(
        f"{url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=("emulator-client-id", "emulator-client-secret"),
    )
    return str(r.json()["access_token"])


def _hammer(args: tuple[str, str, list[str], float]) -> int:
    url, token, paths, seconds = args
    done = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            response = client.get(paths[done % len(paths)])
            assert response.status_code == 200, response.text
            done += 1
    return done


def rps(url: str, token: str, paths: list[str], clients: int, seconds: float) -> float:
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        started = time.perf_counter()
        counts = pool.map(_hammer, [(url, token, paths, seconds)] * clients)
        return sum(counts) / (time.perf_counter() - started)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="emulator_rps")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--artists", type=int, default=2000)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")

    with emulator(20_000) as (url, startup, proc):
        token = _token(url)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            ids = [
                a["id"]
                for a in c.get("/v1/search", params={"q": "the", "type": "artist", "limit": 10}).json()[
                    "artists"
                ]["items"]
            ]
            for artist_id in ids:
                for page in range(3):
                    c.get(f"/v1/artists/{artist_id}/albums", params={"limit": 10, "offset": 10 * page})
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        print(f"start-up with --artists 20000: {startup:.2f} s; RSS after a few requests: {rss:.0f} MiB")

    with emulator(args.artists) as (url, startup, proc):
        print(f"start-up with --artists {args.artists}: {startup:.2f} s (process start to URL on stdout)")
        token = _token(url)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            names = [
                a["name"]
                for a in c.get("/v1/search", params={"q": "the", "type": "artist", "limit": 10}).json()[
                    "artists"
                ]["items"]
            ]
            artists = [
                a["id"]
                for a in c.get("/v1/search", params={"q": "a", "type": "artist", "limit": 10}).json()[
                    "artists"
                ]["items"]
            ]
            albums = [c.get(f"/v1/artists/{a}/albums").json()["items"][0]["id"] for a in artists]
        cases = {
            "GET /v1/artists/{id}": [f"/v1/artists/{a}" for a in artists],
            "GET /v1/artists/{id}/albums": [f"/v1/artists/{a}/albums?limit=10" for a in artists],
            "GET /v1/albums/{id}": [f"/v1/albums/{a}" for a in albums],
            "GET /v1/search type=artist": [f"/v1/search?q={n}&type=artist" for n in names],
        }
        print(f"{args.clients} client processes, {args.seconds:.0f} s per route, keep-alive, 2-core machine")
        print("(capacity = requests per CPU-second of the emulator process: its ceiling on one core)")
        server = psutil.Process(proc.pid)
        for label, paths in cases.items():
            before = sum(server.cpu_times()[:2])
            started = time.perf_counter()
            rate = rps(url, token, paths, args.clients, args.seconds)
            cpu = sum(server.cpu_times()[:2]) - before
            total = rate * (time.perf_counter() - started)
            print(f"  {label:32s} {rate:7.0f} requests/s   capacity {total / cpu:7.0f} requests/CPU-s")


if __name__ == "__main__":
    main(sys.argv[1:])
