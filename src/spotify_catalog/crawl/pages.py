"""Pages of a list (Spotify's paging objects) as the crawler takes them: what makes one unfit to store,
and where the pages after it start.

A page is whole when ``items`` is a list, ``total``, ``offset`` and ``limit`` are whole numbers, it holds
no more items than its ``limit`` and none past its ``total``, and every item is what its list holds: an
object with its ``id``. ``null`` stands in for an item only in the lists where Spotify sends it: a
playlist's items (a track no longer available) and a show's episodes; elsewhere it makes the page
incomplete. The pages after one start at its ``offset + limit``, whatever its items are, so a ``null``
never shifts an offset or a position.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spotify_catalog import transform

EPISODES = "episodes"
CHAPTERS = "chapters"
PLAYLIST_ITEMS = "playlist items"
NULLS_KEPT = frozenset({EPISODES, PLAYLIST_ITEMS})
"""The lists in which Spotify answers ``null`` for an item: such a ``null`` is kept (a playlist item
with no track; no episode row), never taken for a bad answer."""

_ITEM_NAMES = {EPISODES: "episode", CHAPTERS: "chapter"}


def shape_problem(page: Any) -> str | None:
    """What makes ``page`` not a whole paging object (its items not looked at), or ``None``."""
    if (
        not isinstance(page, dict)
        or not isinstance(page.get("items"), list)
        or not isinstance(page.get("total"), int)
    ):
        return "page without items or total"
    offset, limit = page.get("offset"), page.get("limit")
    if not (isinstance(offset, int) and isinstance(limit, int)) or offset < 0 or limit < 1:
        return "page without its offset or limit"
    count = len(page["items"])
    if count > limit:
        return f"page of {count} items, more than its limit {limit}"
    if offset + count > page["total"]:
        return f"page with items past its total ({offset} + {count} > {page['total']})"
    return None


def page_problem(page: Any, items: str, offset: int | None = None) -> str | None:
    """What makes ``page`` of the list ``items`` (:data:`EPISODES`, :data:`CHAPTERS`,
    :data:`PLAYLIST_ITEMS`) unfit to store, or ``None``; ``offset``: the one it was asked for."""
    problem = shape_problem(page)
    if problem is not None:
        return problem
    if offset is not None and page["offset"] != offset:
        return f"page at offset {page['offset']} answered for offset {offset}"
    for item in page["items"]:
        if item is None:
            if items in NULLS_KEPT:
                continue
            return f"a null item in a page of {items}"
        if not isinstance(item, dict):
            return "page with an item that is not an object"
        if items == PLAYLIST_ITEMS:
            if (problem := _entry_problem(item)) is not None:
                return problem
        elif not has_id(item):
            return f"{_ITEM_NAMES.get(items, 'item')} without an id"
    return None


def _entry_problem(entry: dict[str, Any]) -> str | None:
    """A playlist item's: its track or episode without an id (a local file has none), its ``added_by``
    user without one."""
    obj = transform.entry_object(entry)
    if obj is not None and not isinstance(obj, dict):
        return "a playlist item whose track is not an object"
    if obj is not None and not transform.is_local_entry(entry) and not has_id(obj):
        return f"a playlist {obj.get('type') or 'item'} without an id"
    added_by = entry.get("added_by")
    if isinstance(added_by, dict) and "id" not in added_by:
        return "a playlist item added by a user without an id"
    return None


def has_id(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("id"), str) and bool(obj["id"])


def offsets_after(page: Mapping[str, Any], step: int) -> list[int]:
    """The offsets of the pages after ``page`` (a whole one), ``step`` apart up to its ``total``."""
    return list(range(page["offset"] + page["limit"], page["total"], step))
