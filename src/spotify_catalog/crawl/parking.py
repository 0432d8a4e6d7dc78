"""The quota buckets of a run: which bucket each task kind's requests go to, the buckets Spotify
parked with ``429 QUOTA_EXCEEDED``, and the stop that names them.

A quota 429 parks only its bucket (:mod:`spotify_catalog.ledger.parking` keeps it for every process of
the account): the tasks whose requests go to it stay pending, untried, until its ``Retry-After``; the
tasks of every other kind go on. A run that has done all it could ends with
:class:`~spotify_catalog.errors.BucketParked`, naming each parked bucket and its time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import sqlalchemy as sa

from spotify_catalog.buckets import BUCKETS, OTHER
from spotify_catalog.crawl import catalog
from spotify_catalog.errors import PARKED, BucketParked, QuotaExceededError, format_time
from spotify_catalog.ledger import AccountBudget
from spotify_catalog.storage import schema, state

log = logging.getLogger(__name__)

ROUTES: Mapping[str, tuple[str, ...]] = {
    "search": ("/search",),
    "artist": ("/artists/{id}", "/artists"),
    "artist_albums": ("/artists/{id}/albums",),
    "album": ("/albums/{id}", "/albums", "/albums/{id}/tracks"),
    "album_tracks": ("/albums/{id}/tracks",),
    "track": ("/tracks/{id}", "/tracks"),
    catalog.TOP_TRACKS: ("/artists/{id}/top-tracks",),
    catalog.PLAYLIST: ("/playlists/{id}", "/playlists/{id}/items"),
    catalog.SHOW: ("/shows/{id}", "/shows/{id}/episodes"),
    catalog.AUDIOBOOK: ("/audiobooks/{id}", "/audiobooks", "/audiobooks/{id}/chapters"),
}
"""The routes each task kind's requests go to."""


def buckets_of(kind: str) -> frozenset[str]:
    """The quota buckets a task kind's requests count in."""
    return frozenset(BUCKETS.get(route, OTHER) for route in ROUTES.get(kind, ()))


def kinds_of(bucket: str) -> list[str]:
    """The task kinds whose requests count in ``bucket``."""
    return [kind for kind in ROUTES if bucket in buckets_of(kind)]


class Parking:
    """The buckets parked for a run: learnt from its own refusals (a 429, or the account's ledger
    refusing a request to a bucket another process had parked) and from ``budget``'s last reading
    of the ledger."""

    def __init__(self, budget: AccountBudget | None, now: Callable[[], datetime]) -> None:
        self._budget = budget
        self._now = now
        self._parked: dict[str, datetime] = {}
        self._why: dict[str, str] = {}  # errors.PARKED, or errors.FULL

    def park(self, kind: str, exc: BaseException) -> bool:
        """Park the bucket ``exc`` refused (a request of ``kind``); ``False`` if ``exc`` is not such a
        refusal."""
        if isinstance(exc, BucketParked):
            found, why = exc.parked, exc.why
        elif isinstance(exc, QuotaExceededError):
            found, why = dict.fromkeys(buckets_of(kind), exc.retry_at), PARKED
        else:
            return False
        for bucket, until in found.items():
            if bucket not in self._parked or until > self._parked[bucket]:
                self._parked[bucket] = until
                self._why[bucket] = why
                log.warning(
                    "quota bucket %s %s until %s: its tasks wait, the others go on",
                    bucket,
                    why,
                    format_time(until),
                )
        return True

    def parked(self) -> dict[str, datetime]:
        """The buckets parked now, and until when."""
        now = self._now()
        found = dict(self._budget.parked()) if self._budget is not None else {}
        for bucket, until in self._parked.items():
            found[bucket] = max(until, found.get(bucket, until))
        return {bucket: until for bucket, until in found.items() if until > now}

    def blocks(self, kind: str) -> bool:
        """Whether the tasks of ``kind`` must wait (a bucket of theirs is parked)."""
        return bool(buckets_of(kind) & self.parked().keys())

    def open_kinds(self, kinds: Iterable[str]) -> list[str]:
        """Those of ``kinds`` that may go on."""
        parked = self.parked().keys()
        return [kind for kind in kinds if not buckets_of(kind) & parked]

    def stop(self, conn: sa.Connection, max_attempts: int) -> BucketParked | None:
        """The stop of a run that did all it could: the buckets parked now or earlier in the run that
        still have tasks to do (``None``: none has). A bucket whose time came after its phase was
        over has its tasks left for the next run, which may start at once."""
        t = schema.tasks
        waiting: dict[str, datetime] = {}
        for bucket, until in {**self._parked, **self.parked()}.items():
            query = (
                sa.select(sa.func.count())
                .select_from(t)
                .where(
                    t.c.kind.in_(kinds_of(bucket)), t.c.state == state.PENDING, t.c.attempts < max_attempts
                )
            )
            if conn.execute(query).scalar_one():
                waiting[bucket] = until
        if not waiting:
            return None
        whys = {self._why.get(bucket, PARKED) for bucket in waiting}
        why = (
            whys.pop()
            if len(whys) == 1
            else "parked (Spotify's 429 QUOTA_EXCEEDED) or full (their learnt size)"
        )
        return BucketParked(waiting, note="every other task is done", why=why)
