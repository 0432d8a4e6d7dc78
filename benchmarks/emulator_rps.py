"""Emulator speed: start-up time, memory, and requests/s on loopback.

The emulator runs as ``spotify-catalog -q emulator`` in its own process, as the CLI serves it (uvloop +
httptools, each request logged to stderr, here ``/dev/null``). Client processes (3 by default) each keep
one connection alive and send one request at a time, all of them for the same few seconds per route.
``python -m benchmarks emulator_rps`` (options: ``--seconds``, ``--clients``, ``--artists``, ``--client``).

Clients (``--client``):

- ``raw`` (the default): a socket and httptools' response parser (the C parser uvicorn itself uses).
  Every request is a whole HTTP/1.1 request with its ``Authorization`` header; every response is parsed
  whole (status line, headers, body framed by its ``Content-Length``) and must be a 200. The lightest
  honest client: on 2 cores the clients share the CPU with the server, and a heavy client caps the figure.
- ``httpx``: ``httpx.Client``, what a real Python client costs (its CPU per request is printed too).

Printed per route: requests/s of all clients together; requests per CPU-second of the emulator process
(its ceiling on one core, steadier than requests/s on a shared machine); client CPU per request. Then
the headline figure: requests/s for small requests (``artists/{id}``, ``albums/{id}``, search).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import psutil

CLI = [sys.executable, "-m", "spotify_catalog"]
SMALL = ("GET /v1/artists/{id}", "GET /v1/albums/{id}", "GET /v1/search type=artist")


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


class _RawClient:
    """One keep-alive connection; each call sends one whole request and parses its whole response."""

    def __init__(self, url: str, token: str) -> None:
        import httptools  # uvicorn[standard] brings it, as it brings the emulator's server

        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = f"HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
        self.head += "Accept: application/json\r\nUser-Agent: emulator_rps\r\n\r\n"
        self.parser = httptools.HttpResponseParser(self)
        self.complete = False
        self.body = 0

    def request(self, wire: bytes) -> int:
        """Send ``wire`` (from :meth:`encode`); the response's status once it has been read whole."""
        self.complete, self.body = False, 0
        self.sock.sendall(wire)
        while not self.complete:
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("the emulator closed the connection")
            self.parser.feed_data(data)
        return int(self.parser.get_status_code())

    def encode(self, path: str) -> bytes:
        return f"GET {path} {self.head}".encode()

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body += len(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def close(self) -> None:
        self.sock.close()


def _hammer(args: tuple[str, str, str, list[str], float, float]) -> tuple[int, float, float]:
    """Requests made, seconds taken, CPU seconds used: from ``start_at`` (wall clock) for ``seconds``."""
    kind, url, token, paths, start_at, seconds = args
    send: Any
    if kind == "raw":
        client = _RawClient(url, token)
        wires = [client.encode(p) for p in paths]
        send, close = (lambda i: client.request(wires[i])), client.close
    else:
        session = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        send, close = (lambda i: session.get(paths[i]).status_code), session.close
    try:
        assert send(0) == 200  # connected and warm before the clock starts
        time.sleep(max(0.0, start_at - time.time()))
        cpu, started = time.process_time(), time.perf_counter()
        deadline = started + seconds
        done = 0
        while time.perf_counter() < deadline:
            status = send(done % len(paths))
            if status != 200:
                raise AssertionError(f"{paths[done % len(paths)]}: status {status}")
            done += 1
        return done, time.perf_counter() - started, time.process_time() - cpu
    finally:
        close()


def measure(
    pool: Any, server: psutil.Process, kind: str, url: str, token: str, paths: list[str], seconds: float
) -> tuple[float, float, float]:
    """Requests/s of the pool's clients together, requests per server CPU-second, client CPU per request
    (ms)."""
    clients = pool._processes  # the size the pool was made with
    before = sum(server.cpu_times()[:2])
    start_at = time.time() + 0.5  # every client connected and waiting by then
    results = pool.map(_hammer, [(kind, url, token, paths, start_at, seconds)] * clients)
    cpu = sum(server.cpu_times()[:2]) - before
    done = sum(r[0] for r in results)
    return done / max(r[1] for r in results), done / cpu, 1000 * sum(r[2] for r in results) / done


def _cases(url: str, token: str) -> dict[str, list[str]]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:

        def search(q: str) -> list[dict[str, Any]]:
            params: dict[str, str | int] = {"q": q, "type": "artist", "limit": 10}
            items: list[dict[str, Any]] = c.get("/v1/search", params=params).json()["artists"]["items"]
            return items

        names = [a["name"] for a in search("the")]
        artists = [a["id"] for q in ("a", "e", "o") for a in search(q)]
        albums = [c.get(f"/v1/artists/{a}/albums").json()["items"][0]["id"] for a in artists]
    return {
        "GET /v1/artists/{id}": [f"/v1/artists/{a}" for a in artists],
        "GET /v1/artists/{id}/albums": [f"/v1/artists/{a}/albums?limit=10" for a in artists],
        "GET /v1/albums/{id}": [f"/v1/albums/{a}" for a in albums],
        "GET /v1/search type=artist": [f"/v1/search?q={quote(n)}&type=artist" for n in names],
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="emulator_rps")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--artists", type=int, default=2000)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
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
        cases = _cases(url, token)
        client = "socket + httptools parser" if args.client == "raw" else "httpx.Client"
        print(
            f"{args.clients} client processes ({client}, one keep-alive connection each, one request at a "
            f"time), {args.seconds:.0f} s per route; load average {os.getloadavg()[0]:.2f}"
        )
        print("(server capacity = requests per CPU-second of the emulator process: its ceiling on one core)")
        server = psutil.Process(proc.pid)
        rates: dict[str, float] = {}
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            for label, paths in cases.items():
                figures = measure(pool, server, args.client, url, token, paths, args.seconds)
                rate, capacity, client_ms = figures
                rates[label] = rate
                print(
                    f"  {label:28s} {rate:6.0f} requests/s   server capacity {capacity:6.0f} requests/CPU-s"
                    f"   client CPU {client_ms:.3f} ms/request"
                )
        small = sum(rates[label] for label in SMALL) / len(SMALL)
        print(
            f"small requests (artists/{{id}}, albums/{{id}}, search), {args.clients} client processes: "
            f"{small:.0f} requests/s (mean of the three routes; load average {os.getloadavg()[0]:.2f})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
