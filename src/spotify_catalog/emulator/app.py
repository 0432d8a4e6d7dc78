"""The Starlette application: token endpoint, Web API routes, ``/_emulator/*`` control routes.

Every Web API request goes through :func:`_answer`: authentication, quota, rate limit, faults,
profile restrictions, the handler, then ETag/304; around it latency, counters and the request log. A
``GET`` on a plain path takes the quick lane (:class:`EmulatorApp`, :func:`_quick_get`): no Starlette
router, ``Request`` or middleware; everything else takes Starlette's routes (:func:`_web_api`). Both
give the same answers (``tests/emulator/test_emulator_quick_lane.py``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from spotify_catalog.emulator import faults, render
from spotify_catalog.emulator.catalog import (
    ALBUM_GROUPS,
    Album,
    Artist,
    Audiobook,
    Chapter,
    Episode,
    Playlist,
    Show,
    Track,
)
from spotify_catalog.emulator.config import BODY_FAULTS, RAW_FAULTS, EmulatorConfig
from spotify_catalog.emulator.ids import is_base62_id
from spotify_catalog.emulator.search import TYPES
from spotify_catalog.emulator.state import EmulatorState
from spotify_catalog.emulator.words import COUNTRY_CODES, MARKETS, UNLAUNCHED_MARKETS

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
CATALOG_CACHE = "public, max-age=7200"
SHOW_CACHE = "public, max-age=60"
PLAYLIST_CACHE = "public, max-age=0"
PRIVATE_CACHE = "private, max-age=0"
NO_CACHE = "no-cache, no-store, must-revalidate"
UNAUTHORIZED_MESSAGE = "Missing/invalid/expired access token"
JSON = dict[str, Any]
# on every Web API answer, as Spotify's (reference §4)
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": "Accept, App-Platform, Authorization, Content-Type, Origin, Retry-After, "
    "Spotify-App-Version, X-Cloud-Trace-Context, client-token, content-access-token",
    "access-control-allow-methods": "GET, POST, OPTIONS, PUT, DELETE, PATCH",
    "access-control-allow-credentials": "true",
    "access-control-max-age": "604800",
}
_CORS_RAW = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in CORS.items()]
_ORIGIN_RAW = [(b"access-control-allow-origin", b"*")]  # enough on a success, kept short for speed
DEFAULT_GROUPS = "album,single,compilation,appears_on"


class ApiFail(Exception):
    """An error answer of the Web API: ``{"error": {"status": ..., "message": ...}}``."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.reason = reason


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _encode_catalog(body: JSON) -> bytes:
    """What :func:`_encode` writes, 10 to 20 times quicker, for what the handlers return: strings, ints,
    booleans, ``None``, lists and dicts, never a float (``orjson`` and ``json`` write floats differently;
    ``test_every_body_is_what_json_writes`` checks the bytes are the same)."""
    return orjson.dumps(body)


def error_response(fail: ApiFail) -> Response:
    """Spotify's error body; an empty message is left out (``{"error":{"status":403}}``)."""
    error: JSON = {"status": fail.status}
    if fail.message:
        error["message"] = fail.message
    if fail.reason:
        error["reason"] = fail.reason
    headers = {"content-type": JSON_TYPE, **fail.headers}
    if fail.status != 401:
        headers.setdefault("cache-control", PRIVATE_CACHE)
    return Response(_encode({"error": error}), status_code=fail.status, headers=headers)


def etag_of(body: bytes) -> str:
    digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
    return '"MC-' + base64.b64encode(f'"{digest}"'.encode()).decode() + '"'


Headers = Sequence[tuple[bytes, bytes]]
"""An ASGI scope's ``headers``: lower-case names, as the server received them."""


def header(headers: Headers, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as Starlette's ``Request.headers.get``."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


@functools.lru_cache(maxsize=1024)
def query_params(query_string: bytes) -> QueryParams:
    """The parsed query string (immutable, so the same object serves every request that sends it)."""
    return QueryParams(query_string)


@dataclass(slots=True)
class Ctx:
    """What a Web API handler sees."""

    state: EmulatorState
    params: QueryParams
    path: dict[str, str]
    base: str
    dev: bool
    headers: Headers = ()

    def locale(self) -> str | None:
        """The request's ``Accept-Language`` (search links carry it as ``locale=``)."""
        return header(self.headers, b"accept-language")

    def market(self) -> str | None:
        value = self.params.get("market")
        if value is None:
            return None
        if value == "from_token":  # a Client Credentials token has no user, so no country
            raise ApiFail(403, "Insufficient client scope")
        if value not in COUNTRY_CODES:
            raise ApiFail(400, "Invalid market code")
        if value in UNLAUNCHED_MARKETS:
            raise ApiFail(400, "Unlaunched market")
        return value

    def limit(self, default: int, maximum: int) -> int:
        raw = self.params.get("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise ApiFail(400, "Invalid limit")
        return int(raw)

    def offset(self, maximum: int | None = None) -> int:
        raw = self.params.get("offset", "0")
        if not raw.isdigit() or (maximum is not None and int(raw) > maximum):
            raise ApiFail(400, "Invalid offset")
        return int(raw)

    def other_params(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.params.multi_items() if k not in ("offset", "limit")]

    def entity(self, kind: type[Any], entity_id: str | None = None) -> Any:
        entity_id = self.path["id"] if entity_id is None else entity_id
        if not is_base62_id(entity_id):
            raise ApiFail(400, "Invalid base62 id")
        found = self.state.catalog.lookup(entity_id)
        if not isinstance(found, kind):
            raise ApiFail(404, "Resource not found")
        return found

    def ids(self, maximum: int) -> list[str]:
        raw = self.params.get("ids")
        if not raw:
            raise ApiFail(400, "Missing parameter ids")
        ids = raw.split(",")
        if len(ids) > maximum:
            raise ApiFail(400, "too many ids requested")
        if not all(is_base62_id(i) for i in ids):
            raise ApiFail(400, "Invalid base62 id")
        return ids

    def batch(self, kind: type[Any], maximum: int) -> list[Any]:
        return [x if isinstance(x := self.state.catalog.lookup(i), kind) else None for i in self.ids(maximum)]


# ----------------------------------------------------------------------------- handlers
def h_search(ctx: Ctx) -> JSON:
    q = ctx.params.get("q") or ctx.params.get("query")  # paging links say query=, as Spotify's do
    if not q or not q.strip():
        raise ApiFail(400, "No search query")
    raw_types = ctx.params.get("type")
    if not raw_types:
        raise ApiFail(400, "Missing parameter type")
    types = list(dict.fromkeys(t.strip() for t in raw_types.split(",")))
    for t in types:
        if t not in TYPES:
            raise ApiFail(400, f"Bad search type field {t}")
    limit = ctx.limit(*((5, 10) if ctx.dev else (20, 50)))
    offset = ctx.offset(1000)
    if offset == 1000:  # where the last `next` below the cap points (spotipy#868)
        raise ApiFail(400, "Bad request.")
    if offset + limit > 1000:
        raise ApiFail(400, "Invalid offset")
    market = ctx.market()
    extra = [(k, ctx.params[k]) for k in ("market", "include_external") if k in ctx.params]
    locale = ctx.locale()
    if locale:
        extra.append(("locale", locale))
    cat, base, dev = ctx.state.catalog, ctx.base, ctx.dev
    out: JSON = {}
    for t in types:
        results = ctx.state.searcher.search(q, t, market)
        page: tuple[Any, ...] = results[offset : offset + limit]
        items: list[Any]
        if t == "artist":
            items = [render.artist(x, base, dev) for x in page]
        elif t == "album":
            items = [render.simple_album(cat, x, base, dev, market=market) for x in page]
        elif t == "track":
            items = [render.track(cat, x, base, dev, market) for x in page]
        elif t == "playlist":
            items = [None if x.null_in_search else render.simple_playlist(x, base, dev) for x in page]
        elif t == "show":
            items = [render.simple_show(x, base, dev) for x in page]
        elif t == "episode":
            items = [render.simple_episode(cat, x, base) for x in page]
        else:
            items = [render.simple_audiobook(x, base, dev) for x in page]
        params = [("query", q), ("type", t), *extra]
        out[f"{t}s"] = render.paging(items, base, "/v1/search", params, offset, limit, len(results), 1000)
    return out


def h_artist(ctx: Ctx) -> JSON:
    return render.artist(ctx.entity(Artist), ctx.base, ctx.dev)


def h_artists(ctx: Ctx) -> JSON:
    return {"artists": [render.artist(a, ctx.base, ctx.dev) if a else None for a in ctx.batch(Artist, 50)]}


def h_artist_albums(ctx: Ctx) -> JSON:
    artist: Artist = ctx.entity(Artist)
    raw = ctx.params.get("include_groups")
    groups = ALBUM_GROUPS if raw is None else tuple(g.strip() for g in raw.split(",") if g.strip())
    if not groups or any(g not in ALBUM_GROUPS for g in groups):
        raise ApiFail(400, "Invalid include_groups parameter")
    limit = ctx.limit(*((5, 10) if ctx.dev else (20, 50)))
    offset = ctx.offset()
    market = ctx.market()
    albums = ctx.state.catalog.artist_albums(artist.index, groups, market)
    items = [
        render.simple_album(ctx.state.catalog, al, ctx.base, ctx.dev, group, market)
        for al, group in albums[offset : offset + limit]
    ]
    params = ctx.other_params()
    if raw is None:  # links always say which groups
        params.append(("include_groups", DEFAULT_GROUPS))
    path = f"/v1/artists/{artist.id}/albums"
    return render.paging(items, ctx.base, path, params, offset, limit, len(albums))


def h_top_tracks(ctx: Ctx) -> JSON:
    artist: Artist = ctx.entity(Artist)
    cat = ctx.state.catalog
    albums = sorted(cat.discography(artist.index), key=lambda al: -al.popularity)[:10]
    tracks = sorted(
        (t for al in albums for t in cat.tracks_of(al.artist, al.number)), key=lambda t: (-t.popularity, t.id)
    )[:10]
    return {"tracks": [render.track(cat, t, ctx.base, ctx.dev, ctx.market()) for t in tracks]}


def h_album(ctx: Ctx) -> JSON:
    return render.album(ctx.state.catalog, ctx.entity(Album), ctx.base, ctx.dev, ctx.market())


def h_albums(ctx: Ctx) -> JSON:
    market = ctx.market()
    return {
        "albums": [
            render.album(ctx.state.catalog, a, ctx.base, ctx.dev, market) if a else None
            for a in ctx.batch(Album, 20)
        ]
    }


def h_album_tracks(ctx: Ctx) -> JSON:
    album: Album = ctx.entity(Album)
    limit, offset, market = ctx.limit(20, 50), ctx.offset(), ctx.market()
    cat = ctx.state.catalog
    tracks = cat.tracks_of(album.artist, album.number)
    items = [render.simple_track(cat, t, ctx.base, ctx.dev, market) for t in tracks[offset : offset + limit]]
    return render.paging(
        items, ctx.base, f"/v1/albums/{album.id}/tracks", ctx.other_params(), offset, limit, len(tracks)
    )


def h_track(ctx: Ctx) -> JSON:
    return render.track(ctx.state.catalog, ctx.entity(Track), ctx.base, ctx.dev, ctx.market())


def h_tracks(ctx: Ctx) -> JSON:
    market = ctx.market()
    return {
        "tracks": [
            render.track(ctx.state.catalog, t, ctx.base, ctx.dev, market) if t else None
            for t in ctx.batch(Track, 50)
        ]
    }


def _in_market(markets: tuple[str, ...], market: str | None) -> bool:
    return market is not None and market in markets


def _show(ctx: Ctx, entity: Show | None = None) -> Show:
    show = entity or ctx.entity(Show)
    if not _in_market(show.markets, ctx.market()):
        raise ApiFail(404, "non existing id")
    return show


def h_show(ctx: Ctx) -> JSON:
    show = _show(ctx)
    return render.show(ctx.state.catalog, show, ctx.base, ctx.dev, ctx.market() or "")


def h_shows(ctx: Ctx) -> JSON:
    market = ctx.market()
    return {
        "shows": [
            render.simple_show(s, ctx.base, ctx.dev) if s and _in_market(s.markets, market) else None
            for s in ctx.batch(Show, 50)
        ]
    }


def h_show_episodes(ctx: Ctx) -> JSON:
    show = _show(ctx)
    limit, offset = ctx.limit(20, 50), ctx.offset()
    cat = ctx.state.catalog
    episodes = cat.episodes_of(show.index)
    items = [render.simple_episode(cat, e, ctx.base) for e in episodes[offset : offset + limit]]
    return render.paging(
        items, ctx.base, f"/v1/shows/{show.id}/episodes", ctx.other_params(), offset, limit, len(episodes)
    )


def h_episode(ctx: Ctx) -> JSON:
    episode: Episode = ctx.entity(Episode)
    cat = ctx.state.catalog
    _show(ctx, cat.shows[episode.show])
    return render.episode(cat, episode, ctx.base, ctx.dev)


def h_episodes(ctx: Ctx) -> JSON:
    cat, market = ctx.state.catalog, ctx.market()
    return {
        "episodes": [
            render.episode(cat, e, ctx.base, ctx.dev)
            if e and _in_market(cat.shows[e.show].markets, market)
            else None
            for e in ctx.batch(Episode, 50)
        ]
    }


def _audiobook(ctx: Ctx, entity: Audiobook | None = None) -> Audiobook:
    book = entity or ctx.entity(Audiobook)
    if not _in_market(book.markets, ctx.market()):
        raise ApiFail(404, "non existing id")
    return book


def h_audiobook(ctx: Ctx) -> JSON:
    book = _audiobook(ctx)
    return render.audiobook(ctx.state.catalog, book, ctx.base, ctx.dev, ctx.market() or "")


def h_audiobooks(ctx: Ctx) -> JSON:
    cat, market = ctx.state.catalog, ctx.market()
    return {
        "audiobooks": [
            render.audiobook(cat, b, ctx.base, ctx.dev, market or "")
            if b and _in_market(b.markets, market)
            else None
            for b in ctx.batch(Audiobook, 50)
        ]
    }


def h_audiobook_chapters(ctx: Ctx) -> JSON:
    book = _audiobook(ctx)
    limit, offset = ctx.limit(20, 50), ctx.offset()
    cat = ctx.state.catalog
    chapters = cat.chapters_of(book.index)
    items = [render.simple_chapter(cat, c, ctx.base, ctx.dev) for c in chapters[offset : offset + limit]]
    return render.paging(
        items,
        ctx.base,
        f"/v1/audiobooks/{book.id}/chapters",
        ctx.other_params(),
        offset,
        limit,
        len(chapters),
    )


def h_chapter(ctx: Ctx) -> JSON:
    chapter: Chapter = ctx.entity(Chapter)
    cat = ctx.state.catalog
    _audiobook(ctx, cat.audiobooks[chapter.audiobook])
    return render.chapter(cat, chapter, ctx.base, ctx.dev)


def h_chapters(ctx: Ctx) -> JSON:
    cat, market = ctx.state.catalog, ctx.market()
    return {
        "chapters": [
            render.chapter(cat, c, ctx.base, ctx.dev)
            if c and _in_market(cat.audiobooks[c.audiobook].markets, market)
            else None
            for c in ctx.batch(Chapter, 50)
        ]
    }


def h_playlist(ctx: Ctx) -> JSON:
    return render.playlist(ctx.state.catalog, ctx.entity(Playlist), ctx.base, ctx.dev, ctx.market())


def h_playlist_items(ctx: Ctx) -> JSON:
    playlist: Playlist = ctx.entity(Playlist)
    limit, offset = ctx.limit(20, 50), ctx.offset()
    tail = ctx.path["tail"]
    return render.playlist_items(
        ctx.state.catalog,
        playlist,
        ctx.base,
        ctx.market(),
        offset,
        limit,
        f"/v1/playlists/{playlist.id}/{tail}",
        ctx.other_params(),
    )


def h_new_releases(ctx: Ctx) -> JSON:
    limit, offset = ctx.limit(20, 50), ctx.offset()
    albums = ctx.state.catalog.new_releases
    items = [
        render.simple_album(ctx.state.catalog, al, ctx.base, ctx.dev)
        for al in albums[offset : offset + limit]
    ]
    return {
        "albums": render.paging(
            items, ctx.base, "/v1/browse/new-releases", ctx.other_params(), offset, limit, len(albums)
        )
    }


def h_markets(ctx: Ctx) -> JSON:
    return {"markets": list(MARKETS)}


def h_forbidden(ctx: Ctx) -> JSON:
    raise ApiFail(403, "Forbidden")


def h_me(ctx: Ctx) -> JSON:
    """The current user: a Client Credentials token has none (spotify-web-api-php#222)."""
    raise ApiFail(401, "Unauthorized.")


def h_removed(ctx: Ctx) -> JSON:
    """Endpoints removed in November 2024: 403 without a message, whatever the app's mode."""
    raise ApiFail(403, "")


@dataclass(frozen=True)
class Spec:
    """A Web API route: handler, Cache-Control, ETag support, allowed in Development Mode."""

    template: str
    handler: Callable[[Ctx], JSON]
    cache: str = CATALOG_CACHE
    etag: bool = False
    development: bool = True
    removed: bool = False

    @functools.cached_property
    def route(self) -> str:
        """How ``/_emulator/stats`` names a ``GET`` of this route."""
        return f"GET {self.template}"


SPECS = (
    Spec("/v1/search", h_search),
    Spec("/v1/artists", h_artists, development=False),
    Spec("/v1/artists/{id}", h_artist),
    Spec("/v1/artists/{id}/albums", h_artist_albums),
    Spec("/v1/artists/{id}/top-tracks", h_top_tracks, development=False),
    Spec("/v1/albums", h_albums, development=False),
    Spec("/v1/albums/{id}", h_album),
    Spec("/v1/albums/{id}/tracks", h_album_tracks),
    Spec("/v1/tracks", h_tracks, development=False),
    Spec("/v1/tracks/{id}", h_track),
    Spec("/v1/shows", h_shows, SHOW_CACHE, development=False),
    Spec("/v1/shows/{id}", h_show, SHOW_CACHE, etag=True),
    Spec("/v1/shows/{id}/episodes", h_show_episodes, SHOW_CACHE, etag=True),
    Spec("/v1/episodes", h_episodes, SHOW_CACHE, development=False),
    Spec("/v1/episodes/{id}", h_episode, SHOW_CACHE, etag=True),
    Spec("/v1/audiobooks", h_audiobooks, development=False),
    Spec("/v1/audiobooks/{id}", h_audiobook),
    Spec("/v1/audiobooks/{id}/chapters", h_audiobook_chapters),
    Spec("/v1/chapters", h_chapters, development=False),
    Spec("/v1/chapters/{id}", h_chapter),
    Spec("/v1/playlists/{id}", h_playlist, PLAYLIST_CACHE, etag=True),
    Spec("/v1/playlists/{id}/tracks", h_playlist_items, PLAYLIST_CACHE, etag=True, development=False),
    Spec("/v1/playlists/{id}/items", h_playlist_items, PLAYLIST_CACHE, etag=True, development=False),
    Spec("/v1/browse/new-releases", h_new_releases, PRIVATE_CACHE, development=False),
    Spec("/v1/markets", h_markets, PRIVATE_CACHE, development=False),
    Spec("/v1/browse/categories", h_forbidden, development=False),
    Spec("/v1/users/{id}", h_forbidden, development=False),
    Spec("/v1/me", h_me, PRIVATE_CACHE),
    Spec("/v1/recommendations", h_removed, removed=True),
    Spec("/v1/artists/{id}/related-artists", h_removed, removed=True),
    Spec("/v1/audio-features", h_removed, removed=True),
    Spec("/v1/audio-features/{id}", h_removed, removed=True),
    Spec("/v1/audio-analysis/{id}", h_removed, removed=True),
)


# ----------------------------------------------------------------------------- plumbing
def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def _delay(state: EmulatorState) -> None:
    if state.config.latency_ms > 0:
        await asyncio.sleep(state.config.latency_ms / 1000)


def _log_line(method: str, path: str, query: str, status: str, started: float) -> None:
    """The request log line (``GET /v1/artists/… 200 0.4 ms``) at INFO. The record is made here, as
    ``log.info`` would make it, without its walk up the stack to find where it was called from."""
    if log.isEnabledFor(logging.INFO):
        args = (method, path, f"?{query}" if query else "", status, (time.perf_counter() - started) * 1000)
        where = (__file__, _LOG_LINENO)
        log.handle(log.makeRecord(log.name, logging.INFO, *where, _LOG_FORMAT, args, None, "_log_line"))


_LOG_FORMAT = "%s %s%s %s %.1f ms"
_LOG_LINENO = _log_line.__code__.co_firstlineno


def _log(request: Request, status: str, started: float) -> None:
    if log.isEnabledFor(logging.INFO):
        url = request.url
        _log_line(request.method, url.path, url.query, status, started)


def _count(state: EmulatorState, request: Request, route: str, status: str) -> None:
    scope = request.scope
    state.record(route, status, scope["method"], scope["path"], scope["query_string"])


def _challenge(error: str, description: str) -> str:
    return f'Bearer realm="spotify", error="{error}", error_description="{description}"'


def _authenticate(state: EmulatorState, authorization: str | None) -> None:
    if authorization is None:
        raise ApiFail(
            401,
            UNAUTHORIZED_MESSAGE,
            {"www-authenticate": _challenge("missing_token", "No token provided")},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiFail(400, "Only valid bearer authentication supported")
    status = state.token_status(token.strip())
    if status != "valid":
        description = "The access token expired" if status == "expired" else "Invalid access token"
        raise ApiFail(
            401,
            UNAUTHORIZED_MESSAGE,
            {"www-authenticate": _challenge("invalid_token", description)},
        )


def _limit(state: EmulatorState) -> None:
    refusal = state.admit()
    if refusal is None:
        return
    if refusal.quota:
        raise ApiFail(429, "Too many requests", {"retry-after": str(refusal.retry_after)}, "QUOTA_EXCEEDED")
    mode = state.config.retry_after
    headers = {} if mode == "omit" else {"retry-after": "0" if mode == "zero" else str(refusal.retry_after)}
    raise ApiFail(429, "API rate limit exceeded", headers)


def preflight() -> Response:
    """The answer to a CORS preflight (``OPTIONS``), on any path."""
    return Response(b"", status_code=200, headers=CORS)


def _method_not_allowed() -> Response:
    response = error_response(ApiFail(405, "Method not allowed", {"allow": "GET, HEAD, OPTIONS"}))
    response.raw_headers.extend(_CORS_RAW)
    return response


WEB_API_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def _web_api(spec: Spec) -> Callable[[Request], Any]:
    """The Starlette endpoint of a Web API route: every method, and the GETs that :class:`EmulatorApp`
    leaves to Starlette (a path with characters outside :data:`_PLAIN_PATH`, a ``root_path``)."""
    route = spec.route

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        state = _state(request)
        method = request.method
        if method != "GET" and method != "HEAD":
            # a preflight, or a wrong method on a known path: answered at once, never limited
            response = preflight() if method == "OPTIONS" else _method_not_allowed()
            _count(state, request, f"{method} {spec.template}", str(response.status_code))
            _log(request, str(response.status_code), started)
            return response
        await _delay(state)
        scope = request.scope

        def where() -> tuple[dict[str, str], str]:
            path = {**request.path_params, "tail": request.url.path.rstrip("/").rsplit("/", 1)[-1]}
            return path, str(request.base_url).rstrip("/")

        response = _answer(spec, state, scope["headers"], scope["query_string"], where)
        status = _settle(response)
        _count(state, request, route, status)
        _log(request, status, started)
        return response

    return endpoint


def _settle(response: Response) -> str:
    """The status to count and log (``drop``: a connection closed on purpose); the CORS headers of an
    answer whose headers were not prepared whole (:class:`CatalogResponse`)."""
    if isinstance(response, faults.DroppedResponse):
        return "drop"
    if not isinstance(response, CatalogResponse):
        response.raw_headers.extend(_ORIGIN_RAW if response.status_code < 400 else _CORS_RAW)
    return str(response.status_code)


def _answer(
    spec: Spec,
    state: EmulatorState,
    headers: Headers,
    query_string: bytes,
    where: Callable[[], tuple[dict[str, str], str]],
) -> Response:
    """The answer to a Web API ``GET``. ``where()`` gives the path parameters (with ``tail``, the last
    segment) and the base URL; it is called once the request is admitted, as it always was."""
    fault: str | None = None
    try:
        _authenticate(state, header(headers, b"authorization"))
        _limit(state)
        fault = state.fault()
        if fault in faults.STATUS_BODIES:
            raise ApiFail(*faults.STATUS_BODIES[fault])
        if fault == "drop":
            return faults.DroppedResponse()
        if fault in RAW_FAULTS:
            return faults.raw_answer(fault, {"cache-control": PRIVATE_CACHE})
        dev = state.config.profile == "development"
        if dev and not spec.development and not spec.removed:
            raise ApiFail(403, "Forbidden")
        path, base = where()
        ctx = Ctx(state, query_params(query_string), path, base, dev, headers)
        body = _encode_catalog(spec.handler(ctx))
    except ApiFail as fail:
        response = error_response(fail)
        if fault in BODY_FAULTS:
            return faults.mangle(
                fault, bytes(response.body), response.status_code, {"content-type": JSON_TYPE}
            )
        return response
    if spec.etag:
        tag = etag_of(body)
        if tag in (header(headers, b"if-none-match") or ""):
            return Response(b"", status_code=304, headers={"cache-control": spec.cache, "etag": tag})
        out = {"content-type": JSON_TYPE, "cache-control": spec.cache, "etag": tag}
        if fault in BODY_FAULTS:
            return faults.mangle(fault, body, 200, out)
        return Response(body, status_code=200, headers=out)
    if fault in BODY_FAULTS:
        return faults.mangle(fault, body, 200, {"content-type": JSON_TYPE, "cache-control": spec.cache})
    return CatalogResponse(body, _success_headers(spec.cache))


class CatalogResponse(Response):
    """A 200 whose headers (CORS included) are prepared once per route: the common case, kept quick."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        # what Response.__init__ makes of it (content-length first), without its general machinery
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", str(len(body)).encode("latin-1")), *raw_headers]


@functools.cache
def _success_headers(cache: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", JSON_TYPE.encode()),
        (b"cache-control", cache.encode()),
        *_ORIGIN_RAW,
    ]


# ----------------------------------------------------------------------------- the quick lane
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._~!$&'()*+,;=:@%-]*")
"""Paths whose URL (the request log, ``tail``) is the path itself: no character that Starlette's
``URL`` escapes or drops (``?``, ``#``, ``\\``, spaces, controls, non-ASCII)."""
_PLAIN_QUERY = re.compile(rb"[!-\"$-~]*")
"""Query strings that Starlette's ``URL`` keeps as they are: printable ASCII without ``#``."""


class RouteTable:
    """The Web API route a path takes, as Starlette's router picks it, by dictionary look-up: the
    templates have one ``{id}`` at most, always the third segment (``/v1/artists/{id}/albums``)."""

    def __init__(self, specs: Sequence[Spec]) -> None:
        self._literal = {s.template: (i, s) for i, s in enumerate(specs) if "{" not in s.template}
        self._with_id = {s.template: (i, s) for i, s in enumerate(specs) if "{" in s.template}
        for spec in specs:
            params = [(i, part) for i, part in enumerate(spec.template.split("/")) if "{" in part]
            if params not in ([], [(3, "{id}")]):
                raise ValueError(f"the quick lane cannot route {spec.template}")

    def match(self, path: str) -> tuple[Spec, dict[str, str]] | None:
        """The spec and path parameters of the first route (in :data:`SPECS` order, routes without a
        trailing slash first) that matches ``path``; ``None`` where only the catch-all would."""
        parts = path.split("/")
        if parts[-1] == "" and len(parts) > 2:  # a trailing slash: the routes that end with one
            parts.pop()
        literal = self._literal.get("/".join(parts))
        if len(parts) > 3 and parts[3]:
            parts[3], entity_id = "{id}", parts[3]
            found = self._with_id.get("/".join(parts))
            if found is not None and (literal is None or found[0] < literal[0]):
                return found[1], {"id": entity_id}
        return None if literal is None else (literal[1], {})


_BASES: dict[tuple[Any, ...], str] = {}


def _base(scope: Scope) -> str:
    """``str(request.base_url).rstrip("/")``, worked out once per scheme, server and ``Host``."""
    headers = scope["headers"]
    key = (scope.get("scheme", "http"), scope.get("server"), header(headers, b"host"))
    base = _BASES.get(key)
    if base is None:
        base = str(Request(scope).base_url).rstrip("/")
        if len(_BASES) >= 256:  # the Host header is the client's to choose
            _BASES.clear()
        _BASES[key] = base
    return base


async def _quick_get(
    state: EmulatorState, spec: Spec, path_params: dict[str, str], scope: Scope, receive: Receive, send: Send
) -> None:
    """A Web API ``GET`` answered as :func:`_web_api`'s endpoint answers it, without building Starlette's
    ``Request`` or routing through its middleware (see :class:`EmulatorApp`)."""
    started = time.perf_counter()
    if state.config.latency_ms > 0:
        await asyncio.sleep(state.config.latency_ms / 1000)
    path: str = scope["path"]
    query: bytes = scope["query_string"]
    try:

        def where() -> tuple[dict[str, str], str]:
            path_params["tail"] = path.rstrip("/").rsplit("/", 1)[-1]
            return path_params, _base(scope)

        response = _answer(spec, state, scope["headers"], query, where)
        status = _settle(response)
        state.record(spec.route, status, "GET", path, query)
        _log_line("GET", path, query.decode(), status, started)
    except Exception:  # as Starlette's ServerErrorMiddleware answers, then re-raises
        await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
        raise
    await response(scope, receive, send)


class EmulatorApp(Starlette):
    """The emulator's Starlette app with a quick lane: a ``GET`` on a Web API route whose path and query
    are plain ASCII skips Starlette's router, ``Request`` and middleware and goes to the same
    :func:`_answer`; everything else (other methods, the token endpoint, ``/_emulator/*``, unknown
    paths, unusual characters) takes Starlette's routes. Both give the same answers, counts and logs."""

    def __init__(self, state: EmulatorState, routes: Sequence[BaseRoute]) -> None:
        super().__init__(routes=routes)
        self.state.emulator = state
        self._emulator = state
        self._routes = RouteTable(SPECS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("root_path")
            and _PLAIN_PATH.fullmatch(scope["path"])
            and _PLAIN_QUERY.fullmatch(scope["query_string"])
        ):
            found = self._routes.match(scope["path"])
            if found is not None:
                await _quick_get(self._emulator, found[0], found[1], scope, receive, send)
                return
        await super().__call__(scope, receive, send)


# ----------------------------------------------------------------------------- token endpoint
def _token_error(error: str, description: str | None = None) -> Response:
    body = {"error": error} if description is None else {"error": error, "error_description": description}
    return Response(
        _encode(body),
        status_code=400,
        headers={"content-type": "application/json", "cache-control": NO_CACHE},
    )


def _token_answer(state: EmulatorState, request: Request, raw: bytes) -> Response:
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    grant = form.get("grant_type")
    if not grant:
        return _token_error("unsupported_grant_type", "grant_type parameter is missing")
    if grant not in ("client_credentials", "authorization_code", "refresh_token"):
        return _token_error(
            "unsupported_grant_type",
            "grant_type must be client_credentials, authorization_code or refresh_token",
        )
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, encoded = header.partition(" ")
        try:
            client_id, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if scheme.lower() != "basic" or not sep:
            return _token_error("invalid_client", "Invalid client")
    if not client_id:
        return _token_error("invalid_client")
    config = state.config
    if client_id != config.client_id:
        return _token_error("invalid_client", "Invalid client")
    if secret != config.client_secret:
        return _token_error("invalid_client", "Invalid client secret")
    if grant == "authorization_code":
        return _token_error("invalid_grant", "Invalid authorization code")
    if grant == "refresh_token":
        return _token_error("invalid_grant", "Invalid refresh token")
    body = {"access_token": state.issue_token(), "token_type": "Bearer", "expires_in": config.token_ttl}
    return Response(
        _encode(body),
        status_code=200,
        headers={"content-type": "application/json", "cache-control": NO_CACHE},
    )


async def _body(request: Request) -> bytes | None:
    """The request's body; ``None``, and one log line, when the client goes away before sending it all."""
    try:
        return await request.body()
    except ClientDisconnect:
        log.warning(
            "%s %s: the client disconnected before sending its body (content-length %s)",
            request.method,
            request.url.path,
            request.headers.get("content-length", "not given"),
        )
        return None


async def token_endpoint(request: Request) -> Response:
    started = time.perf_counter()
    state = _state(request)
    await _delay(state)
    raw = await _body(request)
    if raw is None:  # nobody is left to read an answer
        return _token_error("invalid_request", "incomplete request body")
    response = _token_answer(state, request, raw)
    _count(state, request, "POST /api/token", str(response.status_code))
    _log(request, str(response.status_code), started)
    return response


async def not_found(request: Request) -> Response:
    started = time.perf_counter()
    state = _state(request)
    if request.method == "OPTIONS":
        response = preflight()
    else:
        response = error_response(ApiFail(404, "Service not found"))
        response.raw_headers.extend(_CORS_RAW)
    _count(state, request, f"{request.method} (unknown)", str(response.status_code))
    _log(request, str(response.status_code), started)
    return response


# ----------------------------------------------------------------------------- control
def _control_json(body: Any, status: int = 200) -> Response:
    return Response(
        _encode(body), status_code=status, headers={"content-type": JSON_TYPE, "cache-control": "no-store"}
    )


async def control_stats(request: Request) -> Response:
    return _control_json(_state(request).stats())


async def control_requests(request: Request) -> Response:
    return _control_json([dataclasses.asdict(r) for r in _state(request).requests()])


async def control_reset(request: Request) -> Response:
    _state(request).reset()
    return _control_json({"reset": True})


async def _json_body(request: Request) -> Any:
    raw = await _body(request)
    if raw is None:
        return None
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return None


async def control_advance(request: Request) -> Response:
    body = await _json_body(request)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return _control_json({"error": 'expected {"seconds": <number >= 0>}'}, 400)
    state = _state(request)
    state.clock.advance(float(seconds))
    return _control_json({"offset": state.clock.offset})


def public_config(config: EmulatorConfig) -> JSON:
    """The configuration as JSON, without the client secret."""
    return {
        "profile": config.profile,
        "seed": config.seed,
        "artists": config.artists,
        "latency_ms": config.latency_ms,
        "rate_limit": config.rate_limit,
        "quota": config.quota,
        "token_ttl": config.token_ttl,
        "fault_rate": config.fault_rate,
        "client_id": config.client_id,
        "fault_kinds": list(config.fault_kinds),
        "retry_after": config.retry_after,
    }


async def control_config(request: Request) -> Response:
    state = _state(request)
    if request.method == "GET":
        return _control_json(public_config(state.config))
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _control_json({"error": "expected a JSON object"}, 400)
    try:
        config = state.configure(**body)
    except (ValueError, TypeError) as exc:
        return _control_json({"error": str(exc)}, 400)
    return _control_json(public_config(config))


def create_app(
    config: EmulatorConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    state: EmulatorState | None = None,
) -> Starlette:
    """The emulator as an ASGI app; ``app.state.emulator`` is its :class:`EmulatorState`."""
    state = state or EmulatorState(config or EmulatorConfig(), clock)
    routes = [Route("/api/token", token_endpoint, methods=["POST"])]
    routes += [Route(spec.template, _web_api(spec), methods=WEB_API_METHODS) for spec in SPECS]
    routes += [
        Route("/_emulator/stats", control_stats, methods=["GET"]),
        Route("/_emulator/requests", control_requests, methods=["GET"]),
        Route("/_emulator/reset", control_reset, methods=["POST"]),
        Route("/_emulator/advance", control_advance, methods=["POST"]),
        Route("/_emulator/config", control_config, methods=["GET", "POST"]),
    ]
    # spotipy asks for `tracks/?ids=`, `albums/{id}/tracks/`: Spotify serves them (spotipy#160); these
    # come after the routes without the slash, which stay the quickest to match
    routes += [Route(spec.template + "/", _web_api(spec), methods=WEB_API_METHODS) for spec in SPECS]
    routes += [Route("/{path:path}", not_found, methods=WEB_API_METHODS)]
    return EmulatorApp(state, routes)


__all__ = ["ApiFail", "create_app", "etag_of", "public_config"]
