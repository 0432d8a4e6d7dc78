"""The emulator's one router: which route a method and path take (trailing slashes, odd characters,
other methods, the fallback), and what the app answers, counts and logs for unusual paths and queries."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from emulator_helpers import CLIENT

from spotify_catalog.emulator import BTS_ID, EmulatorConfig, create_app
from spotify_catalog.emulator.app import ROUTER
from spotify_catalog.emulator.catalog import Catalog
from spotify_catalog.emulator.routing import NotAllowed, Redirect, Route, Router
from spotify_catalog.emulator.webapi import SPECS, WEB_API_METHODS

CATALOG = Catalog(42, 60)
ARTIST = CATALOG.artist_ids()[3]
ALBUM = CATALOG.discography(3)[0].id
PLAYLIST = CATALOG.playlists[0].id
FALLBACK = "/{path}"
ALL_METHODS = ", ".join(WEB_API_METHODS)


def _template(method: str, path: str, root_path: str = "") -> Any:
    """The template of the route taken, or what the router decided instead."""
    decision = ROUTER.match(method, path, root_path)
    if isinstance(decision, tuple):
        route, params = decision
        return route.template, params
    return decision


@pytest.mark.parametrize("spec", SPECS, ids=[spec.template for spec in SPECS])
def test_every_web_api_route_is_found_with_and_without_a_trailing_slash(spec: Any) -> None:
    hole = re.search(r"\{(\w+)\}", spec.template)
    path = spec.template.replace(hole[0], ARTIST) if hole else spec.template
    params = {hole[1]: ARTIST} if hole else {}
    for method in WEB_API_METHODS:
        assert _template(method, path) == (spec.template, params)
        assert _template(method, path + "/") == (spec.template + "/", params)
    assert _template("GET", path + "//") == (FALLBACK, {})
    assert _template("GET", path + "/x/y/z") == (FALLBACK, {})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/v1/artists/{ARTIST}/albums", ("/v1/artists/{id}/albums", {"id": ARTIST})),
        ("/v1/artists/a b?#\\é", ("/v1/artists/{id}", {"id": "a b?#\\é"})),  # any characters but /
        ("/v1/artists/{id}", ("/v1/artists/{id}", {"id": "{id}"})),
        ("/v1/artists//albums", (FALLBACK, {})),  # {id} is never empty
        ("/v1/artists/a/b", (FALLBACK, {})),  # nor holds a slash
        ("/v1/markets/x", (FALLBACK, {})),
        ("/v1//", (FALLBACK, {})),
        ("/", (FALLBACK, {})),
        # one newline more than the template: it is part of a last {id}
        ("/v1/markets\n", ("/v1/markets", {})),
        ("/v1/markets/\n", ("/v1/markets/", {})),
        ("/v1/artists/x\n", ("/v1/artists/{id}", {"id": "x\n"})),
        ("/v1/artists/x\n/albums\n", ("/v1/artists/{id}/albums", {"id": "x\n"})),
        ("/v1/markets\n\n", None),  # two: no route, and the fallback takes no newline but a last one
        ("/api/token", (FALLBACK, {})),  # a GET: the token route answers POST only
        ("/_emulator/stats/", (FALLBACK, {})),  # no trailing slash on the other routes
        ("/_emulator/stats", ("/_emulator/stats", {})),
    ],
)
def test_a_get_takes_the_route_its_path_matches(path: str, expected: Any) -> None:
    assert _template("GET", path) == expected


def test_a_method_no_route_answers_is_a_405_naming_the_methods_of_the_route() -> None:
    assert _template("POST", "/api/token") == ("/api/token", {})
    assert _template("TRACE", "/api/token") == NotAllowed("POST")
    assert _template("TRACE", "/v1/markets") == NotAllowed(ALL_METHODS)
    assert _template("TRACE", "/_emulator/config") == NotAllowed("GET, HEAD, POST")
    assert _template("TRACE", "/nothing") == NotAllowed(ALL_METHODS)  # the fallback's
    assert _template("HEAD", "/_emulator/stats") == ("/_emulator/stats", {})
    assert _template("PUT", "/_emulator/stats") == (FALLBACK, {})  # the fallback answers PUT


def test_a_path_nothing_matches_is_redirected_to_its_other_slash_or_not_found() -> None:
    assert _template("GET", "/x\ny") is None  # a newline the fallback does not take
    assert _template("GET", "") == Redirect("/")
    assert _template("GET", "/x\ny/") is None
    assert _template("GET", "/v1/markets\n/") == Redirect("/v1/markets\n")
    assert _template("GET", "/v1/artists/a\nb//") == Redirect("/v1/artists/a\nb")
    assert _template("GET", "/v1/artists/a\nb/") == ("/v1/artists/{id}/", {"id": "a\nb"})
    assert _template("TRACE", "/v1/artists/a\nb/") == NotAllowed(ALL_METHODS)


def test_the_root_path_is_left_out_of_what_is_routed() -> None:
    assert _template("GET", "/root/v1/markets", "/root") == ("/v1/markets", {})
    assert _template("GET", "/rooted/v1/markets", "/root") == (FALLBACK, {})
    assert _template("GET", "/root", "/root") == Redirect("/root/")
    assert _template("GET", "/v1/markets", "/root") == ("/v1/markets", {})


@pytest.mark.parametrize(
    ("templates", "message"),
    [
        (["/v1/{id}"], "the third segment or a later one"),
        (["/v1/artists/{id}/{id}"], "the third segment or a later one"),
        (["/v1/artists/{id}x"], "the third segment or a later one"),
        (["v1/artists"], "the third segment or a later one"),
        (["/v1/artists/{id}", "/v1/artists/{id}"], "two routes for"),
        (["/v1/artists/{id}/albums", "/v1/artists/x/albums"], "two routes match /v1/artists/x/albums"),
        (["/v1/me/{id}/x", "/v1/me/top/{type}"], "two routes match /v1/me/top/x"),
        (["/v1/me/top/{type}", "/v1/me/{id}/artists"], "two routes match /v1/me/top/artists"),
    ],
)
def test_the_router_refuses_routes_it_cannot_tell_apart(templates: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Router([Route(t, ("GET",), None) for t in templates], Route("/{path}", ("GET",), None))


# ----------------------------------------------------------------------------- through the app
@pytest.fixture
def request_log() -> Iterator[list[str]]:
    """The request log's lines, without their duration."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage().rsplit(" ", 2)[0])  # type: ignore[method-assign]
    logger = logging.getLogger("spotify_catalog.emulator.app")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _exchange(app: Any, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[Any, ...]:
    """One request with a valid token: the response, and the stats route it was counted under."""

    async def scenario() -> tuple[Any, ...]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emu") as c:
            r = await c.post("/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
            auth = {"Authorization": f"Bearer {r.json()['access_token']}", **(headers or {})}
            before = (await c.get("/_emulator/stats")).json()["by_route"]
            r = await c.request(method, path, headers=auth)
            after = (await c.get("/_emulator/stats")).json()["by_route"]
            counted = [route for route, n in after.items() if n != before.get(route, 0)]
            return r, counted

    return asyncio.run(scenario())


ARTIST_ROUTE = "GET /v1/artists/{id}"


@pytest.mark.parametrize(
    ("path", "status", "counted", "logged"),
    [  # logged: the path and query the request log shows, when they are not the ones asked for
        (f"/v1/artists/{ARTIST}/", 200, ARTIST_ROUTE, None),
        (f"/v1/albums/{ALBUM}/tracks/?limit=2", 200, "GET /v1/albums/{id}/tracks", None),
        (f"/v1/tracks/?ids={ARTIST}", 200, "GET /v1/tracks", None),
        ("/v1/search?q=caf%C3%A9&type=track", 200, "GET /v1/search", None),
        (f"/v1/artists/{ARTIST}?x=%23y", 200, ARTIST_ROUTE, None),
        (f"/v1/artists/{ARTIST}?q=a b", 200, ARTIST_ROUTE, f"/v1/artists/{ARTIST}?q=a%20b"),
        ("/v1/markets%0A", 200, "GET /v1/markets", "/v1/markets"),
        ("/v1/audio-features/x", 403, "GET /v1/audio-features/{id}", None),
        ("/v1/artists/not-an-id!", 400, ARTIST_ROUTE, None),
        ("/v1/artists/0000000000000000000000", 404, ARTIST_ROUTE, None),
        (f"/v1/artists/{ARTIST}%20", 400, ARTIST_ROUTE, f"/v1/artists/{ARTIST} "),
        (f"/v1/artists/{ARTIST}%3F", 400, ARTIST_ROUTE, None),
        ("/v1/artists/x%0A/albums", 400, "GET /v1/artists/{id}/albums", "/v1/artists/x/albums"),
        ("/v1/artists/%7Bid%7D", 400, ARTIST_ROUTE, "/v1/artists/{id}"),
        ("/v1/artists/a%2Fb", 404, "GET (unknown)", "/v1/artists/a/b"),
        ("/v1/artists//albums", 404, "GET (unknown)", None),
        ("/v1/nothing", 404, "GET (unknown)", None),
        ("/_emulator/stats/", 404, "GET (unknown)", None),
        ("/api/token", 404, "GET (unknown)", None),
    ],
)
def test_odd_paths_and_queries_are_answered_counted_and_logged(
    path: str, status: int, counted: str, logged: str | None, request_log: list[str]
) -> None:
    app = create_app(EmulatorConfig(profile="extended", artists=60))
    response, routes = _exchange(app, "GET", path)
    assert response.status_code == status
    assert routes == [counted]
    assert request_log[-1] == f"GET {logged or path} {status}"
    if counted == "GET (unknown)":
        assert response.json() == {"error": {"status": 404, "message": "Service not found"}}
        assert response.headers["access-control-allow-methods"] == "GET, POST, OPTIONS, PUT, DELETE, PATCH"


def test_links_name_the_path_as_asked_with_a_trailing_slash() -> None:
    app = create_app(EmulatorConfig(profile="extended", artists=60))
    for tail in ("tracks", "items"):
        response, _ = _exchange(app, "GET", f"/v1/playlists/{PLAYLIST}/{tail}/?limit=2")
        assert response.json()["next"] == f"http://emu/v1/playlists/{PLAYLIST}/{tail}?offset=2&limit=2"


def test_other_methods_are_a_preflight_a_405_or_spotifys_404(request_log: list[str]) -> None:
    app = create_app(EmulatorConfig(artists=10))
    response, routes = _exchange(app, "PUT", "/v1/markets")
    assert (response.status_code, routes) == (405, ["PUT /v1/markets"])
    assert response.json() == {"error": {"status": 405, "message": "Method not allowed"}}
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert response.headers["access-control-allow-origin"] == "*"
    response, routes = _exchange(app, "OPTIONS", "/nowhere/at/all")
    assert (response.status_code, routes, response.content) == (200, ["OPTIONS (unknown)"], b"")
    assert response.headers["access-control-max-age"] == "604800"
    response, routes = _exchange(app, "HEAD", f"/v1/artists/{BTS_ID}/")
    assert (response.status_code, routes) == (200, ["GET /v1/artists/{id}"])
    assert request_log[-1] == f"HEAD /v1/artists/{BTS_ID}/ 200"
    response, routes = _exchange(app, "POST", "/_emulator/stats")
    assert (response.status_code, routes) == (404, ["POST (unknown)"])
    response, routes = _exchange(app, "TRACE", "/v1/markets")
    assert (response.status_code, routes, response.text) == (405, [], "Method Not Allowed")
    assert response.headers["allow"] == ALL_METHODS
    assert not [line for line in request_log if line.startswith("TRACE")]  # neither counted nor logged


def test_a_handler_that_fails_is_a_500_and_its_error_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from spotify_catalog.emulator import render

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(render, "artist", broken)
    app = create_app(EmulatorConfig(artists=10))

    async def scenario(path: str) -> tuple[int, str, str]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://emu") as c:
            r = await c.post("/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await c.get(path, headers=auth)
            return r.status_code, r.headers["content-type"], r.text

    for path in (f"/v1/artists/{BTS_ID}", f"/v1/artists/{BTS_ID}/?x=a%20b"):
        assert asyncio.run(scenario(path)) == (500, "text/plain; charset=utf-8", "Internal Server Error")
    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(_raising(app))


async def _raising(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emu") as c:
        r = await c.post("/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
        await c.get(f"/v1/artists/{BTS_ID}", headers={"Authorization": f"Bearer {r.json()['access_token']}"})


def test_a_lifespan_completes_and_a_websocket_is_closed() -> None:
    app = create_app(EmulatorConfig(artists=10))
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run(scope_type: str, inbox: list[dict[str, Any]]) -> None:
        async def receive() -> dict[str, Any]:
            return inbox.pop(0)

        await app({"type": scope_type, "path": "/v1/markets", "headers": []}, receive, send)

    asyncio.run(run("lifespan", [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]))
    asyncio.run(run("websocket", [{"type": "websocket.connect"}]))
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
        "websocket.close",
    ]
