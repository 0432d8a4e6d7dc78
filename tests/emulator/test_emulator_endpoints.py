"""Parameters, paging, limits per profile, markets, ids, headers and ETags of the Web API routes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from emulator_helpers import client

from spotify_catalog.emulator import BTS_ID


def _error(r, status, message):
    assert r.status_code == status, r.text
    assert r.json() == {"error": {"status": status, "message": message}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"type": "artist"}, "No search query"),
        ({"q": "", "type": "artist"}, "No search query"),
        ({"q": "BTS"}, "Missing parameter type"),
        ({"q": "BTS", "type": "artist,singer"}, "Bad search type field singer"),
        ({"q": "BTS", "type": "artist", "limit": "11"}, "Invalid limit"),
        ({"q": "BTS", "type": "artist", "limit": "0"}, "Invalid limit"),
        ({"q": "BTS", "type": "artist", "limit": "ten"}, "Invalid limit"),
        ({"q": "BTS", "type": "artist", "offset": "-1"}, "Invalid offset"),
        ({"q": "BTS", "type": "artist", "offset": "1001"}, "Invalid offset"),
        ({"q": "BTS", "type": "artist", "offset": "995", "limit": "10"}, "Invalid offset"),
        ({"q": "BTS", "type": "artist", "offset": "1000", "limit": "5"}, "Bad request."),  # spotipy#868
        ({"q": "BTS", "type": "artist", "market": "usa"}, "Invalid market code"),
    ],
)
def test_search_parameter_errors(emulator, params, message):
    with client(emulator) as c:
        _error(c.get("/v1/search", params=params), 400, message)


def test_limits_per_profile(make_emulator):
    dev = make_emulator()
    artist = dev.catalog.artist_ids()[3]  # 300 albums
    with client(dev) as c:
        assert c.get("/v1/search", params={"q": "the", "type": "artist"}).json()["artists"]["limit"] == 5
        assert c.get(f"/v1/artists/{artist}/albums").json()["limit"] == 5
        assert c.get(f"/v1/artists/{artist}/albums", params={"limit": 10}).status_code == 200
        _error(c.get(f"/v1/artists/{artist}/albums", params={"limit": 11}), 400, "Invalid limit")
        _error(c.get("/v1/search", params={"q": "the", "type": "artist", "limit": 50}), 400, "Invalid limit")
        dev.configure(profile="extended")
        assert c.get("/v1/search", params={"q": "the", "type": "artist"}).json()["artists"]["limit"] == 20
        assert c.get(f"/v1/artists/{artist}/albums").json()["limit"] == 20
        assert c.get(f"/v1/artists/{artist}/albums", params={"limit": 50}).status_code == 200
        _error(c.get(f"/v1/artists/{artist}/albums", params={"limit": 51}), 400, "Invalid limit")
        _error(c.get("/v1/artists", params={"ids": ",".join([BTS_ID] * 51)}), 400, "too many ids requested")
        _error(c.get("/v1/albums", params={"ids": ",".join([BTS_ID] * 21)}), 400, "too many ids requested")
        _error(c.get("/v1/tracks", params={"ids": "abc"}), 400, "Invalid base62 id")
        _error(c.get("/v1/tracks"), 400, "Missing parameter ids")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/artists",
        f"/v1/artists/{BTS_ID}/top-tracks",
        "/v1/albums",
        "/v1/tracks",
        "/v1/shows",
        "/v1/episodes",
        "/v1/audiobooks",
        "/v1/chapters",
        "/v1/browse/new-releases",
        "/v1/browse/categories",
        "/v1/markets",
        "/v1/users/someone",
    ],
)
def test_removed_endpoints_are_forbidden_in_development(emulator, path):
    with client(emulator) as c:
        _error(c.get(path, params={"ids": BTS_ID}), 403, "Forbidden")


def test_playlist_contents_forbidden_in_development(emulator):
    playlist = emulator.catalog.playlists[0].id
    with client(emulator) as c:
        _error(c.get(f"/v1/playlists/{playlist}/items"), 403, "Forbidden")
        _error(c.get(f"/v1/playlists/{playlist}/tracks"), 403, "Forbidden")


def test_ids(emulator):
    cat = emulator.catalog
    album_id = cat.artist_album_ids(cat.artist_ids()[5])[0]
    with client(emulator) as c:
        _error(c.get("/v1/artists/3Nrfpe0tUJi4K4DXYWgMU"), 400, "Invalid base62 id")
        _error(c.get("/v1/artists/3Nrfpe0tUJi4K4DXYWgMU-"), 400, "Invalid base62 id")
        _error(c.get("/v1/tracks/2KrxsD86ARO5beq7Q0Drfqa"), 400, "Invalid base62 id")
        _error(c.get(f"/v1/artists/{BTS_ID}%0A"), 400, "Invalid base62 id")  # a good id and a newline
        _error(c.get("/v1/artists/0000000000000000000000"), 404, "Resource not found")
        _error(c.get(f"/v1/artists/{album_id}"), 404, "Resource not found")  # an album id is no artist
        r = c.get("/v1/artists/0000000000000000000000")
        assert r.headers["cache-control"] == "private, max-age=0"
        _error(c.get("/v1/unknown/thing"), 404, "Service not found")


def test_paging_links_keep_the_query(make_emulator):
    emu = make_emulator(profile="extended")
    artist = emu.catalog.artist_ids()[3]
    with client(emu) as c:
        page = c.get(
            f"/v1/artists/{artist}/albums",
            params={"include_groups": "album,single", "market": "US", "limit": 7, "offset": 7},
        ).json()
    base = f"{emu.url}/v1/artists/{artist}/albums"
    assert page["href"] == f"{base}?offset=7&limit=7&include_groups=album,single&market=US"
    assert page["next"] == f"{base}?offset=14&limit=7&include_groups=album,single&market=US"
    assert page["previous"] == f"{base}?offset=0&limit=7&include_groups=album,single&market=US"
    assert page["total"] == len(emu.catalog.artist_album_ids(artist, ("album", "single"), market="US"))


def test_paging_to_the_end(emulator):
    cat = emulator.catalog
    album = max((a for a in cat.discography(3)), key=lambda a: a.total_tracks)
    assert album.total_tracks > 50
    with client(emulator) as c:
        ids, url = [], f"/v1/albums/{album.id}/tracks?limit=50"
        while url:
            page = c.get(url).json()
            ids += [t["id"] for t in page["items"]]
            url = page["next"]
        assert page["previous"] is not None
        full = c.get(f"/v1/albums/{album.id}").json()
    assert ids == cat.album_track_ids(album.id)
    assert full["tracks"]["total"] == album.total_tracks
    assert len(full["tracks"]["items"]) == 50
    assert full["tracks"]["next"].endswith(f"/v1/albums/{album.id}/tracks?offset=50&limit=50")


def test_search_next_stops_at_offset_1000(make_emulator):
    emu = make_emulator(artists=7000, profile="extended")
    with client(emu) as c:
        page = c.get("/v1/search", params={"q": "the", "type": "artist", "limit": 50, "offset": 900}).json()
        artists = page["artists"]
        assert artists["total"] > 1000
        assert parse_qs(urlsplit(artists["next"]).query)["offset"] == ["950"]
        last = c.get(artists["next"]).json()["artists"]
        assert last["offset"] == 950
        # spotipy#868: the last `next` below the cap points at offset 1000, which Spotify refuses
        assert parse_qs(urlsplit(last["next"]).query)["offset"] == ["1000"]
        _error(c.get(last["next"]), 400, "Bad request.")


def test_artist_albums_groups_and_errors(emulator):
    cat = emulator.catalog
    artist = next(a for a in cat.artist_ids() if cat.appears_on(cat.artist_by_id(a).index))
    with client(emulator) as c:
        page = c.get(
            f"/v1/artists/{artist}/albums", params={"include_groups": "appears_on", "limit": 10}
        ).json()
        assert [a["id"] for a in page["items"]] == cat.artist_album_ids(artist, ["appears_on"])[:10]
        for album in page["items"]:
            assert all(x["id"] != artist for x in album["artists"])
        _error(
            c.get(f"/v1/artists/{artist}/albums", params={"include_groups": "albums"}),
            400,
            "Invalid include_groups parameter",
        )


def test_shows_and_episodes_need_a_market(emulator):
    cat = emulator.catalog
    show = next(s for s in cat.shows if "US" in s.markets)
    elsewhere = next(s for s in cat.shows if "US" not in s.markets)
    episode = cat.episodes_of(show.index)[0]
    with client(emulator) as c:
        _error(c.get(f"/v1/shows/{show.id}"), 404, "non existing id")
        _error(c.get(f"/v1/episodes/{episode.id}"), 404, "non existing id")
        _error(c.get(f"/v1/shows/{show.id}/episodes"), 404, "non existing id")
        _error(c.get(f"/v1/shows/{elsewhere.id}", params={"market": "US"}), 404, "non existing id")
        assert (
            c.get(f"/v1/shows/{show.id}", params={"market": "US"}).json()["total_episodes"]
            == show.total_episodes
        )
        assert c.get(f"/v1/episodes/{episode.id}", params={"market": "US"}).json()["show"]["id"] == show.id
        assert c.get("/v1/search", params={"q": show.name, "type": "show"}).json()["shows"]["total"] == 0
        found = c.get("/v1/search", params={"q": show.name, "type": "show", "market": "US"}).json()["shows"]
        assert show.id in [s["id"] for s in found["items"]]


def test_audiobooks_in_the_us_with_chapters(emulator):
    cat = emulator.catalog
    book = cat.audiobooks[0]
    assert "US" in book.markets
    with client(emulator) as c:
        body = c.get(f"/v1/audiobooks/{book.id}", params={"market": "US"}).json()
        assert body["total_chapters"] == book.total_chapters
        chapter_id = body["chapters"]["items"][0]["id"]
        chapter = c.get(f"/v1/chapters/{chapter_id}", params={"market": "US"}).json()
        assert chapter["audiobook"]["id"] == book.id
        _error(c.get(f"/v1/audiobooks/{book.id}"), 404, "non existing id")


def test_track_market_playability(emulator):
    cat = emulator.catalog
    album = next(a for i in range(cat.size) for a in cat.discography(i) if "US" not in a.markets)
    track_id = cat.album_track_ids(album.id)[0]
    with client(emulator) as c:
        body = c.get(f"/v1/tracks/{track_id}", params={"market": "US"}).json()
        assert body["is_playable"] is False
        assert body["restrictions"] == {"reason": "market"}
        assert "is_playable" not in c.get(f"/v1/tracks/{track_id}").json()


def test_cache_control_and_etag_304(emulator):
    cat = emulator.catalog
    show = next(s for s in cat.shows if "US" in s.markets)
    with client(emulator) as c:
        r = c.get(f"/v1/artists/{BTS_ID}")
        assert r.headers["cache-control"] == "public, max-age=7200"
        assert "etag" not in r.headers
        r = c.get(f"/v1/shows/{show.id}", params={"market": "US"})
        assert r.headers["cache-control"] == "public, max-age=60"
        etag = r.headers["etag"]
        assert etag.startswith('"MC-')
        again = c.get(f"/v1/shows/{show.id}", params={"market": "US"}, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        other = c.get(f"/v1/shows/{show.id}", params={"market": "US"}, headers={"If-None-Match": '"MC-x"'})
        assert other.status_code == 200
        playlist = c.get(f"/v1/playlists/{cat.playlists[0].id}")
        assert playlist.headers["cache-control"] == "public, max-age=0"
        assert (
            c.get(
                f"/v1/playlists/{cat.playlists[0].id}", headers={"If-None-Match": playlist.headers["etag"]}
            ).status_code
            == 304
        )
    assert emulator.stats()["by_status"]["304"] == 2
