"""Units of work: what one request (or an album with its track pages) fetches, how its answer is checked,
and the pure handlers that turn it into rows and into what became of its tasks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spotify_catalog import endpoints, transform
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import catalog, me, pages
from spotify_catalog.crawl.options import ALBUM_TRACKS_PAGE, ENTITY_TYPES, SEARCH_LIMIT
from spotify_catalog.crawl.outcome import Handler, Listing, Outcome
from spotify_catalog.errors import (
    AuthenticationError,
    ForbiddenError,
    InvalidResponseError,
    MustWaitError,
    NotFoundError,
    SpotifyError,
    Stopped,
    UnreachableError,
)
from spotify_catalog.settings import ApiMode
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)


@dataclass
class Unit:
    """One request's worth of work: tasks ``keys`` of ``kind``."""

    kind: str
    keys: list[str]
    fetch: Callable[[], Any]
    handle: Handler
    mode_sensitive: bool


def split_key(key: str) -> list[str]:
    """The parts of a task key (``artist|groups|offset``, ``album|offset``)."""
    return key.split("|")


def make_unit(
    client: SpotifyClient,
    kind: str,
    keys: list[str],
    market: str | None,
    known: Mapping[str, str | None] | me.Known | None = None,
) -> Unit:
    """The unit of work of tasks ``keys`` of ``kind``: how to fetch them, how to store the answer
    (``known``: the stored playlists' item snapshots, see :mod:`spotify_catalog.crawl.catalog`; for
    a user's own data what :mod:`spotify_catalog.crawl.me` read before, a :class:`~.me.Known`)."""
    if kind in me.KINDS:
        assert isinstance(known, me.Known), "a user's units need what is known of the user"
        fetch, handle = me.make_unit(client, kind, keys, known, market)
        return Unit(kind, keys, fetch, handle, mode_sensitive=False)
    if kind in catalog.KINDS:
        snapshots = known if isinstance(known, Mapping) else None
        fetch, handle = catalog.make_unit(client, kind, keys, market, snapshots)
        return Unit(kind, keys, fetch, handle, mode_sensitive=kind in catalog.BATCHED)
    if kind == "search":
        (name,) = keys
        return Unit(
            kind,
            keys,
            lambda: endpoints.search(client, name, "artist", market=market, limit=SEARCH_LIMIT),
            _handle_search,
            mode_sensitive=False,
        )
    if kind == "artist":
        return Unit(kind, keys, lambda: get_items(client, kind, keys, market), _handle_artists, True)
    if kind == "album":
        return Unit(kind, keys, lambda: fetch_albums(client, keys, market), _handle_albums, True)
    if kind == "track":
        return Unit(kind, keys, lambda: get_items(client, kind, keys, market), _handle_tracks, True)
    if kind == "artist_albums":
        (key,) = keys
        artist_id, groups, offset = split_key(key)

        def fetch_page() -> Any:
            # the mode unknown: a limit both modes accept, and the page tells the mode
            limit = endpoints.DEV_LIMIT if client.mode is None else endpoints.mode_limit(client.mode)
            return endpoints.get_artist_albums(
                client, artist_id, include_groups=groups, market=market, limit=limit, offset=int(offset)
            )

        return Unit(kind, keys, fetch_page, _handle_artist_albums, True)
    if kind == "album_tracks":
        (key,) = keys
        album_id, offset = split_key(key)
        return Unit(
            kind,
            keys,
            lambda: endpoints.get_album_tracks(
                client, album_id, market=market, limit=ALBUM_TRACKS_PAGE, offset=int(offset)
            ),
            _handle_album_tracks,
            mode_sensitive=False,
        )
    raise ValueError(f"unknown task kind {kind!r}")


STOPS: tuple[type[SpotifyError | Stopped], ...] = (
    MustWaitError,
    Stopped,
    ForbiddenError,
    AuthenticationError,
    UnreachableError,
)
"""Errors after which nothing more can be done in this run (a 401 even after renewing the token is
retried later, like a 5xx: a token can expire while in use). ``UnreachableError`` (an outage) leaves
the tasks pending with no attempt counted: the run is recorded ``failed`` and the error re-raised."""


BATCHED = ENTITY_TYPES | catalog.BATCHED
"""Kinds asked for in batches in Extended mode."""


@dataclass
class Albums:
    """Full albums (``None`` for unknown ids) and the further track pages fetched for them (key
    ``album_id|offset``); ``stop``: why the pages are not all there."""

    items: list[Any]
    pages: dict[str, Any] = field(default_factory=dict)
    stop: BaseException | None = None


def fetch_albums(client: SpotifyClient, keys: list[str], market: str | None) -> Albums:
    """Albums, then the rest of their tracks, so an album is written whole in one transaction. A stop,
    a failure or an incomplete page half-way keeps what came (the missing pages become tasks of their
    own: a bad page is asked again alone, never the album and the good pages with it)."""
    result = Albums(get_items(client, "album", keys, market))
    problem = response_problem("album", result.items)
    if problem is not None:  # no further pages for albums that are not whole
        raise InvalidResponseError(f"album {','.join(keys)}: incomplete response: {problem}")
    try:
        for album in result.items:
            for key in _more_track_pages(album) if album else []:
                album_id, offset = split_key(key)
                page = endpoints.get_album_tracks(
                    client, album_id, market=market, limit=ALBUM_TRACKS_PAGE, offset=int(offset)
                )
                if (problem := response_problem("album_tracks", page)) is not None:
                    log.warning("album_tracks %s: incomplete response: %s (queued for later)", key, problem)
                else:
                    result.pages[key] = page
    except STOPS as exc:
        result.stop = exc
    except SpotifyError as exc:
        log.warning("tracks of albums %s: %s (queued for later)", ",".join(keys), exc)
    return result


def get_items(client: SpotifyClient, kind: str, keys: list[str], market: str | None) -> list[Any]:
    """Artists, albums or tracks in the order of ``keys`` (``None``: not found): a batch in extended
    mode, else one item by its single-item endpoint, whose answer tells the mode when it is unknown."""
    market = None if kind == "artist" else market
    if client.mode is ApiMode.EXTENDED or len(keys) > 1:
        return endpoints.get_several(client, kind, keys, market)
    try:
        return [endpoints.get_one(client, kind, keys[0], market)]
    except NotFoundError:
        return [None]


def observed_mode(kind: str, result: Any) -> ApiMode | None:
    """The API mode a response shows, or ``None``: full artists, albums and tracks of a Development-Mode
    app have no ``popularity`` (nor artists ``followers``, albums ``label``), audiobooks no
    ``publisher``."""
    if isinstance(result, catalog.Paged):
        return catalog.observed_mode(kind, result)
    if kind == "artist_albums" and isinstance(result, dict):
        return discography_mode(result)
    if isinstance(result, me.Profile):  # Development Mode: no followers in /me since February 2026
        return ApiMode.EXTENDED if "followers" in result.data else ApiMode.DEVELOPMENT
    if isinstance(result, Albums):
        items: Any = result.items
    elif kind == "search" and isinstance(result, dict):
        items = (result.get("artists") or {}).get("items")
    elif kind in ENTITY_TYPES:
        items = result
    else:
        return None
    first = next((item for item in items or [] if isinstance(item, dict)), None)
    if first is None:
        return None
    return ApiMode.EXTENDED if "popularity" in first else ApiMode.DEVELOPMENT


DISCOGRAPHY_EXTENDED = ("album_group", "available_markets")
"""Fields of a discography page's albums that only Extended Quota Mode sends (``available_markets``
only without a market)."""


def discography_mode(page: Any) -> ApiMode | None:
    """The mode a discography page (``/artists/{id}/albums``) shows, or ``None`` when it lists no
    album: Development Mode strips ``album_group`` and ``available_markets`` from its albums."""
    first = next((item for item in page.get("items") or [] if isinstance(item, dict)), None)
    if first is None:
        return None
    extended = any(name in first for name in DISCOGRAPHY_EXTENDED)
    return ApiMode.EXTENDED if extended else ApiMode.DEVELOPMENT


# ------------------------------------------------------------------------------------------ checks


def fetch_checked(unit: Unit) -> Any:
    """The unit's response, refused (:class:`InvalidResponseError`, retried later) if it is not whole."""
    result = unit.fetch()
    problem = response_problem(unit.kind, result)
    if problem is not None:
        raise InvalidResponseError(f"{unit.kind} {','.join(unit.keys)}: incomplete response: {problem}")
    return result


def response_problem(kind: str, result: Any) -> str | None:
    """What makes a response unfit to store, or ``None``: an artist, album or track without its
    ``id``, a page that is not whole (:func:`spotify_catalog.crawl.pages.shape_problem`) or holds a
    ``null`` (Spotify sends none in search results for artists, discographies or album tracks), a batch
    item that is not an object. Extra fields are fine; ``null`` in a batch is an unknown id."""
    if kind in catalog.KINDS:
        return catalog.response_problem(kind, result)
    if kind in me.KINDS:
        return me.response_problem(kind, result)
    if isinstance(result, Albums):
        return response_problem("artist", result.items)  # its further pages: checked as they came
    if kind in ENTITY_TYPES:
        if not isinstance(result, list) or not all(item is None or isinstance(item, dict) for item in result):
            return "expected a list of objects"
    elif not isinstance(result, dict):
        return "expected a JSON object"
    elif kind == "search" and not isinstance(result.get("artists"), dict):
        return "no artists page"
    elif "items" not in (result["artists"] if kind == "search" else result):
        return "page without items or total"  # every other answer of these kinds is a page
    return _shape_problem(result)


_VALUES_ONLY = frozenset(
    {"available_markets", "copyrights", "external_ids", "external_urls", "followers", "genres", "images",
     "restrictions", "resume_point", "languages"}
)  # fmt: skip
"""Fields of Spotify objects that hold values, never an entity or a page: not walked (a track's images,
links and ids were most of the objects of a response)."""


def _shape_problem(data: Any) -> str | None:
    """The first problem met walking ``data`` depth first (objects in key order), or ``None``; a loop,
    not recursion: it sees every object of every response but what :data:`_VALUES_ONLY` names."""
    stack = [data]
    while stack:
        item = stack.pop()
        if type(item) is dict:  # JSON parsers give plain dicts and lists: type() is quicker than isinstance
            if item.get("type") in ENTITY_TYPES and not (isinstance(item.get("id"), str) and item["id"]):
                return f"{item['type']} without an id"
            if "items" in item:
                if problem := pages.shape_problem(item):
                    return problem
                if None in item["items"]:
                    return "a null item in a page"
            children: list[Any] = [
                v for k, v in item.items() if type(v) in _CONTAINERS and k not in _VALUES_ONLY
            ]
        elif type(item) is list:
            if item and type(item[0]) in _SCALARS:
                continue  # a list of values: nothing to check inside
            children = [v for v in item if type(v) in _CONTAINERS]
        else:
            continue
        children.reverse()
        stack.extend(children)
    return None


_CONTAINERS = frozenset({dict, list})
_SCALARS = frozenset({str, int, float, bool})


# ------------------------------------------------------------------------------------------ handlers
# pure: (task keys, response) -> rows and what became of the tasks


def _handle_search(keys: list[str], result: Any, rows: Rows, when: datetime) -> Outcome:
    (name,) = keys
    page = result.get("artists") or {}
    chosen = transform.add_resolution(rows, name, list(page.get("items") or []), when)
    if not chosen:
        return Outcome(done=keys, unresolved=[name])
    return Outcome(done=keys, also_done=[("artist", [chosen])])


def _entities(add: Callable[..., None]) -> Handler:
    def handle(keys: list[str], items: Any, rows: Rows, when: datetime) -> Outcome:
        outcome = Outcome()
        for key, item in zip(keys, items, strict=True):
            if item is None:
                outcome.not_found.append(key)
            else:
                add(rows, item, transform.FULL, when)
                outcome.done.append(key)
        return outcome

    return handle


def _more_track_pages(album: Any) -> list[str]:
    page = transform.page_items(album, "tracks")
    offsets = [] if page is None else pages.offsets_after(page, ALBUM_TRACKS_PAGE)
    return [f"{album['id']}|{offset}" for offset in offsets]


def _handle_artist_albums(keys: list[str], page: Any, rows: Rows, when: datetime) -> Outcome:
    (key,) = keys
    artist_id, groups, offset = split_key(key)
    single_group = groups if "," not in groups else None
    transform.add_artist_albums_page(
        rows, artist_id, page, when, default_group=single_group, groups=tuple(groups.split(","))
    )
    listed = [album["id"] for album in page.get("items") or [] if album and album.get("id")]
    listing = Listing(artist_id, groups, listed)
    outcome = Outcome(done=keys, listing=listing)
    if int(offset) == 0:
        # a first page asked with 10 while the mode was unknown: Extended mode's next pages hold 50
        step = endpoints.MAX_LIMIT if discography_mode(page) is ApiMode.EXTENDED else page["limit"]
        keys_after = [f"{artist_id}|{groups}|{o}" for o in pages.offsets_after(page, step)]
        outcome.follow_up.append(("artist_albums", keys_after))
        listing.pages = keys_after  # a new refresh of the listing: all its pages again
    return outcome


def _handle_album_tracks(keys: list[str], page: Any, rows: Rows, when: datetime) -> Outcome:
    (key,) = keys
    album_id, _offset = split_key(key)
    transform.add_album_tracks_page(rows, album_id, page, when)
    return Outcome(done=keys)


_handle_artists = _entities(transform.add_artist)
_handle_album_items = _entities(transform.add_album)


def _handle_albums(keys: list[str], result: Albums, rows: Rows, when: datetime) -> Outcome:
    """Full albums with every page of their tracks fetched in the same unit; pages a stop left out
    stay queued as ``album_tracks`` tasks."""
    outcome = _handle_album_items(keys, result.items, rows, when)
    for album in result.items:
        if album is None:
            continue
        for key in _more_track_pages(album):
            page = result.pages.get(key)
            if page is None:
                outcome.follow_up.append(("album_tracks", [key]))
            else:
                transform.add_album_tracks_page(rows, album["id"], page, when)
                outcome.also_done.append(("album_tracks", [key]))
    return outcome


_handle_tracks = _entities(transform.add_track)
