"""CPU per request of the emulator in one process, without sockets (not a benchmark: ``python -m
benchmarks`` skips it). uvicorn's HTTP protocol, as the CLI serves it (httptools, uvloop), is fed whole
requests through a transport that keeps what is written; the figure is the best of ``--reps`` rounds of
``--requests`` requests, in CPU time, so that other work on the machine disturbs it less than a run over
loopback. It leaves out the system calls and the cache misses of a real server, so it is lower than the
``emulator_rps`` figures; it is for comparing code and for profiles.

    python -m benchmarks._emulator_cpu [--path /v1/albums/ALBUM] [--log] [--bare] [--profile 25]

``ARTIST`` and ``ALBUM`` in ``--path`` stand for ids of the catalog; ``--log``: the CLI's request log (to
``/dev/null``), as ``spotify-catalog emulator`` writes it; ``--bare``: a fixed answer from a three-line
ASGI app instead of the emulator (what uvicorn itself costs); ``--profile N``: a cProfile of one more
round, N busiest functions by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import sys
import time
from typing import Any

from spotify_catalog.emulator import EmulatorConfig, EmulatorState, create_app
from spotify_catalog.emulator.server import make_server


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []

    def write(self, data: Any) -> None:
        self.out.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _bare_app() -> Any:
    body = b'{"id":"' + b"x" * 560 + b'"}'
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _run(args: argparse.Namespace) -> None:
    state = EmulatorState(EmulatorConfig())
    token = state.issue_token()
    catalog = state.catalog
    artist = catalog.artist_ids()[5]
    path = args.path.replace("ALBUM", catalog.discography(5)[0].id).replace("ARTIST", artist)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n"
        f"Connection: keep-alive\r\nUser-Agent: python-httpx/0.28.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    config = make_server(_bare_app() if args.bare else create_app(state=state)).config
    config.load()
    from uvicorn.server import ServerState

    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)

    async def one() -> None:
        protocol.data_received(request)
        while not protocol.cycle.response_complete:
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # the corked write leaves at the end of the turn

    async def rounds(n: int) -> None:
        for _ in range(n):
            await one()
        transport.out.clear()

    await rounds(300)
    await one()
    status = b"".join(transport.out).split(b"\r\n", 1)[0].decode()
    best = float("inf")
    for _ in range(args.reps):
        started = time.process_time()
        await rounds(args.requests)
        best = min(best, (time.process_time() - started) / args.requests)
    what = "bare ASGI app" if args.bare else "emulator" + (" + CLI request log" if args.log else "")
    print(f"{path} ({status}), {what}: {best * 1e6:.1f} us CPU per request (best of {args.reps})")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        await rounds(args.requests)
        profile.disable()
        stats = pstats.Stats(profile, stream=sys.stdout)
        _print_groups(stats)
        stats.sort_stats("tottime").print_stats(args.profile)


GROUPS = (  # where a function's own time goes, by the file it is in (first match)
    ("request log (logging, the CLI's formatter)", ("logging/", "spotify_catalog/cli/", "settings.py")),
    ("uvicorn (HTTP protocol, proxy headers)", ("uvicorn/",)),
    ("Starlette (routing, Request, Response)", ("starlette/",)),
    ("JSON encoding", ("json/", "orjson")),
    (
        "emulator: routes, limits, counters",
        (
            "emulator/app.py",
            "emulator/routing.py",
            "emulator/webapi.py",
            "emulator/responses.py",
            "emulator/state.py",
            "emulator/server.py",
        ),
    ),
    ("emulator: catalog, ids, rendering, search", ("emulator/",)),
)


def _print_groups(stats: pstats.Stats) -> None:
    """Own time per group, as shares of the profiled time."""
    own: dict[str, float] = {}
    total = 0.0
    for (path, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        seconds = row[2]
        total += seconds
        where = f"{path} {name}"
        other = "C built-ins (dict, str, re...)" if path == "~" else "other Python (asyncio, urllib...)"
        group = next((g for g, keys in GROUPS if any(k in where for k in keys)), other)
        own[group] = own.get(group, 0.0) + seconds
    print("| where (own time) | share |\n|---|---:|")
    for group, seconds in sorted(own.items(), key=lambda item: -item[1]):
        print(f"| {group} | {100 * seconds / total:.0f} % |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._emulator_cpu")
    parser.add_argument("--path", default="/v1/artists/ARTIST")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--log", action="store_true")
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--profile", type=int, default=0)
    args = parser.parse_args(argv)
    if args.log:
        from spotify_catalog.cli import configure_logging

        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the whole run
        configure_logging(0, True)
        logging.getLogger("spotify_catalog.emulator").setLevel(logging.INFO)  # as the CLI's emulator does
    import uvloop

    uvloop.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
