"""Typed functions for the catalog endpoints, id chunking and paging helpers.

Every function takes a :class:`~spotify_catalog.client.SpotifyClient` first and returns the API's
JSON (``dict``). They respect the client's API mode:

- limits are clamped to the mode's maximum (search and artist albums: 10 in Development Mode, 50 in
  Extended Quota Mode). With the mode unknown, a ``400 Invalid limit`` answer to a limit above 10
  means Development Mode: it is remembered on the client and the request is sent again with 10;
- plural functions (``get_artists`` ...) use the batch endpoints, ids chunked to their maxima, in
  extended mode and single-item calls in development mode. With the mode unknown they try the batch
  endpoint once; a 403 means Development Mode and the rest goes through single calls.

Paging helpers follow ``next`` links and never ask for a page past Spotify's offset cap
(search: ``offset + limit <= 1000``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import httpx

from spotify_catalog.client import ParamValue, SpotifyClient
from spotify_catalog.errors import (
    BadRequestError,
    ForbiddenError,
    InvalidResponseError,
    NotFoundError,
    UsageError,
)
from spotify_catalog.settings import ApiMode

log = logging.getLogger(__name__)

JSON = dict[str, Any]

SEARCH_TYPES: Final = ("album", "artist", "playlist", "track", "show", "episode", "audiobook")
ITEM_TYPES: Final = ("artist", "album", "track", "show", "episode", "audiobook", "chapter", "playlist")
INCLUDE_GROUPS: Final = ("album", "single", "appears_on", "compilation")

SEARCH_OFFSET_CAP: Final = 1000
"""Spotify's search ceiling: ``offset + limit`` may not exceed it."""

DEV_LIMIT: Final = 10
"""Largest ``limit`` of search and artist albums in Development Mode."""
MAX_LIMIT: Final = 50
"""Largest ``limit`` of any paged catalog endpoint (search/artist albums in Extended mode, tracks, ...)."""

BATCH_MAX: Final[dict[str, int]] = {
    "artist": 50,
    "album": 20,
    "track": 50,
    "show": 50,
    "episode": 50,
    "audiobook": 50,
    "chapter": 50,
}

_ID = re.compile(r"[0-9A-Za-z]{22}")
_URI = re.compile(r"spotify:(?P<type>[a-z]+):(?P<id>[^:?#/]+)")
_URL = re.compile(
    r"https?://open\.spotify\.com/(?:intl-[a-zA-Z-]+/|embed/)?(?P<type>[a-z]+)/(?P<id>[^/?#]+)/?(?:[?#].*)?"
)


# ----------------------------------------------------------------------------- pure helpers


def parse_id(value: str, kind: str | None = None) -> str:
    """The 22-character id in a bare id, a ``spotify:TYPE:ID`` URI or an ``open.spotify.com`` URL.

    ``kind`` (``track`` ...) must match the type a URI or URL names. Raises :class:`UsageError`.
    """
    text = value.strip()
    found_type: str | None = None
    match = _URI.fullmatch(text) or _URL.fullmatch(text)
    if match:
        found_type, text = match["type"], match["id"]
    if not _ID.fullmatch(text):
        raise UsageError(f"not a Spotify id, URI or URL: {value!r}")
    if kind is not None and found_type is not None and found_type != kind:
        raise UsageError(f"{value!r} is {_a(found_type)}, not {_a(kind)}")
    return text


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def chunked(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """Consecutive slices of at most ``size`` items, in order, covering ``items`` exactly once."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def search_types(types: str | Iterable[str]) -> list[str]:
    """Search types from ``"artist,track"`` or a list; unknown or no types raise :class:`UsageError`."""
    names = types.split(",") if isinstance(types, str) else list(types)
    cleaned = [name.strip().lower() for name in names if name.strip()]
    if not cleaned:
        raise UsageError(f"no search type given (choose from {', '.join(SEARCH_TYPES)})")
    for name in cleaned:
        if name not in SEARCH_TYPES:
            raise UsageError(f"unknown search type {name!r} (choose from {', '.join(SEARCH_TYPES)})")
    return list(dict.fromkeys(cleaned))


def capped_limit(offset: int, limit: int, cap: int) -> int:
    """The largest limit ``<= limit`` with ``offset + limit <= cap`` (0: nothing left to ask for)."""
    return max(0, min(limit, cap - offset))


def mode_limit(mode: ApiMode | None) -> int:
    """The largest limit to try in a mode (unknown mode: try the extended one)."""
    return DEV_LIMIT if mode is ApiMode.DEVELOPMENT else MAX_LIMIT


def _check_limit(limit: int | None) -> None:
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")


def _check_offset(offset: int) -> None:
    if offset < 0:
        raise UsageError(f"offset must not be negative, not {offset}")


# ----------------------------------------------------------------------------- requests


def _get_limited(client: SpotifyClient, path: str, params: dict[str, ParamValue]) -> JSON:
    """GET an endpoint whose ``limit`` maximum depends on the API mode; detects the mode on the way."""
    limit = params.get("limit")
    wanted = limit if isinstance(limit, int) else None
    if wanted is not None and wanted > DEV_LIMIT and client.mode is ApiMode.DEVELOPMENT:
        log.debug("limit %d clamped to %d (development mode)", wanted, DEV_LIMIT)
        params["limit"] = DEV_LIMIT
        wanted = None
    try:
        result = client.get(path, params)
    except BadRequestError as exc:
        if (
            wanted is None
            or wanted <= DEV_LIMIT
            or "limit" not in exc.message.lower()
            or client.mode is not None
        ):
            raise
        log.info("%s refused limit %d: the app is in development mode", path, wanted)
        client.mode = ApiMode.DEVELOPMENT
        params["limit"] = DEV_LIMIT
        return client.get(path, params)
    if wanted is not None and wanted > DEV_LIMIT and client.mode is None:
        client.mode = ApiMode.EXTENDED
    return result


def get_one(client: SpotifyClient, kind: str, item_id: str, market: str | None) -> JSON:
    """``GET /{kind}s/{id}``."""
    return client.get(f"/{kind}s/{parse_id(item_id, kind)}", {"market": market})


def get_several(
    client: SpotifyClient, kind: str, ids: Iterable[str], market: str | None
) -> list[JSON | None]:
    """Items in the order of ``ids`` (``None`` for ids Spotify does not know)."""
    wanted = [parse_id(item_id, kind) for item_id in ids]
    results: list[JSON | None] = []
    for chunk in chunked(wanted, BATCH_MAX[kind]):
        if client.mode is ApiMode.DEVELOPMENT:
            break
        try:
            data = client.get(f"/{kind}s", {"ids": chunk, "market": market})
        except ForbiddenError:
            if client.mode is not None:
                raise
            log.info("batch endpoint /%ss refused (403): the app is in development mode", kind)
            client.mode = ApiMode.DEVELOPMENT
            break
        if client.mode is None:
            client.mode = ApiMode.EXTENDED
        items = data.get(f"{kind}s")
        if not isinstance(items, list) or len(items) != len(chunk):
            raise InvalidResponseError(f"batch /{kind}s answered {len(chunk)} ids with a wrong list")
        results.extend(items)
    for item_id in wanted[len(results) :]:
        try:
            results.append(get_one(client, kind, item_id, market))
        except NotFoundError:
            results.append(None)
    return results


def search(
    client: SpotifyClient,
    q: str,
    types: str | Iterable[str],
    *,
    market: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    include_external: str | None = None,
) -> JSON:
    """``GET /search``: one page per requested type (``{"artists": {...}, "tracks": {...}}``).

    ``limit`` (1-50, per type) is clamped to the mode's maximum and so that ``offset + limit <= 1000``.
    """
    if not q.strip():
        raise UsageError("empty search query")
    names = search_types(types)
    _check_limit(limit)
    _check_offset(offset)
    if offset >= SEARCH_OFFSET_CAP:
        raise UsageError(f"offset must be below {SEARCH_OFFSET_CAP}, Spotify's search ceiling")
    if include_external not in (None, "audio"):
        raise UsageError("include_external can only be 'audio'")
    if limit is not None:
        limit = capped_limit(offset, limit, SEARCH_OFFSET_CAP)
    elif SEARCH_OFFSET_CAP - offset < 20:  # the API's default limit could cross the ceiling
        limit = SEARCH_OFFSET_CAP - offset
    params: dict[str, ParamValue] = {
        "q": q,
        "type": names,
        "market": market,
        "limit": limit,
        "offset": offset,
        "include_external": include_external,
    }
    return _get_limited(client, "/search", params)


def iter_search(
    client: SpotifyClient,
    q: str,
    types: str | Iterable[str],
    *,
    market: str | None = None,
    include_external: str | None = None,
    offset: int = 0,
    page_size: int | None = None,
    max_items: int | None = None,
    on_first: Callable[[JSON], None] | None = None,
) -> Iterator[tuple[str, JSON]]:
    """Every result up to the offset ceiling as ``(type, item)``; several types share each request.

    A type drops out of the requests once its pages are done. ``null`` entries are skipped.
    ``max_items`` bounds the items per type. ``on_first`` is called with the first answer (its
    ``total`` per type says how many pages follow).
    """
    remaining = search_types(types)
    _check_limit(page_size)
    seen = dict.fromkeys(remaining, 0)
    while remaining and offset < SEARCH_OFFSET_CAP:
        size = page_size or mode_limit(client.mode)
        result = search(
            client, q, remaining, market=market, limit=size, offset=offset, include_external=include_external
        )
        if on_first is not None:
            on_first(result)
            on_first = None
        step = 0
        for name in list(remaining):
            page = result.get(f"{name}s")
            if not isinstance(page, dict):
                raise InvalidResponseError(f"search answered without the {name}s page")
            items = page.get("items") or []
            step = max(step, int(page.get("limit") or len(items)))
            for item in items:
                if item is None:
                    continue
                if max_items is not None and seen[name] >= max_items:
                    break
                seen[name] += 1
                yield name, item
            total = int(page.get("total") or 0)
            done = max_items is not None and seen[name] >= max_items
            if done or not page.get("next") or offset + len(items) >= total or not items:
                remaining.remove(name)
        if step <= 0:
            break
        offset += step


def iter_pages(client: SpotifyClient, first_page: JSON, *, cap: int | None = None) -> Iterator[Any]:
    """The items of ``first_page`` and of every page after it (following ``next``).

    With ``cap``, no page is asked for past it: the last request's limit is cut so that
    ``offset + limit <= cap``.
    """
    page: JSON | None = first_page
    while page is not None:
        yield from page.get("items") or []
        link = page.get("next")
        if not link:
            return
        url = httpx.URL(str(link))
        if url.path.endswith("/search") and "q" not in url.params and "query" in url.params:
            # search links echo the query as ``query=``; send it back as the documented ``q``
            url = url.copy_set_param("q", url.params["query"]).copy_remove_param("query")
            link = str(url)
        if cap is not None:
            try:
                offset = int(url.params.get("offset", "0"))
                limit = int(url.params.get("limit", str(page.get("limit") or 20)))
            except ValueError:
                raise InvalidResponseError(f"unusable next link: {link}") from None
            limit = capped_limit(offset, limit, cap)
            if limit == 0:
                return
            link = str(url.copy_set_param("limit", limit))
        page = _paging_object(client.get(str(link)))


def _paging_object(data: JSON) -> JSON:
    """The paging object of a response: search wraps it (``{"tracks": {...}}``), other endpoints do not."""
    if "items" in data:
        return data
    pages = [value for value in data.values() if isinstance(value, dict) and "items" in value]
    if len(pages) != 1:
        raise InvalidResponseError("a next link answered without one paging object")
    return pages[0]


def _page_params(market: str | None, limit: int | None, offset: int) -> dict[str, ParamValue]:
    _check_limit(limit)
    _check_offset(offset)
    return {"market": market, "limit": limit, "offset": offset}


# ----------------------------------------------------------------------------- artists


def get_artist(client: SpotifyClient, artist_id: str) -> JSON:
    """``GET /artists/{id}``."""
    return get_one(client, "artist", artist_id, None)


def get_artists(client: SpotifyClient, artist_ids: Iterable[str]) -> list[JSON | None]:
    """Artists in the order asked (``None`` for unknown ids); batch of 50 or single calls by mode."""
    return get_several(client, "artist", artist_ids, None)


def get_artist_albums(
    client: SpotifyClient,
    artist_id: str,
    *,
    include_groups: str | Iterable[str] | None = None,
    market: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> JSON:
    """``GET /artists/{id}/albums``: one page; ``limit`` clamped to 10 in development mode."""
    params = _page_params(market, limit, offset)
    if include_groups is not None:
        groups = include_groups.split(",") if isinstance(include_groups, str) else list(include_groups)
        for group in groups:
            if group not in INCLUDE_GROUPS:
                raise UsageError(f"unknown album group {group!r} (choose from {', '.join(INCLUDE_GROUPS)})")
        params["include_groups"] = groups
    return _get_limited(client, f"/artists/{parse_id(artist_id, 'artist')}/albums", params)


def iter_artist_albums(
    client: SpotifyClient,
    artist_id: str,
    *,
    include_groups: str | Iterable[str] | None = None,
    market: str | None = None,
) -> Iterator[JSON]:
    """Every album of an artist, in pages as large as the mode allows."""
    first = get_artist_albums(
        client, artist_id, include_groups=include_groups, market=market, limit=mode_limit(client.mode)
    )
    yield from iter_pages(client, first)


def get_artist_top_tracks(client: SpotifyClient, artist_id: str, *, market: str | None = None) -> JSON:
    """``GET /artists/{id}/top-tracks`` (extended mode only; 403 in development mode)."""
    return client.get(f"/artists/{parse_id(artist_id, 'artist')}/top-tracks", {"market": market})


# ----------------------------------------------------------------------------- albums and tracks


def get_album(client: SpotifyClient, album_id: str, *, market: str | None = None) -> JSON:
    """``GET /albums/{id}`` (with its first page of tracks)."""
    return get_one(client, "album", album_id, market)


def get_albums(
    client: SpotifyClient, album_ids: Iterable[str], *, market: str | None = None
) -> list[JSON | None]:
    """Albums in the order asked (``None`` for unknown ids); batch of 20 or single calls by mode."""
    return get_several(client, "album", album_ids, market)


def get_album_tracks(
    client: SpotifyClient,
    album_id: str,
    *,
    market: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> JSON:
    """``GET /albums/{id}/tracks``: one page (limit 1-50)."""
    return client.get(f"/albums/{parse_id(album_id, 'album')}/tracks", _page_params(market, limit, offset))


def iter_album_tracks(client: SpotifyClient, album_id: str, *, market: str | None = None) -> Iterator[JSON]:
    """Every track of an album, 50 per request."""
    yield from iter_pages(client, get_album_tracks(client, album_id, market=market, limit=MAX_LIMIT))


def get_track(client: SpotifyClient, track_id: str, *, market: str | None = None) -> JSON:
    """``GET /tracks/{id}``."""
    return get_one(client, "track", track_id, market)


def get_tracks(
    client: SpotifyClient, track_ids: Iterable[str], *, market: str | None = None
) -> list[JSON | None]:
    """Tracks in the order asked (``None`` for unknown ids); batch of 50 or single calls by mode."""
    return get_several(client, "track", track_ids, market)


# ----------------------------------------------------------------------------- shows and episodes


def get_show(client: SpotifyClient, show_id: str, *, market: str | None = None) -> JSON:
    """``GET /shows/{id}`` (send ``market``: without it client-credentials calls see nothing)."""
    return get_one(client, "show", show_id, market)


def get_shows(
    client: SpotifyClient, show_ids: Iterable[str], *, market: str | None = None
) -> list[JSON | None]:
    """Shows in the order asked (``None`` for unknown ids); batch of 50 or single calls by mode."""
    return get_several(client, "show", show_ids, market)


def get_show_episodes(
    client: SpotifyClient,
    show_id: str,
    *,
    market: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> JSON:
    """``GET /shows/{id}/episodes``: one page (limit 1-50)."""
    return client.get(f"/shows/{parse_id(show_id, 'show')}/episodes", _page_params(market, limit, offset))


def iter_show_episodes(client: SpotifyClient, show_id: str, *, market: str | None = None) -> Iterator[JSON]:
    """Every episode of a show, 50 per request."""
    yield from iter_pages(client, get_show_episodes(client, show_id, market=market, limit=MAX_LIMIT))


def get_episode(client: SpotifyClient, episode_id: str, *, market: str | None = None) -> JSON:
    """``GET /episodes/{id}``."""
    return get_one(client, "episode", episode_id, market)


def get_episodes(
    client: SpotifyClient, episode_ids: Iterable[str], *, market: str | None = None
) -> list[JSON | None]:
    """Episodes in the order asked (``None`` for unknown ids); batch of 50 or single calls by mode."""
    return get_several(client, "episode", episode_ids, market)


# ----------------------------------------------------------------------------- audiobooks and chapters


def get_audiobook(client: SpotifyClient, audiobook_id: str, *, market: str | None = None) -> JSON:
    """``GET /audiobooks/{id}``."""
    return get_one(client, "audiobook", audiobook_id, market)


def get_audiobooks(
    client: SpotifyClient, audiobook_ids: Iterable[str], *, market: str | None = None
) -> list[JSON | None]:
    """Audiobooks in the order asked (``None`` for unknown ids); batch of 50 or single calls by mode."""
    return get_several(client, "audiobook", audiobook_ids, market)


def get_audiobook_chapters(
    client: SpotifyClient,
    audiobook_id: str,
    *,
    market: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> JSON:
    """``GET /audiobooks/{id}/chapters``: one page (limit 1-50)."""
    path = f"/audiobooks/{parse_id(audiobook_id, 'audiobook')}/chapters"
    return client.get(path, _page_params(market, limit, offset))


def iter_audiobook_chapters(
    client: SpotifyClient, audiobook_id: str, *, market: str | None = None
) -> Iterator[JSON]:
    """Every chapter of an audiobook, 50 per request."""
    yield from iter_pages(
        client, get_audiobook_chapters(client, audiobook_id, market=market, limit=MAX_LIMIT)
    )


def get_chapter(client: SpotifyClient, chapter_id: str, *, market: str | None = None) -> JSON:
    """``GET /chapters/{id}``."""
    return get_one(client, "chapter", chapter_id, market)


def get_chapters(
    client: SpotifyClient, chapter_ids: Iterable[str], *, market: str | None = None
) -> list[JSON | None]:
    """Chapters in the order asked (``None`` for unknown ids); batch of 50 or single calls by mode."""
    return get_several(client, "chapter", chapter_ids, market)


# ----------------------------------------------------------------------------- playlists


def get_playlist(
    client: SpotifyClient,
    playlist_id: str,
    *,
    market: str | None = None,
    fields: str | None = None,
    additional_types: str | None = None,
) -> JSON:
    """``GET /playlists/{id}`` (metadata only for client-credentials tokens in development mode)."""
    params: dict[str, ParamValue] = {"market": market, "fields": fields, "additional_types": additional_types}
    return client.get(f"/playlists/{parse_id(playlist_id, 'playlist')}", params)


def get_playlist_items(
    client: SpotifyClient,
    playlist_id: str,
    *,
    market: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> JSON:
    """``GET /playlists/{id}/items``: one page (extended mode; 403 in development mode)."""
    path = f"/playlists/{parse_id(playlist_id, 'playlist')}/items"
    return client.get(path, _page_params(market, limit, offset))


def iter_playlist_items(
    client: SpotifyClient, playlist_id: str, *, market: str | None = None
) -> Iterator[JSON]:
    """Every item of a playlist, 50 per request (extended mode; ``null`` items are kept)."""
    yield from iter_pages(client, get_playlist_items(client, playlist_id, market=market, limit=MAX_LIMIT))


# ----------------------------------------------------------------------------- extended mode only


def get_new_releases(client: SpotifyClient, *, limit: int | None = None, offset: int = 0) -> JSON:
    """``GET /browse/new-releases``: one page of ``{"albums": {...}}`` (403 in development mode)."""
    return client.get("/browse/new-releases", _page_params(None, limit, offset))


def iter_new_releases(client: SpotifyClient) -> Iterator[JSON]:
    """Every new release, 50 per request (extended mode)."""
    yield from iter_pages(client, _paging_object(get_new_releases(client, limit=MAX_LIMIT)))


def get_markets(client: SpotifyClient) -> list[str]:
    """``GET /markets``: the country codes Spotify is available in (403 in development mode)."""
    markets = client.get("/markets").get("markets")
    if not isinstance(markets, list):
        raise InvalidResponseError("/markets answered without a list of markets")
    return [str(market) for market in markets]


GETTERS: Final[dict[str, Callable[[SpotifyClient, str, str | None], JSON]]] = {
    "artist": lambda client, item_id, market: get_artist(client, item_id),
    "album": lambda client, item_id, market: get_album(client, item_id, market=market),
    "track": lambda client, item_id, market: get_track(client, item_id, market=market),
    "show": lambda client, item_id, market: get_show(client, item_id, market=market),
    "episode": lambda client, item_id, market: get_episode(client, item_id, market=market),
    "audiobook": lambda client, item_id, market: get_audiobook(client, item_id, market=market),
    "chapter": lambda client, item_id, market: get_chapter(client, item_id, market=market),
    "playlist": lambda client, item_id, market: get_playlist(client, item_id, market=market),
}
"""Single-item getter per type: ``GETTERS[type](client, id, market)``."""
