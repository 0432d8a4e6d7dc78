"""The emulator answers as Spotify really does where real client code can tell the difference: one
test per gap found, each in both profiles, each citing where the real behaviour was seen."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from emulator_helpers import client
from openapi_check import validate, validate_schema

from spotify_catalog.emulator import BTS_ID

PROFILES = ["development", "extended"]


@pytest.fixture(scope="module")
def emulators():
    from spotify_catalog.emulator import EmulatorConfig, serve_in_thread

    with (
        serve_in_thread(EmulatorConfig(artists=200)) as dev,
        serve_in_thread(EmulatorConfig(artists=200, profile="extended")) as ext,
    ):
        yield {"development": dev, "extended": ext}


@pytest.fixture(params=PROFILES)
def emu(request, emulators) -> Any:
    return emulators[request.param]


def _dev(emu: Any) -> bool:
    return bool(emu.config.profile == "development")


def _error(r: httpx.Response, status: int, message: str | None) -> None:
    assert r.status_code == status, r.text
    expected: dict[str, Any] = (
        {"status": status} if message is None else {"status": status, "message": message}
    )
    assert r.json() == {"error": expected}


# 1 ------------------------------------------------------------------------------------------------
def test_trailing_slash_reaches_the_same_route(emu):
    """spotipy's client.py calls `tracks/?ids=`, `artists/?ids=`, `albums/?ids=`, `albums/{id}/tracks/`
    (spotipy#160); Spotify serves them like the paths without the slash."""
    cat = emu.catalog
    artist = cat.artist_ids()[3]
    album = cat.artist_album_ids(artist)[0]
    track = cat.album_track_ids(album)[0]
    with client(emu) as c:
        for path, params in [
            (f"/v1/albums/{album}/tracks", {}),
            (f"/v1/artists/{artist}", {}),
            (f"/v1/artists/{artist}/albums", {"limit": "2"}),
            ("/v1/search", {"q": "BTS", "type": "artist"}),
            ("/v1/tracks", {"ids": track}),
            ("/v1/artists", {"ids": artist}),
            ("/v1/albums", {"ids": album}),
            ("/v1/me", {}),  # spotipy's current_user() and me() call `me/`
        ]:
            plain, slashed = c.get(path, params=params), c.get(path + "/", params=params)
            assert slashed.status_code == plain.status_code, path
            assert slashed.json() == plain.json(), path
            if path in ("/v1/tracks", "/v1/artists", "/v1/albums"):  # batch calls: extended only
                assert plain.status_code == (403 if _dev(emu) else 200)
            elif path == "/v1/me":
                assert plain.status_code == 401
            else:
                assert plain.status_code == 200
    by_route = emu.stats()["by_route"]
    assert by_route["GET /v1/albums/{id}/tracks"] >= 2
    assert "GET (unknown)" not in by_route
    assert by_route["GET /v1/me"] >= 2


def test_me_needs_a_user(emu):
    """`GET /v1/me` with a Client Credentials token: 401 `Unauthorized.` (spotify-web-api-php#222:
    `me()` with a client-credentials token throws `SpotifyWebAPIException: Unauthorized.`, the
    library's message being the body's `error.message`; spotify-web-api-node#166: `getMe()` after
    `clientCredentialsGrant()` gives 401). No `WWW-Authenticate`: the token itself is valid."""
    with client(emu) as c:
        r = c.get("/v1/me")
        _error(r, 401, "Unauthorized.")
        assert "www-authenticate" not in r.headers
        assert c.get("/v1/search", params={"q": "BTS", "type": "artist"}).status_code == 200


# 2 ------------------------------------------------------------------------------------------------
def test_development_mode_has_no_genres_key(emu):
    """2026 client-credentials samples; spotDL#2615/#2619 crash with KeyError: 'genres' (PR #2636)."""
    artist = emu.catalog.artist_ids()[3]
    album = emu.catalog.artist_album_ids(artist)[0]
    with client(emu) as c:
        bodies = [c.get(f"/v1/artists/{artist}").json(), c.get(f"/v1/albums/{album}").json()]
    for body in bodies:
        assert ("genres" in body) is not _dev(emu)


# 3 ------------------------------------------------------------------------------------------------
def test_search_results_can_hold_null_items(emu):
    """counsel-spotify#15 (2025-12), SpotifyAPI-NET#1033, spotify-web-api-ts-sdk#141:
    `"items":[null,null,{...}]` in playlist searches; `total` counts them."""
    cat = emu.catalog
    gone = next(p for p in cat.playlists if p.null_in_search)
    with client(emu) as c:
        page = c.get("/v1/search", params={"q": gone.name, "type": "playlist", "limit": 10}).json()
    items = page["playlists"]["items"]
    assert None in items
    assert all(item is None or item["type"] == "playlist" for item in items)
    assert page["playlists"]["total"] >= len(items)


# 4 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "content_type", "body"),
    [("plain_text_error", "text/plain", b"Too many requests"), ("empty_429", None, b"")],
)
def test_error_bodies_that_are_not_json(make_emulator, profile_name, kind, content_type, body):
    """spotify/web-api#1267: 429s with an empty body or the plain text `Too many requests`;
    zmb3/spotify#301: the premium-required 403 is plain text."""
    emu = make_emulator(profile=profile_name, fault_rate=1.0, fault_kinds=(kind,))
    with client(emu) as c:
        r = c.get(f"/v1/artists/{BTS_ID}")
    assert r.status_code == 429
    assert r.content == body
    assert r.headers.get("content-type") == content_type
    assert r.headers["retry-after"] == "1"
    assert r.headers["cache-control"] == "private, max-age=0"


@pytest.fixture(params=PROFILES)
def profile_name(request) -> str:
    return str(request.param)


# 5 ------------------------------------------------------------------------------------------------
def test_search_next_points_at_offset_1000_which_is_refused(make_emulator, profile_name):
    """spotipy#868: at the 1,000-result cap `next` points to offset 1000; following it gives
    `400 Bad request.`"""
    emu = make_emulator(artists=7000, profile=profile_name)
    limit = 10
    with client(emu) as c:
        params = {"q": "the", "type": "artist", "limit": limit, "offset": 1000 - limit}
        page = c.get("/v1/search", params=params).json()["artists"]
        assert page["total"] > 1000
        assert parse_qs(urlsplit(page["next"]).query)["offset"] == ["1000"]
        _error(c.get(page["next"]), 400, "Bad request.")


# 6 ------------------------------------------------------------------------------------------------
def test_market_drops_available_markets_and_adds_is_playable(emu):
    """rspotify cassettes with market=ES; 2026 fixtures: with `market`, tracks and albums carry
    `is_playable` and no `available_markets`."""
    cat = emu.catalog
    artist = cat.artist_ids()[3]
    album_id = cat.artist_album_ids(artist)[0]
    album = cat.album(album_id)
    market = album.markets[0]
    track = cat.album_track_ids(album_id)[0]
    with client(emu) as c:
        full = c.get(f"/v1/albums/{album_id}", params={"market": market}).json()
        tr = c.get(f"/v1/tracks/{track}", params={"market": market}).json()
        page = c.get(f"/v1/artists/{artist}/albums", params={"market": market, "limit": 3}).json()
        without = c.get(f"/v1/tracks/{track}").json()
    for obj in (full, tr, tr["album"], full["tracks"]["items"][0], *page["items"]):
        assert "available_markets" not in obj
        assert obj["is_playable"] is True
    assert ("available_markets" in without) is not _dev(emu)
    assert "is_playable" not in without
    assert "is_playable" not in without["album"]


def _relinked(cat: Any) -> tuple[str, str, str, str]:
    """(album id, track id, market, playable id) of the first track the catalog relinks."""
    for artist in cat.artist_ids():
        for album in cat.artist_album_ids(artist, ("album", "single", "compilation")):
            for track_id in cat.album_track_ids(album):
                for market in cat.album(album).markets:
                    playable = cat.relinked_id(cat.track(track_id), market)
                    if playable:
                        return album, track_id, market, playable
    raise AssertionError("no relinked track")


def test_relinked_tracks_answer_the_playable_id_and_linked_from(emu):
    """Spotify's track relinking guide: with `market`, a track relinked there comes back with the
    playable track's `id`/`href`/`uri` and the requested one in `linked_from`
    (`{external_urls, href, id, type, uri}`); without `market` no relinking. Development Mode lost
    `linked_from` in February 2026 (reference, "Track [REMOVED]"): no relinking shown there."""
    cat = emu.catalog
    album, track, market, playable = _relinked(cat)
    assert playable != track
    with client(emu) as c:
        one = c.get(f"/v1/tracks/{track}", params={"market": market}).json()
        plain = c.get(f"/v1/tracks/{track}").json()
        page = c.get(f"/v1/albums/{album}/tracks", params={"market": market, "limit": 50}).json()
        full = c.get(f"/v1/albums/{album}", params={"market": market}).json()
        itself = c.get(f"/v1/tracks/{playable}", params={"market": market})
        batch = c.get("/v1/tracks", params={"ids": track, "market": market})
    assert plain["id"] == track
    assert "linked_from" not in plain
    assert itself.status_code == 200
    assert itself.json()["id"] == playable
    assert "linked_from" not in itself.json()
    position = cat.album_track_ids(album).index(track)
    in_page = page["items"][position]
    if _dev(emu):
        assert one["id"] == track
        assert "linked_from" not in one
        assert in_page["id"] == track
        return
    linked = {
        "external_urls": {"spotify": f"https://open.spotify.com/track/{track}"},
        "href": f"{emu.url}/v1/tracks/{track}",
        "id": track,
        "type": "track",
        "uri": f"spotify:track:{track}",
    }
    for obj in (one, in_page, batch.json()["tracks"][0]):
        assert obj["id"] == playable
        assert obj["uri"] == f"spotify:track:{playable}"
        assert obj["href"] == f"{emu.url}/v1/tracks/{playable}"
        assert obj["is_playable"] is True
        assert obj["linked_from"] == linked
    if position < 50:
        assert full["tracks"]["items"][position]["linked_from"] == linked
    others = [t for t in page["items"] if t["id"] != playable]
    assert all("linked_from" not in t for t in others)


# 7 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("market", "message"),
    [("XX", "Invalid market code"), ("us", "Invalid market code"), ("CN", "Unlaunched market")],
)
def test_market_codes_are_validated(emu, market, message):
    """spotipy#850: unknown codes give `400 Invalid market code`, unlaunched ones `400 Unlaunched market`."""
    with client(emu) as c:
        _error(c.get(f"/v1/artists/{BTS_ID}/albums", params={"market": market}), 400, message)
        _error(c.get("/v1/search", params={"q": "BTS", "type": "artist", "market": market}), 400, message)
        assert c.get("/v1/search", params={"q": "BTS", "type": "artist", "market": "VN"}).status_code == 200


# 8 ------------------------------------------------------------------------------------------------
def test_artist_albums_links_always_carry_include_groups(emu):
    """2026 fixtures: `…/albums?offset=48&limit=48&include_groups=album,single,compilation,appears_on`."""
    artist = emu.catalog.artist_ids()[3]
    with client(emu) as c:
        page = c.get(f"/v1/artists/{artist}/albums", params={"limit": 5, "offset": 5}).json()
        chosen = c.get(f"/v1/artists/{artist}/albums", params={"include_groups": "single", "limit": 2}).json()
    base = f"{emu.url}/v1/artists/{artist}/albums"
    assert page["href"] == f"{base}?offset=5&limit=5&include_groups=album,single,compilation,appears_on"
    for link in (page["next"], page["previous"]):
        assert parse_qs(urlsplit(link).query)["include_groups"] == ["album,single,compilation,appears_on"]
    assert chosen["href"] == f"{base}?offset=0&limit=2&include_groups=single"


# 9 ------------------------------------------------------------------------------------------------
def test_search_links_encode_colons_and_carry_the_locale(emu):
    """Real search hrefs: `query=artist%3ABTS`, and `locale=` from Accept-Language."""
    with client(emu) as c:
        plain = c.get("/v1/search", params={"q": "artist:BTS", "type": "artist", "limit": 1}).json()
        localized = c.get(
            "/v1/search",
            params={"q": "artist:BTS", "type": "artist", "limit": 1},
            headers={"Accept-Language": "en-US,en;q=0.9"},
        ).json()
    assert plain["artists"]["href"] == f"{emu.url}/v1/search?offset=0&limit=1&query=artist%3ABTS&type=artist"
    assert localized["artists"]["href"].endswith("&query=artist%3ABTS&type=artist&locale=en-US,en;q%3D0.9")
    assert localized["artists"]["next"].endswith("&locale=en-US,en;q%3D0.9")


# 10 -----------------------------------------------------------------------------------------------
def test_uploaded_playlist_covers_have_no_dimensions(emu):
    """Playlist covers their owners uploaded have `height`/`width` null (the definition allows it)."""
    uploaded = next(p for p in emu.catalog.playlists if p.uploaded_cover)
    mosaic = next(p for p in emu.catalog.playlists if not p.uploaded_cover)
    with client(emu) as c:
        images = c.get(f"/v1/playlists/{uploaded.id}").json()["images"]
        other = c.get(f"/v1/playlists/{mosaic.id}").json()["images"]
    assert [(i["height"], i["width"]) for i in images] == [(None, None)]
    assert other[0]["height"] == 640


# 11 -----------------------------------------------------------------------------------------------
def test_market_from_token_needs_a_user(emu):
    """spotify/web-api#1451: `market=from_token` with a client-credentials token gives 403."""
    with client(emu) as c:
        _error(
            c.get(f"/v1/artists/{BTS_ID}/albums", params={"market": "from_token"}),
            403,
            "Insufficient client scope",
        )


# 12 -----------------------------------------------------------------------------------------------
def test_cors_headers_preflights_and_private_errors(make_emulator, profile_name):
    """Reference §4 (rspotify_rb response headers 2014-2021, 2026): `access-control-allow-origin: *`,
    errors (429 included) `cache-control: private, max-age=0`; OPTIONS preflights are answered."""
    emu = make_emulator(profile=profile_name, rate_limit=1)
    with client(emu) as c:
        ok = c.get(f"/v1/artists/{BTS_ID}")
        limited = c.get(f"/v1/artists/{BTS_ID}")
        unknown = c.get("/v1/nowhere")
        preflight = c.options(
            f"/v1/artists/{BTS_ID}",
            headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"},
        )
    assert ok.status_code == 200
    assert limited.status_code == 429
    for r in (ok, limited, unknown, preflight):
        assert r.headers["access-control-allow-origin"] == "*"
    assert limited.headers["cache-control"] == "private, max-age=0"
    assert unknown.headers["cache-control"] == "private, max-age=0"
    assert preflight.status_code == 200
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert preflight.content == b""
    assert emu.stats()["by_status"]["429"] == 1  # the preflight was not limited


# 13 -----------------------------------------------------------------------------------------------
def test_wrong_method_on_a_known_path_is_405(emu):
    """A known path with a method it does not take: 405, not 404 `Service not found`."""
    with client(emu) as c:
        r = c.post(f"/v1/artists/{BTS_ID}")
        put = c.put("/v1/search/", params={"q": "x", "type": "artist"})
        unknown = c.post("/v1/nowhere")
    _error(r, 405, "Method not allowed")
    assert put.status_code == 405
    _error(unknown, 404, "Service not found")
    validate(emu.config.profile, "/v1/artists/{id}", 405, r.json())


# 14 -----------------------------------------------------------------------------------------------
def test_too_many_ids_message_is_lowercase(make_emulator, profile_name):
    """Spotify's message is `too many ids requested` (lowercase)."""
    emu = make_emulator(profile="extended")
    with client(emu) as c:
        _error(c.get("/v1/artists", params={"ids": ",".join([BTS_ID] * 51)}), 400, "too many ids requested")
        _error(c.get("/v1/albums/", params={"ids": ",".join([BTS_ID] * 21)}), 400, "too many ids requested")
    if profile_name == "development":  # the batch endpoints are refused before their ids are read
        emu.configure(profile="development")
        with client(emu) as c:
            _error(c.get("/v1/artists", params={"ids": ",".join([BTS_ID] * 51)}), 403, "Forbidden")


# 15 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/v1/audio-features",
        f"/v1/audio-features/{BTS_ID}",
        f"/v1/audio-analysis/{BTS_ID}",
        f"/v1/artists/{BTS_ID}/related-artists",
    ],
)
def test_endpoints_removed_in_november_2024_give_a_bare_403(emu, path):
    """Spotify's Nov 2024 announcement; since then `{"error":{"status":403}}` with no message, in any
    mode (recommendations apart: a 404, below). Genre seeds give 404."""
    with client(emu) as c:
        _error(c.get(path, params={"ids": BTS_ID, "seed_artists": BTS_ID}), 403, None)
        assert c.get("/v1/recommendations/available-genre-seeds").status_code == 404


# faults real answers carry -------------------------------------------------------------------------------
def test_null_items_fault_puts_a_null_first_in_every_page(make_emulator, profile_name):
    """`null_items`: `"items":[null,…]` on demand, a `null` added first in every paging object (one
    item more than it holds); totals and batch lists (where null means an unknown id) are left alone."""
    emu = make_emulator(profile=profile_name, fault_rate=1.0, fault_kinds=("null_items",))
    artist = emu.catalog.artist_ids()[3]
    album = emu.catalog.artist_album_ids(artist)[0]
    with client(emu) as c:
        page = c.get(f"/v1/artists/{artist}/albums", params={"limit": 3}).json()
        full = c.get(f"/v1/albums/{album}").json()
        found = c.get("/v1/search", params={"q": "BTS", "type": "artist,album"}).json()
        refused = c.get(f"/v1/artists/{'0' * 22}")
    assert page["items"][0] is None
    assert len(page["items"]) == 4
    assert page["total"] == len(emu.catalog.artist_album_ids(artist))
    assert full["tracks"]["items"][0] is None
    assert full["id"] == album
    assert found["artists"]["items"][0] is None
    assert found["albums"]["items"][0] is None
    assert refused.status_code == 404  # errors keep their body
    if profile_name == "extended":
        with client(emu) as c:
            batch = c.get("/v1/artists", params={"ids": artist}).json()
        assert batch["artists"][0]["id"] == artist


def test_the_new_fault_kinds_are_accepted_by_the_cli_options():
    from spotify_catalog.emulator import FAULT_KINDS, EmulatorConfig

    assert {"plain_text_error", "empty_429", "null_items"} <= set(FAULT_KINDS)
    config = EmulatorConfig(fault_kinds=("plain_text_error", "empty_429", "null_items"), fault_rate=0.1)
    assert config.fault_kinds == ("plain_text_error", "empty_429", "null_items")


# found against 2026 recordings and threads ---------------------------------------------------
def test_development_simplified_playlists_carry_items_not_tracks(emu):
    """Reference §12.2, Pasta-Devs/Marinara-Engine PR #681 (2026-05-11): in Development Mode the
    simplified playlists (there of `/me/playlists`) carry `items` {href, total} and no `tracks` (the
    2026 definition marks `tracks` deprecated); Extended Quota Mode keeps `tracks`, as before 2026
    (February 2026 migration guide: "all existing endpoints, fields, and behaviors remain unchanged")."""
    playlist = next(p for p in emu.catalog.playlists if not p.null_in_search)
    with client(emu) as c:
        found = c.get("/v1/search", params={"q": playlist.name, "type": "playlist"}).json()
    simple = next(p for p in found["playlists"]["items"] if p and p["id"] == playlist.id)
    kept, gone = ("items", "tracks") if _dev(emu) else ("tracks", "items")
    assert gone not in simple
    assert simple[kept] == {
        "href": f"{emu.url}/v1/playlists/{playlist.id}/{kept}",
        "total": playlist.total_items,
    }
    validate_schema(emu.config.profile, "SimplifiedPlaylistObject", simple)


def test_development_playlist_item_rows_carry_item_not_track(emu):
    """Reference §12.2, stiefenm/spoton#119 (2026-07-18): a playlist item row holds its track as
    `item` in Development Mode (no `track`); Extended rows keep `track`. A client-credentials token
    gets no rows in Development Mode (items of playlists it does not own: 403), so the rows are
    checked where they are made, and over HTTP in Extended mode."""
    from spotify_catalog.emulator import render

    cat, playlist = emu.catalog, emu.catalog.playlists[3]
    page = render.playlist_items(cat, playlist, emu.url, None, 0, 5, "/v1/playlists/x/items", [], _dev(emu))
    for row in page["items"]:
        assert row["item"]["type"] == "track"
        assert ("track" in row) is not _dev(emu)
    with client(emu) as c:
        r = c.get(f"/v1/playlists/{playlist.id}/items", params={"limit": 5})
    if _dev(emu):
        _error(r, 403, "Forbidden")
    else:
        assert [row["track"]["id"] for row in r.json()["items"]] == [
            row["item"]["id"] for row in page["items"]
        ]


def test_user_playlists_are_forbidden_in_development_mode(emu):
    """Reference §1.4 ("REMOVED Get User's Playlists") and §12.2 (rinukkusu/spotify-dart#249,
    varunneal/spotify-mcp PR #51): `GET /users/{id}/playlists` answers 403 in Development Mode, not
    404; in Extended mode the owner's public playlists, and an empty page for an unknown user
    (spotify/web-api#1077)."""
    playlist = emu.catalog.playlists[2]
    with client(emu) as c:
        r = c.get(f"/v1/users/{playlist.owner_id}/playlists")
        unknown = c.get("/v1/users/nobody-here/playlists")
    if _dev(emu):
        _error(r, 403, "Forbidden")
        _error(unknown, 403, "Forbidden")
        return
    assert r.status_code == 200
    assert [p["id"] for p in r.json()["items"]] == [playlist.id]
    assert r.json()["items"][0]["owner"]["id"] == playlist.owner_id
    assert unknown.status_code == 200
    assert unknown.json()["items"] == []
    assert unknown.json()["total"] == 0
    validate("extended", "/v1/users/{user_id}/playlists", 200, r.json())


def test_recommendations_answer_404_without_a_message(emu):
    """Reference §12.2: spotipy#1181 (`/v1/recommendations` "returned 404 due to None": no message)
    and LargeModGames/spotatui#28 (2026-09-22, the 404 of an app created after November 2024)."""
    with client(emu) as c:
        r = c.get("/v1/recommendations", params={"seed_artists": BTS_ID})
    _error(r, 404, None)
    assert r.json() == {"error": {"status": 404}}


def test_extended_users_and_categories_answer_as_before_2026(emu):
    """February 2026 migration guide: "Extended Quota Mode apps: No migration required … all existing
    endpoints, fields, and behaviors remain unchanged": `GET /users/{id}` and `GET
    /browse/categories` answer as the 2025-10-03 definition says. Development Mode: 403 `Forbidden`
    (reference §2.1)."""
    playlist = emu.catalog.playlists[4]
    with client(emu) as c:
        user = c.get(f"/v1/users/{playlist.owner_id}")
        categories = c.get("/v1/browse/categories", params={"limit": 5, "offset": 2, "locale": "sv_SE"})
        unknown = c.get("/v1/users/nobody-here")
    if _dev(emu):
        for r in (user, categories, unknown):
            _error(r, 403, "Forbidden")
        return
    assert user.status_code == 200
    body = user.json()
    assert (body["id"], body["display_name"], body["type"]) == (
        playlist.owner_id,
        playlist.owner_name,
        "user",
    )
    assert body["uri"] == f"spotify:user:{playlist.owner_id}"
    validate("extended", "/v1/users/{user_id}", 200, body)
    page = categories.json()["categories"]
    assert (page["offset"], page["limit"], len(page["items"])) == (2, 5, 5)
    assert page["total"] > 7
    assert "locale=sv_SE" in page["href"]
    validate("extended", "/v1/browse/categories", 200, categories.json())
    _error(unknown, 404, "Resource not found")
