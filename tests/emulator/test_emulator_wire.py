"""What goes on the wire: handler bodies are the bytes ``json`` writes (they are encoded with orjson),
and the server sends each response in one piece."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest
from emulator_helpers import CLIENT

from spotify_catalog.emulator import BTS_ID, EmulatorConfig, create_app
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

# every route, good and bad parameters, trailing slashes, odd characters
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


def _bodies(app: Any) -> list[bytes]:
    """The bodies of the JSON answers to every path of :data:`PATHS`, with and without a locale."""

    async def scenario() -> list[bytes]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emu") as c:
            r = await c.post("/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            out: list[bytes] = []
            for extra in ({}, {"Accept-Language": "fr-FR"}):
                for path in PATHS:
                    r = await c.get(path, headers={**auth, **extra})
                    if r.headers.get("content-type") == "application/json; charset=utf-8":
                        out.append(r.content)
            return out

    return asyncio.run(scenario())


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_every_body_is_what_json_writes(profile: str) -> None:
    """Handler bodies are encoded with orjson: the same bytes as ``json.dumps`` (no float anywhere)."""
    bodies = _bodies(create_app(EmulatorConfig(profile=profile, artists=60)))
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
