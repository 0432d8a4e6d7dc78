"""The test users' data through the user routes (``/v1/me/...``), in both profiles: the 2026 OpenAPI
shapes, the scopes, the Development-Mode rules (five users, playlist items of one's own playlists
only), the listening history as the clock advances, and the truth the tests compare with."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from emulator_helpers import FakeClock, client
from openapi_check import validate, validate_schema

from spotify_catalog import oauth
from spotify_catalog.emulator import EmulatorConfig, serve_in_thread
from spotify_catalog.emulator.users import KEPT_PLAYS, Users
from spotify_catalog.emulator.webapi import NOT_REGISTERED

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
ROUTES = [
    ("/v1/me", {}),
    ("/v1/me/tracks", {}),
    ("/v1/me/tracks", {"market": "from_token", "limit": "50"}),
    ("/v1/me/albums", {}),
    ("/v1/me/shows", {}),
    ("/v1/me/episodes", {}),
    ("/v1/me/following", {"type": "artist"}),
    ("/v1/me/playlists", {}),
    ("/v1/me/top/{type}", {}),
    ("/v1/me/player/recently-played", {}),
]


@pytest.fixture(scope="module")
def emus() -> Iterator[dict[str, Any]]:
    with (
        serve_in_thread(EmulatorConfig(artists=60, users=USERS), clock=FakeClock()) as dev,
        serve_in_thread(
            EmulatorConfig(artists=60, users=USERS, profile="extended"), clock=FakeClock()
        ) as ext,
    ):
        yield {"development": dev, "extended": ext}


def _documented_nulls_out(body: Any, cursor_page: bool = False) -> Any:
    """The body without the ``null`` values the definitions type as strings or objects though they
    describe them as null when there is none: a cursor page's ``next`` ("( `null` if none)") and
    ``cursors`` (spotify/web-api#1405 shows ``"next": null, "cursors": null``), a cursor's ``after``,
    a play's ``context`` (none for a track played alone)."""
    if isinstance(body, dict):
        cursors = "cursors" in body
        return {
            k: _documented_nulls_out(v, k == "cursors")
            for k, v in body.items()
            if not (v is None and ((cursors and k in ("next", "cursors")) or cursor_page or k == "context"))
        }
    if isinstance(body, list):
        return [_documented_nulls_out(x) for x in body]
    return body


def _as(emu: Any, user: str = "alice", scopes: Any = None) -> httpx.Client:
    login = emu.login(user, scopes)
    return httpx.Client(base_url=emu.url, headers=login.headers)


def _path(route: str) -> str:
    return route.replace("{type}", "artists")


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_every_user_route_matches_the_definition(emus: dict[str, Any], profile: str) -> None:
    emu = emus[profile]
    with _as(emu) as me:
        for route, params in ROUTES:
            answer = me.get(_path(route), params=params)
            assert answer.status_code == 200, (route, answer.text)
            body = answer.json()
            if profile == "extended" and route == "/v1/me":
                body.pop("account_id")  # added in May 2026; the 2025 definition does not know it
            optional = frozenset({"available_markets"}) if "market" in params else frozenset()
            validate(profile, route, 200, _documented_nulls_out(body), optional)
        tracks = me.get("/v1/me/top/tracks").json()
        for item in tracks["items"]:
            validate_schema(profile, "TrackObject", item)


def test_development_strips_the_profile_and_extended_shows_it_by_scope(emus: dict[str, Any]) -> None:
    """February 2026 changelog, User: country, email, explicit_content, followers, product removed
    (reference §1.4); May 2026: ``account_id`` added."""
    removed = {"country", "email", "explicit_content", "followers", "product"}
    with _as(emus["development"]) as me:
        body = me.get("/v1/me").json()
    assert not removed & set(body)
    assert len(body["account_id"]) == 10
    with _as(emus["extended"], scopes=[*oauth.DEFAULT_SCOPES, "user-read-email"]) as me:
        assert removed <= set(me.get("/v1/me").json())
    with _as(emus["extended"], scopes=[]) as me:
        assert not {"country", "email", "product", "explicit_content"} & set(me.get("/v1/me").json())


@pytest.mark.parametrize("route", [r for r, _ in ROUTES[1:]])
def test_a_client_credentials_token_gets_401_on_user_routes(emus: dict[str, Any], route: str) -> None:
    """A Client Credentials token has no user: ``401 Unauthorized.`` without ``WWW-Authenticate``
    (spotify-web-api-php#222, spotify/web-api#806; reference §2)."""
    for emu in emus.values():
        with client(emu) as app:
            answer = app.get(_path(route), params={"type": "artist"})
        assert answer.status_code == 401
        assert answer.json() == {"error": {"status": 401, "message": "Unauthorized."}}
        assert "www-authenticate" not in answer.headers


@pytest.mark.parametrize(("route", "params"), ROUTES[1:])
def test_each_route_needs_its_scopes(emus: dict[str, Any], route: str, params: dict[str, str]) -> None:
    """2026 OpenAPI ``security`` of each route; a token without the scope gets ``403 Insufficient
    client scope`` (spotify/web-api#1451 for the message)."""
    emu = emus["development"]
    needed = oauth.ROUTE_SCOPES[route.removeprefix("/v1")]
    for missing in needed:
        with _as(emu, scopes=[s for s in oauth.DEFAULT_SCOPES if s != missing]) as me:
            answer = me.get(_path(route), params=params)
        assert answer.status_code == 403, (route, missing)
        assert answer.json() == {"error": {"status": 403, "message": "Insufficient client scope"}}
    with _as(emu, scopes=needed) as me:
        assert me.get(_path(route), params=params).status_code == 200


def test_a_sixth_user_is_not_one_of_the_development_apps_users(emus: dict[str, Any]) -> None:
    """Development Mode: five users, added in the dashboard (reference §5.2, §12.1); the others log in
    but every call answers 403 (reference §4; aome510/spotify-player#913, Nezreka/SoulSync#158)."""
    dev, ext = emus["development"], emus["extended"]
    with _as(dev, "frank") as frank:
        for path in ("/v1/me", "/v1/me/tracks", f"/v1/artists/{dev.catalog.artist_ids()[3]}"):
            answer = frank.get(path)
            assert answer.status_code == 403, path
            assert answer.json() == {"error": {"status": 403, "message": NOT_REGISTERED}}
    with _as(dev, "erin") as erin:
        assert erin.get("/v1/me").status_code == 200
    with _as(ext, "frank") as frank:
        assert frank.get("/v1/me").status_code == 200


def test_development_gives_playlist_items_of_own_and_collaborative_playlists_only(
    emus: dict[str, Any],
) -> None:
    """2026 OpenAPI definition and the February 2026 migration guide: ``GET /playlists/{id}/items`` "Only
    available for playlists the user owns or collaborates on" (403 otherwise, stiefenm/spoton#119);
    ``GET /playlists/{id}`` has ``items`` only for those."""
    dev = emus["development"]
    alice = dev.users.get("alice")
    own = alice.library.own_playlists[0]
    shared = dev.users.get("bob").library.own_playlists[-1]
    followed = alice.library.followed_playlists[0]
    assert shared.collaborative
    with _as(dev) as me:
        listed = {p["id"] for p in me.get("/v1/me/playlists", params={"limit": 50}).json()["items"]}
        assert {own.id, shared.id, followed.id} <= listed
        for playlist in (own, shared):
            page = me.get(f"/v1/playlists/{playlist.id}/items", params={"limit": 50})
            assert page.status_code == 200
            assert [row["item"]["id"] for row in page.json()["items"]] == [t.id for t in playlist.tracks[:50]]
            assert me.get(f"/v1/playlists/{playlist.id}").json()["items"]["total"] == len(playlist.tracks)
        refused = me.get(f"/v1/playlists/{followed.id}/items")
        assert refused.status_code == 403
        assert refused.json() == {"error": {"status": 403, "message": "Forbidden"}}
        assert "items" not in me.get(f"/v1/playlists/{followed.id}").json()
        assert me.get(f"/v1/playlists/{own.id}/tracks").status_code == 403  # removed in February 2026
    with _as(dev, scopes=["playlist-read-private"]) as me:
        assert (
            me.get(f"/v1/playlists/{shared.id}/items").json()["error"]["message"]
            == "Insufficient client scope"
        )
    with _as(emus["extended"]) as me:
        assert me.get(f"/v1/playlists/{followed.id}/items").status_code == 200


def test_the_library_through_the_api_is_the_truth(emus: dict[str, Any]) -> None:
    emu = emus["development"]
    library = emu.users.get("bob").library
    with _as(emu, "bob") as me:
        saved, url = [], "/v1/me/tracks?limit=50"
        while url:
            page = me.get(url).json()
            saved += [(row["track"]["id"], row["added_at"]) for row in page["items"]]
            url = page["next"]
        assert saved == [(t.id, added) for t, added in library.saved_tracks]
        followed, url = [], "/v1/me/following?type=artist&limit=7"
        while url:
            page = me.get(url).json()["artists"]
            assert page["total"] == len(library.followed_artists)
            followed += [a["id"] for a in page["items"]]
            url = page["next"]
        assert followed == [a.id for a in library.followed_artists]


def test_libraries_depend_on_the_seed_and_the_name_only(emus: dict[str, Any]) -> None:
    emu = emus["development"]
    again = Users(emu.catalog, ("zed", "bob"))
    mine, theirs = emu.users.get("bob"), again.get("bob")
    assert theirs is not None
    assert (mine.id, mine.library) == (theirs.id, theirs.library)
    assert mine.library != emu.users.get("alice").library


def test_top_items_change_with_the_days_of_their_time_range(emus: dict[str, Any]) -> None:
    user = emus["development"].users.get("alice")
    day = 86_400.0
    start = 1_000_000.0  # day 11: inside the same week (7..13) and the same 30 days (0..29)
    assert user.top_artists("short_term", start) != user.top_artists("short_term", start + day)
    assert user.top_artists("medium_term", start) == user.top_artists("medium_term", start + day)
    assert user.top_tracks("long_term", start) == user.top_tracks("long_term", start + 2 * day)
    assert user.top_tracks("long_term", start) != user.top_tracks("long_term", start + 30 * day)


def _history(me: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = me.get("/v1/me/player/recently-played", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_recently_played_keeps_the_last_50_and_pages_by_cursor() -> None:
    """The last 50 plays only (spotify/web-api#764, #627); ``before`` pages back within them and comes
    to an empty page with ``cursors`` and ``next`` null (spotify/web-api#1405)."""
    clock = FakeClock()
    clock.now = 1_800_000_000.0  # 2027-01-15 08:00 UTC: a day of listening before it
    with serve_in_thread(EmulatorConfig(artists=60), clock=clock) as emu, _as(emu) as me:
        truth = emu.users.get("alice").recent_plays(emu.now())
        assert len(truth) == KEPT_PLAYS
        everything = _history(me, limit=50)
        assert [i["played_at"] for i in everything["items"]] == [p.played_at for p in truth]
        pages, params = [], {"limit": 20}
        while True:
            body = _history(me, **params)
            if not body["items"]:
                assert body["cursors"] is None
                break
            pages += body["items"]
            params = {"limit": 20, "before": body["cursors"]["before"]}
        assert pages == everything["items"]
        assert me.get("/v1/me/player/recently-played", params={"limit": 51}).status_code == 400
        after = truth[10].played_at_ms
        newer = _history(me, after=after, limit=50)["items"]
        assert [i["played_at"] for i in newer] == [p.played_at for p in truth[:10]]


def test_the_history_grows_as_the_clock_advances_and_after_collects_every_play_once() -> None:
    """12 advances of 2 hours, each followed by ``after=<newest collected>``: the plays collected are
    exactly the emulator's for that time, none twice; a 30-hour gap holds more than the 50 kept."""
    clock = FakeClock()
    clock.now = 1_800_000_000.0
    config = EmulatorConfig(artists=60, token_ttl=30 * 86_400)  # one access token for the whole test
    with serve_in_thread(config, clock=clock) as emu, _as(emu) as me:
        user = emu.users.get("alice")
        start = emu.now()
        newest = user.recent_plays(start)[0].played_at_ms
        collected: list[str] = []
        for _ in range(12):
            emu.advance(2 * 3600)
            body = _history(me, after=newest, limit=50)
            assert len(body["items"]) < KEPT_PLAYS  # two hours hold fewer plays than are kept
            collected += [i["played_at"] for i in reversed(body["items"])]
            if body["items"]:
                newest = int(body["cursors"]["after"])
        truth = [p.played_at for p in user.plays(start, emu.now())]
        assert collected == truth
        assert len(truth) > 100
        emu.advance(30 * 3600)
        assert len(user.plays(emu.now() - 30 * 3600, emu.now())) > KEPT_PLAYS
        assert len(_history(me, after=newest, limit=50)["items"]) == KEPT_PLAYS
