"""The emulator's core: serving, tokens, the lesson's search, the two profiles, stats."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from emulator_helpers import CLIENT, client, token

from spotify_catalog.emulator import BTS_ID, EmulatorConfig, create_app


def test_lesson_search_returns_bts_then_bts_world_then_btsc(emulator):
    with client(emulator) as c:
        r = c.get("/v1/search", params={"q": "BTS", "type": "artist", "limit": 3})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    items = r.json()["artists"]["items"]
    assert [a["name"] for a in items] == ["BTS", "BTS World", "BTSC"]
    assert items[0]["id"] == BTS_ID
    assert r.json()["artists"]["href"] == f"{emulator.url}/v1/search?offset=0&limit=3&query=BTS&type=artist"


def test_bts_holds_for_other_seeds_and_sizes(make_emulator):
    emu = make_emulator(seed=7, artists=20)
    with client(emu) as c:
        r = c.get("/v1/search", params={"q": "bts", "type": "artist", "limit": 3})
    items = r.json()["artists"]["items"]
    assert [a["name"] for a in items] == ["BTS", "BTS World", "BTSC"]


def test_walk_artist_album_track_matches_catalog(emulator):
    cat = emulator.catalog
    artist_id = cat.artist_ids()[5]
    with client(emulator) as c:
        artist = c.get(f"/v1/artists/{artist_id}").json()
        assert artist["name"] == cat.artist_names()[5]
        seen, url = [], f"/v1/artists/{artist_id}/albums?limit=10"
        while url:
            page = c.get(url).json()
            seen += [a["id"] for a in page["items"]]
            url = page["next"]
        assert seen == cat.artist_album_ids(artist_id)
        album = c.get(f"/v1/albums/{seen[0]}").json()
        assert album["total_tracks"] == cat.album(seen[0]).total_tracks
        track_id = album["tracks"]["items"][0]["id"]
        track = c.get(f"/v1/tracks/{track_id}").json()
        assert track["album"]["id"] == seen[0]
        assert track["external_ids"]["isrc"] == cat.track(track_id).isrc


def test_development_forbids_batch_endpoints_extended_serves_them(make_emulator):
    emu = make_emulator()
    ids = emu.catalog.artist_ids()[:3]
    with client(emu) as c:
        r = c.get("/v1/artists", params={"ids": ",".join(ids)})
        assert r.status_code == 403
        assert r.json() == {"error": {"status": 403, "message": "Forbidden"}}
        emu.configure(profile="extended")
        unknown = "0" * 22
        r = c.get("/v1/artists", params={"ids": ",".join([*ids, unknown])})
    assert r.status_code == 200
    artists = r.json()["artists"]
    assert [a["id"] for a in artists[:3]] == ids
    assert artists[3] is None


def test_stats_and_reset(emulator):
    with client(emulator) as c:
        c.get(f"/v1/artists/{BTS_ID}")
        c.get(f"/v1/artists/{BTS_ID}/albums")
        stats = c.get("/_emulator/stats").json()
    assert stats == emulator.stats()
    assert stats["by_route"] == {
        "GET /v1/artists/{id}": 1,
        "GET /v1/artists/{id}/albums": 1,
        "POST /api/token": 1,
    }
    assert stats["requests"] == 3
    assert stats["by_status"] == {"200": 3}
    httpx.post(f"{emulator.url}/_emulator/reset").raise_for_status()
    assert emulator.stats() == {"requests": 0, "by_route": {}, "by_status": {}, "quota": {}}


def test_create_app_serves_in_process_without_a_socket():
    app = create_app(EmulatorConfig(artists=10))

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emu") as c:
            r = await c.post("/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
            assert r.status_code == 200
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            return await c.get(f"/v1/artists/{BTS_ID}", headers=auth)

    r = asyncio.run(scenario())
    assert r.json()["href"] == f"http://emu/v1/artists/{BTS_ID}"


def test_token_is_opaque_and_not_in_repr(emulator):
    tok = token(emulator)
    assert tok.startswith("BQ")
    assert len(tok) > 40
    assert "emulator-client-secret" not in repr(emulator.config)
    assert "emulator-client-secret" not in repr(emulator)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"artists": 2}, "artists must be"),
        ({"profile": "prod"}, "profile must be"),
        ({"fault_rate": 2.0}, "fault_rate must be"),
        ({"fault_kinds": ("x",)}, "unknown fault kind 'x'"),
    ],
)
def test_invalid_config_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        EmulatorConfig(**bad)
