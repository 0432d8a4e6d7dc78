"""The client's request path against the in-process emulator.

Figures: requests per second through ``SpotifyClient`` (1 and 8 threads) next to bare httpx on the
same URLs (the client's own overhead per request), recovery under injected faults (attempts per
success, failures), and how closely the pacer holds a configured rate.

    python -m benchmarks client [--requests N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from spotify_catalog.client import SpotifyClient
from spotify_catalog.emulator import EmulatorConfig, serve_in_thread
from spotify_catalog.settings import Settings


def _settings(url: str, **extra: object) -> Settings:
    return Settings.load(
        {
            "client_id": "emulator-client-id",
            "client_secret": "emulator-client-secret",
            "api_url": url + "/v1",
            "token_url": url + "/api/token",
            **extra,
        },
        environ={},
        dotenv_path="/nonexistent/.env",
    )


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.0f} req/s  {1000 * seconds / count:6.2f} ms/req"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks client")
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    args = parser.parse_args(argv)
    n = args.requests
    logging.getLogger("spotify_catalog").setLevel(logging.ERROR)  # the fault run logs every retry

    with serve_in_thread(EmulatorConfig(artists=2000)) as emu:
        ids = emu.catalog.artist_ids()[:200]
        paths = [f"/artists/{ids[i % len(ids)]}" for i in range(n)]

        # bare httpx: the floor set by the emulator and the HTTP stack
        with SpotifyClient(_settings(emu.url)) as client:
            token = client.tokens.token()
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as raw:
            started = time.perf_counter()
            for path in paths:
                raw.get(emu.url + "/v1" + path).json()
            bare = time.perf_counter() - started
        print(f"bare httpx, 1 thread:        {_rate(n, bare)}")

        with SpotifyClient(_settings(emu.url)) as client:
            started = time.perf_counter()
            for path in paths:
                client.get(path)
            sequential = time.perf_counter() - started
        print(
            f"SpotifyClient, 1 thread:     {_rate(n, sequential)}  "
            f"overhead {1000 * (sequential - bare) / n:+.3f} ms/req"
        )

        for threads in (4, 8):
            with SpotifyClient(_settings(emu.url)) as client, ThreadPoolExecutor(threads) as pool:
                started = time.perf_counter()
                list(pool.map(client.get, paths))
                elapsed = time.perf_counter() - started
                print(
                    f"SpotifyClient, {threads} threads:    {_rate(n, elapsed)}  "
                    f"tokens fetched {client.tokens_fetched}, requests {client.requests_made}"
                )

        # faults: 10 % of requests fail (500/502/503/dropped connection); sleeps recorded, not slept
        emu.configure(fault_rate=0.10)
        waits: list[float] = []
        lock = threading.Lock()

        def fake_sleep(seconds: float) -> None:
            with lock:
                waits.append(seconds)

        failures = 0
        with SpotifyClient(_settings(emu.url), sleep=fake_sleep) as client:
            started = time.perf_counter()
            for path in paths:
                try:
                    client.get(path)
                except Exception:
                    failures += 1
            elapsed = time.perf_counter() - started
            print(
                f"10 % faults, 1 thread:       {_rate(n, elapsed)}  attempts/request "
                f"{client.requests_made / n:.3f}, failed after retries {failures}, "
                f"backoff slept (simulated) {sum(waits):.1f} s"
            )
        emu.configure(fault_rate=0.0)

        # pacer: real sleeps at 200 requests/s from 4 threads
        target, count = 200.0, min(n, 600)
        with SpotifyClient(_settings(emu.url, rate=target)) as client, ThreadPoolExecutor(4) as pool:
            client.tokens.token()
            started = time.perf_counter()
            list(pool.map(client.get, paths[:count]))
            elapsed = time.perf_counter() - started
        print(
            f"pacer at {target:.0f}/s, 4 threads: achieved {count / elapsed:.1f} req/s over {count} requests"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
