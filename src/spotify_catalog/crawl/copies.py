"""What a crawl run has written, by content, so that it does not write the same copy again."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from spotify_catalog.transform import Rows, is_copy

_NOT_COMPARED = frozenset({"raw", "fetched_at"})


Digests = dict[tuple[str, str], int]
"""(table, key) -> digest of what was written for it (see :class:`WrittenCopies`)."""


class WrittenCopies:
    """What a run has written again and again, by content: an album comes inside each of its tracks
    and an artist inside each of its albums and tracks, the same each time, and a track's artists
    come with its album's track list and again with the track. Not written again in the run:

    - a copy of an entity (:func:`is_copy`) whose columns (``raw`` and ``fetched_at`` aside) equal
      those of one written before: an album of 17 tracks is written once from them, not 17 times;
    - a parent's child rows (``track_artists`` of a track) equal to those written before for it.

    Own objects and listings are always written. Remembers at most ``limit`` (then starts over)."""

    def __init__(self, limit: int = 250_000) -> None:
        self.limit = limit
        self._digests: Digests = {}

    def without_known(self, rows: Rows, fresh: Digests) -> Rows:
        """``rows`` without what was written before (``rows`` is left as it is); what it keeps is
        added to ``fresh``, to pass to :meth:`written` once its transaction has committed."""
        out = Rows(dict(rows.upserts), dict(rows.children))
        for table, table_rows in rows.upserts.items():
            copies: dict[str, dict[str, Any]] = {}
            own: set[str] = set()
            for row in table_rows:
                if is_copy(row):
                    copies[row["id"]] = row  # the last one is what would be written
                elif "id" in row:
                    own.add(row["id"])
            known = self._known(table, ((k, r) for k, r in copies.items() if k not in own), _frozen, fresh)
            if known:
                out.upserts[table] = [r for r in table_rows if r.get("id") not in known]
        for table, parents in rows.children.items():
            known = self._known(table, parents.items(), _frozen_rows, fresh)
            if known:
                out.children[table] = {p: c for p, c in parents.items() if p not in known}
        return out

    def _known(
        self,
        table: str,
        items: Iterable[tuple[str, Any]],
        frozen: Callable[[Any], Any],
        fresh: Digests,
    ) -> set[str]:
        known: set[str] = set()
        for key, value in items:
            try:
                digest = hash(frozen(value))
            except TypeError:  # a value that cannot be compared this way: written
                continue
            if self._digests.get((table, key)) == digest:
                known.add(key)
            else:
                fresh[(table, key)] = digest
        return known

    def written(self, fresh: Digests) -> None:
        """Remember what is now in the database."""
        if len(self._digests) + len(fresh) > self.limit:
            self._digests.clear()
        self._digests.update(fresh)


def _frozen_rows(rows: list[dict[str, Any]]) -> tuple[Any, ...]:
    return tuple(map(_frozen, rows))


def _frozen(row: dict[str, Any]) -> tuple[Any, ...]:
    """A hashable form of a row (lists become tuples; a list of objects stays unhashable: TypeError)."""
    return tuple([(k, tuple(v) if type(v) is list else v) for k, v in row.items() if k not in _NOT_COMPARED])
