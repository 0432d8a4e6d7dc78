"""The emulator's quick lane (a Web API GET without Starlette's router) answers as Starlette's routes
answer; handler bodies are the bytes ``json`` writes; the server sends each response in one piece."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import httpx
import pytest
from emulator_helpers import CLIENT
from starlette.applications import Starlette
from starlette.routing import Match, Route

from spotify_catalog.emulator import BTS_ID, EmulatorConfig, create_app
from spotify_catalog.emulator.app import SPECS, RouteTable
from spotify_catalog.emulator.catalog import Catalog
from spotify_catalog.emulator.server import CorkedTransport

CATALOG = Catalog(42, 60)
ARTIST = CATALOG.artist_ids()[3]
ALBUM = CATALOG.discography(3)[0].id
TRACK = CATALOG.tracks_of(3, 0)[0].id
SHOW = next(s for s in CATALOG.shows if "US" in s.markets)
BOOK = next(b for b in CATALOG.audiobooks if "US" in b.markets)
PLAYLIST = CATALOG.playlists[0].id
EPISODE = CATALOG.episodes_of(SHOW.index)[0].id
CHAPTER = CATALOG.chapters_of(BOOK.index)[0].id

# every route, good and bad parameters, trailing slashes, paths the quick lane leaves to Starlette
PATHS = [
    f"/v1/artists/{ARTIST}",
    f"/v1/artists/{ARTIST}/",
    f"/v1/artists/{ARTIST}/albums?limit=3&offset=2&include_groups=album,single",
    f"/v1/artists/{ARTIST}/albums?include_groups=bad",
    f"/v1/artists/{ARTIST}/top-tracks?market=GB",
    f"/v1/artists?ids={ARTIST},{BTS_ID}",
    f"/v1/albums/{ALBUM}?market=US",
    f"/v1/albums/{ALBUM}?market=XX",
    f"/v1/albums/{ALBUM}/tracks/?limit=2",
    f"/v1/albums?ids={ALBUM}",
    f"/v1/tracks/{TRACK}",
    f"/v1/tracks/?ids={TRACK},{TRACK}&market=US",
    f"/v1/playlists/{PLAYLIST}",
    f"/v1/playlists/{PLAYLIST}/items?offset=3",
    f"/v1/playlists/{PLAYLIST}/tracks/",
    f"/v1/shows/{SHOW.id}?market=US",
    f"/v1/shows/{SHOW.id}/episodes?market=US&limit=2",
    f"/v1/episodes/{EPISODE}?market=US",
    f"/v1/audiobooks/{BOOK.id}/chapters?market=US",
    f"/v1/chapters/{CHAPTER}?market=US",
    "/v1/search?q=the&type=artist,album,track&limit=3&offset=5",
    "/v1/search?q=a&type=playlist,show,episode,audiobook&market=US",
    "/v1/search?q=the&type=artist&q=a",
    "/v1/search?q=caf%C3%A9&type=track",
    "/v1/search?q=x&type=artist&offset=1000",
    "/v1/browse/new-releases?limit=2",
    "/v1/markets",
    "/v1/me",
    "/v1/audio-features/x",
    "/v1/artists/not-an-id!",
    "/v1/artists/0000000000000000000000",
    f"/v1/artists/{ARTIST}%20",
    "/v1/artists/a%2Fb",
    "/v1/artists//albums",
    "/v1/nothing",
    f"/v1/artists/{ARTIST}?x=%23y",
]


def _starlette_pick(routes: list[Any], path: str) -> Route:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    raise AssertionError(f"no route for {path}")


@pytest.mark.parametrize("segment", [ARTIST, "x", "albums", "{id}", "tracks", ""])
def test_route_table_picks_the_route_starlettes_router_picks(segment: str) -> None:
    app = create_app(EmulatorConfig(artists=10))
    table = RouteTable(SPECS)
    templates = {spec.template for spec in SPECS}
    tails = ("", "/", "//", "/x")
    paths = {spec.template.replace("{id}", segment) + tail for spec in SPECS for tail in tails}
    paths |= {"/", "/v1", "/v1/", "/v1//", "/api/token", "/_emulator/stats", f"/v1/{segment}"}
    for path in sorted(paths):
        picked = _starlette_pick(app.routes, path)
        found = table.match(path)
        template = picked.path.removesuffix("/") if picked.path != "/" else picked.path
        if found is None:
            assert template not in templates, path
        else:
            spec, params = found
            assert spec.template == template, path
            assert params == picked.matches({"type": "http", "method": "GET", "path": path})[1]["path_params"]


def _exchanges(app: Any, token_holder: list[str], paths: list[str]) -> list[tuple[Any, ...]]:
    async def scenario() -> list[tuple[Any, ...]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emu") as c:
            r = await c.post("/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
            token_holder.append(r.json()["access_token"])
            auth = {"Authorization": f"Bearer {token_holder[-1]}"}
            out: list[tuple[Any, ...]] = []
            for extra in ({}, {"Accept-Language": "fr-FR", "X-Forwarded-Proto": "https"}):
                for path in paths:
                    r = await c.get(path, headers={**auth, **extra})
                    out.append((path, r.status_code, r.headers.multi_items(), r.content))
            r = await c.get(f"/v1/playlists/{PLAYLIST}", headers=auth)
            r = await c.get(f"/v1/playlists/{PLAYLIST}", headers={**auth, "If-None-Match": r.headers["etag"]})
            out.append(("304", r.status_code, r.headers.multi_items(), r.content))
            r = await c.get(f"/v1/artists/{ARTIST}", headers={"Authorization": "Bearer nope"})
            out.append(("401", r.status_code, r.headers.multi_items(), r.content))
            out.append(("stats", (await c.get("/_emulator/stats")).json()))
            out.append(("requests", (await c.get("/_emulator/requests")).json()))
            return out

    return asyncio.run(scenario())


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_quick_lane_and_starlettes_routes_answer_alike(profile: str, caplog: Any) -> None:
    kinds = ("500", "truncated", "html", "content_type", "missing_field", "extra_field", "null_items")
    kinds += ("empty_429",)
    config = EmulatorConfig(profile=profile, artists=60, fault_rate=0.3, fault_kinds=kinds, rate_limit=150)
    quick = create_app(config)
    routed = create_app(config)

    async def through_starlette(scope: Any, receive: Any, send: Any) -> None:
        await Starlette.__call__(routed, scope, receive, send)  # what the quick lane skips

    caplog.set_level(logging.INFO, logger="spotify_catalog.emulator")
    tokens: list[str] = []
    answers = _exchanges(quick, tokens, PATHS)
    quick_log = [r.getMessage().rsplit(" ", 2)[0].replace(tokens[0], "T") for r in caplog.records]
    caplog.clear()
    expected = _exchanges(through_starlette, tokens, PATHS)
    routed_log = [r.getMessage().rsplit(" ", 2)[0].replace(tokens[1], "T") for r in caplog.records]
    assert len(answers) == len(expected) == 2 * len(PATHS) + 4
    for answer, other in zip(answers, expected, strict=True):
        assert answer == other
    assert quick_log == routed_log
    statuses = {a[1] for a in answers[: 2 * len(PATHS)]}
    assert {200, 400, 403, 404, 429, 500} <= statuses  # answers, errors and faults all compared


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_every_body_is_what_json_writes(profile: str) -> None:
    """Handler bodies are encoded with orjson: the same bytes as ``json.dumps`` (no float anywhere)."""
    app = create_app(EmulatorConfig(profile=profile, artists=60))
    answers = _exchanges(app, [], PATHS)
    json_type = ("content-type", "application/json; charset=utf-8")
    bodies = [a[3] for a in answers if len(a) == 4 and json_type in a[2]]
    assert len(bodies) > len(PATHS)
    for body in bodies:
        assert body == json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()


class _Wire:
    """A transport that remembers its writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"

    def get_write_buffer_size(self) -> int:
        return 0


def test_corked_transport_sends_one_turns_writes_as_one() -> None:
    async def scenario() -> None:
        wire = _Wire()
        corked = CorkedTransport(wire, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.write(b"{}")
        assert wire.writes == []
        assert corked.get_write_buffer_size() == 21  # what waits counts as buffered
        await asyncio.sleep(0)
        assert wire.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        corked.write(b"last")
        corked.close()  # what is pending goes first
        assert wire.writes[-1] == b"last"
        assert wire.closed
        corked.write(b"late")
        await asyncio.sleep(0)
        assert wire.writes[-1] == b"last"  # nothing written to a closed connection
        assert corked.get_extra_info("peername") == "info peername"

    asyncio.run(scenario())


def test_each_response_reaches_the_client_in_one_piece(emulator: Any) -> None:
    token = httpx.post(
        f"{emulator.url}/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT
    ).json()["access_token"]
    host, port = emulator.url.removeprefix("http://").rsplit(":", 1)
    request = f"GET /v1/artists/{BTS_ID} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    with socket.create_connection((host, int(port))) as sock:
        for _ in range(30):
            sock.sendall(request.encode())
            first = sock.recv(1 << 20)  # headers and body in one segment: one read has it all
            head, _, body = first.partition(b"\r\n\r\n")
            headers = dict(h.partition(b": ")[::2] for h in head.split(b"\r\n")[1:])
            assert len(body) == int(headers[b"content-length"])


def test_a_handler_that_fails_is_a_500_in_both_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    from spotify_catalog.emulator import render

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(render, "artist", broken)
    app = create_app(EmulatorConfig(artists=10))

    async def through_starlette(scope: Any, receive: Any, send: Any) -> None:
        await Starlette.__call__(app, scope, receive, send)

    async def scenario(target: Any) -> tuple[int, str, str]:
        transport = httpx.ASGITransport(app=target, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://emu") as c:
            r = await c.post("/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await c.get(f"/v1/artists/{BTS_ID}", headers=auth)
            return r.status_code, r.headers["content-type"], r.text

    quick, routed = asyncio.run(scenario(app)), asyncio.run(scenario(through_starlette))
    assert quick == routed == (500, "text/plain; charset=utf-8", "Internal Server Error")
