"""What became of a unit's tasks once its answer is turned into rows: the type every pure handler of
:mod:`spotify_catalog.crawl.units` and :mod:`spotify_catalog.crawl.catalog` returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spotify_catalog.transform import Rows


@dataclass
class Listing:
    """A discography page written: whose (``artist_id``, ``groups`` as in the task key), which albums it
    listed, and for the first page the keys of the listing's other pages (see :mod:`storage.changes`)."""

    artist_id: str
    groups: str
    album_ids: list[str]
    pages: list[str] | None = None


@dataclass
class Outcome:
    """Task keys ``done`` and ``not_found`` (of the unit's kind), tasks of other kinds done with them
    (``also_done``) or queued by them (``follow_up``), names no search resolved, the listing written."""

    done: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    also_done: list[tuple[str, list[str]]] = field(default_factory=list)
    follow_up: list[tuple[str, list[str]]] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    listing: Listing | None = None


Handler = Callable[[list[str], Any, Rows, datetime], Outcome]
"""A pure handler: (task keys, the checked answer, rows to add to, when) -> what became of the tasks."""
