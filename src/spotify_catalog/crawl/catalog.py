"""Units of work beyond artists, albums and tracks: top tracks, playlists, shows, audiobooks.

Each is one task and one unit: a playlist, show or audiobook is fetched together with the further pages
of its items, episodes or chapters (one after the other in the same worker) and written in one
transaction, so it is never half written; a stop in the middle of its pages loses the unit (it stays
pending and is fetched again). Handlers are pure, as in :mod:`spotify_catalog.crawl.units`, and return an
:class:`~spotify_catalog.crawl.outcome.Outcome`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spotify_catalog import endpoints, transform
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import pages
from spotify_catalog.crawl.options import EPISODES_PAGE, PLAYLIST_ITEMS_PAGE
from spotify_catalog.crawl.outcome import Handler, Outcome
from spotify_catalog.errors import InvalidResponseError, NotFoundError
from spotify_catalog.settings import ApiMode
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)

TOP_TRACKS = "top_tracks"
PLAYLIST = "playlist"
SHOW = "show"
AUDIOBOOK = "audiobook"
ASKED_BY_ID = frozenset({"artist", SHOW, AUDIOBOOK})
"""Kinds whose ids the user gives and whose 404 is warned (a playlist's 404 is warned as an error of
its unit); albums and tracks that are not found any more are a change of the catalog
(:mod:`~spotify_catalog.storage.changes`)."""
KINDS = (TOP_TRACKS, PLAYLIST, SHOW, AUDIOBOOK)
"""Task kinds of this module, in the order the crawl's phases do them."""

BATCHED = frozenset({AUDIOBOOK})
"""Kinds fetched in batches in Extended mode (``/audiobooks?ids=`` gives full audiobooks; ``/shows?ids=``
only simplified shows, without episodes, so shows are fetched one by one in both modes)."""


@dataclass
class Paged:
    """Full objects (``None``: not found) and the further pages of their lists, key ``id|offset``."""

    items: list[Any]
    pages: dict[str, Any] = field(default_factory=dict)


@dataclass
class Playlist:
    """A playlist's metadata and, when they were fetched, all its item pages from offset 0."""

    meta: Any
    pages: list[Any] | None = None


def split(key: str) -> tuple[str, str]:
    first, _, rest = key.partition("|")
    return first, rest


def more_pages(obj: Any, key: str, step: int) -> list[int]:
    """Offsets of the pages of ``obj[key]`` after the embedded first one (a whole page: see
    :mod:`spotify_catalog.crawl.pages`)."""
    page = transform.page_items(obj, key)
    return [] if page is None else pages.offsets_after(page, step)


def _refuse_incomplete(kind: str, key: str, result: Any) -> None:
    """Raise :class:`InvalidResponseError` when the first answer of a unit is not whole, before its
    further pages are asked for."""
    problem = response_problem(kind, result)
    if problem is not None:
        raise InvalidResponseError(f"{kind} {key}: incomplete response: {problem}")


def make_unit(
    client: SpotifyClient,
    kind: str,
    keys: list[str],
    market: str | None,
    known: Mapping[str, str | None] | None = None,
) -> tuple[Callable[[], Any], Handler]:
    """The fetch and the handler of tasks ``keys`` of ``kind``; ``known``: the snapshot_id of the
    items each stored playlist has (a playlist whose snapshot did not change costs one request)."""
    if kind == TOP_TRACKS:
        (key,) = keys
        artist_id, top_market = split(key)
        return (
            lambda: endpoints.get_artist_top_tracks(client, artist_id, market=top_market)
        ), handle_top_tracks
    if kind == PLAYLIST:
        (playlist_id,) = keys
        snapshots = known or {}
        return (
            lambda: fetch_playlist(client, playlist_id, market, snapshots.get(playlist_id))
        ), handle_playlist
    if kind == SHOW:
        return (lambda: fetch_paged(client, SHOW, keys, market)), handle_shows
    if kind == AUDIOBOOK:
        return (lambda: fetch_paged(client, AUDIOBOOK, keys, market)), handle_audiobooks
    raise ValueError(f"unknown task kind {kind!r}")


# ------------------------------------------------------------------------------------------ fetches


def fetch_playlist(
    client: SpotifyClient, playlist_id: str, market: str | None, items_snapshot: str | None
) -> Playlist:
    """The playlist; with its items (the embedded first 100, then pages of 50) unless the metadata has
    none (Development Mode) or its ``snapshot_id`` is the one whose items are stored."""
    meta = endpoints.get_playlist(client, playlist_id, market=market)
    key = "items" if transform.page_items(meta, "items") is not None else "tracks"
    first = transform.page_items(meta, key)
    if first is None or (items_snapshot is not None and meta.get("snapshot_id") == items_snapshot):
        return Playlist(meta)
    fetched = [first]
    _refuse_incomplete(PLAYLIST, playlist_id, Playlist(meta, fetched))
    for offset in more_pages(meta, key, PLAYLIST_ITEMS_PAGE):
        fetched.append(
            endpoints.get_playlist_items(
                client, playlist_id, market=market, limit=PLAYLIST_ITEMS_PAGE, offset=offset
            )
        )
    return Playlist(meta, fetched)


_LISTS = {SHOW: pages.EPISODES, AUDIOBOOK: pages.CHAPTERS}
"""The list of each kind: the key of its first page in the full object, and its page check."""


def fetch_paged(client: SpotifyClient, kind: str, keys: list[str], market: str | None) -> Paged:
    """Shows (one each) or audiobooks (batches of 50 in Extended mode), then the further pages of their
    episodes or chapters."""
    items: list[Any]
    if kind == AUDIOBOOK and (client.mode is ApiMode.EXTENDED or len(keys) > 1):
        items = endpoints.get_several(client, kind, keys, market)
    else:
        try:
            items = [endpoints.get_one(client, kind, keys[0], market)]
        except NotFoundError:
            items = [None]
    result = Paged(items)
    _refuse_incomplete(kind, ",".join(keys), result)
    get_page = endpoints.get_show_episodes if kind == SHOW else endpoints.get_audiobook_chapters
    for obj in items:
        if not isinstance(obj, dict):
            continue
        for offset in more_pages(obj, _LISTS[kind], EPISODES_PAGE):
            page = get_page(client, obj["id"], market=market, limit=EPISODES_PAGE, offset=offset)
            result.pages[f"{obj['id']}|{offset}"] = page
    return result


# ------------------------------------------------------------------------------------------ checks


def observed_mode(kind: str, result: Paged) -> ApiMode | None:
    """The mode full audiobooks show: Development Mode leaves out ``publisher`` (and
    ``available_markets``); ``None`` for shows (not needed: they are fetched one by one anyway)."""
    if kind != AUDIOBOOK:
        return None
    first = next((item for item in result.items if isinstance(item, dict)), None)
    if first is None:
        return None
    return ApiMode.EXTENDED if "publisher" in first else ApiMode.DEVELOPMENT


def response_problem(kind: str, result: Any) -> str | None:
    """What makes a response unfit to store (see :func:`spotify_catalog.crawl.units.response_problem`),
    its pages checked by :func:`spotify_catalog.crawl.pages.page_problem`, each at the offset it was
    asked for. Playlist items may have no id (local files) or be ``null`` (removed tracks), show
    episodes be ``null``: they are kept."""
    if kind == TOP_TRACKS:
        if not isinstance(result, dict) or not isinstance(result.get("tracks"), list):
            return "no tracks list"
        if not all(isinstance(t, dict) and t.get("id") for t in result["tracks"]):
            return "a track without an id"
        return None
    if kind == PLAYLIST:
        if not isinstance(result, Playlist) or not isinstance(result.meta, dict) or not result.meta.get("id"):
            return "a playlist without an id"
        if not result.pages:
            return None
        first, *further = result.pages
        return _pages_problem(first, further, pages.PLAYLIST_ITEMS, PLAYLIST_ITEMS_PAGE)
    if not isinstance(result, Paged):
        return "expected full objects"
    items = _LISTS[kind]
    for obj in result.items:
        if obj is None:
            continue
        if not isinstance(obj, dict) or not obj.get("id"):
            return f"{kind} without an id"
        further = [page for key, page in result.pages.items() if split(key)[0] == obj["id"]]
        if problem := _pages_problem(obj.get(items), further, items, EPISODES_PAGE):
            return problem
    return None


def _pages_problem(first: Any, further: list[Any], items: str, step: int) -> str | None:
    """The first problem of the pages of a list: ``first`` (offset 0, embedded in the full object),
    then the ``further`` pages, ``step`` apart after it: as many as were fetched (none when the first is
    checked before the others are asked for)."""
    if problem := pages.page_problem(first, items, 0):
        return problem
    offsets = pages.offsets_after(first, step)
    checked = (pages.page_problem(page, items, at) for page, at in zip(further, offsets, strict=False))
    return next((p for p in checked if p), None)


# ------------------------------------------------------------------------------------------ handlers


def handle_top_tracks(keys: list[str], result: Any, rows: Rows, when: datetime) -> Outcome:
    (key,) = keys
    artist_id, market = split(key)
    tracks = transform.add_top_tracks(rows, artist_id, market, result.get("tracks"), when)
    return Outcome(done=keys, also_done=[("track", tracks)] if tracks else [])


def handle_playlist(keys: list[str], result: Playlist, rows: Rows, when: datetime) -> Outcome:
    meta = result.meta
    if result.pages is None:
        transform.add_playlist(rows, meta, when)
        return Outcome(done=keys)
    transform.add_playlist(rows, meta, when, items_snapshot_id=str(meta.get("snapshot_id") or ""))
    tracks = transform.add_playlist_items(rows, meta["id"], result.pages, when)
    return Outcome(done=keys, also_done=[("track", tracks)] if tracks else [])


def _handle_paged(kind: str) -> Handler:
    add = transform.add_show if kind == SHOW else transform.add_audiobook
    add_page = transform.add_episodes_page if kind == SHOW else transform.add_chapters_page

    def handle(keys: list[str], result: Paged, rows: Rows, when: datetime) -> Outcome:
        outcome = Outcome()
        for key, obj in zip(keys, result.items, strict=True):
            if obj is None:
                outcome.not_found.append(key)
                continue
            add(rows, obj, transform.FULL, when)
            for offset in more_pages(obj, _LISTS[kind], EPISODES_PAGE):
                add_page(rows, obj["id"], result.pages[f"{obj['id']}|{offset}"], when)
            outcome.done.append(key)
        return outcome

    return handle


handle_shows = _handle_paged(SHOW)
handle_audiobooks = _handle_paged(AUDIOBOOK)
