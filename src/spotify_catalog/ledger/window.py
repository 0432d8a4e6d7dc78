"""The rolling window: an account's requests in the last 24 h, counted from the ledger's blocks, and
what a reservation may take of what is left. Reads only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from spotify_catalog.errors import format_time
from spotify_catalog.ledger.parking import BucketState, bucket_states
from spotify_catalog.ledger.schema import blocks

WINDOW = timedelta(hours=24)
"""Spotify's quota counts the requests of a rolling 24 h."""
SHARE = 4
"""A block takes at most this fraction (1/SHARE) of what the budget has left, at least one request."""


@dataclass(frozen=True)
class Usage:
    """An account's requests in the rolling window of its ledger."""

    account: str | None
    ledger: str
    """Where the ledger is (password hidden)."""
    recorded: bool
    """Whether the ledger exists (``False``: nothing was ever recorded there)."""
    requests: int = 0
    limit: int | None = None
    frees_at: datetime | None = None
    """When the requests fall under ``limit`` again (``None``: they are under it, or no limit)."""
    buckets: Mapping[str, BucketState] = field(default_factory=dict)
    """Each bucket's requests in the window, its learnt size and how long it is parked (buckets with
    neither requests nor a learnt size are left out)."""

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.requests)

    @property
    def parked(self) -> dict[str, datetime]:
        """The buckets parked now, and until when."""
        return {name: b.parked_until for name, b in self.buckets.items() if b.parked_until is not None}


def whole_second(moment: datetime) -> datetime:
    """``moment`` rounded up to a whole second (MySQL keeps whole seconds: never earlier than it was)."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def frees_at(window: Sequence[tuple[datetime, int]], limit: int, span: timedelta = WINDOW) -> datetime | None:
    """When the blocks of ``window`` (``(ends_at, requests)``, oldest first) fall under ``limit``
    requests: each leaves ``span`` (24 h) after its ``ends_at`` (``None``: they are under it now)."""
    used = sum(requests for _, requests in window)
    if used < limit:
        return None
    for ends_at, requests in window:
        used -= requests
        if used < limit:
            return ends_at + span
    return window[-1][0] + span if window else None


def window(
    conn: sa.Connection, account: str, now: datetime, span: timedelta = WINDOW
) -> list[tuple[datetime, int]]:
    """The blocks of ``account`` that count at ``now``: ``(ends_at, requests)``, oldest first."""
    b = blocks
    query = (
        sa.select(b.c.ends_at, b.c.requests)
        .where(b.c.account == account, b.c.ends_at > now - span, b.c.requests > 0)
        .order_by(b.c.ends_at)
    )
    return [(ends_at, int(requests)) for ends_at, requests in conn.execute(query)]


def usage(
    conn: sa.Connection,
    account: str,
    where: str,
    *,
    now: datetime,
    limit: int | None,
    span: timedelta = WINDOW,
) -> Usage:
    """``account``'s use at ``now`` in the ledger behind ``conn`` (read only; a database without the
    ledger's tables has recorded nothing)."""
    if not sa.inspect(conn).has_table(blocks.name):
        return Usage(account, where, False, limit=limit)
    rows = window(conn, account, now, span)
    used = sum(requests for _, requests in rows)
    frees = frees_at(rows, limit, span) if limit is not None else None
    buckets = bucket_states(conn, account, now, since=now - span)
    return Usage(account, where, True, used, limit, frees, buckets)


def grant_size(want: int, available: int | None) -> int:
    """How many requests a reservation gets: ``want`` without a limit, else at most a
    :data:`SHARE`-th of what is left (at least one while any is), so that other processes of the
    account still find some."""
    if available is None:
        return want
    if available <= 0:
        return 0
    return min(want, max(1, available // SHARE))


def describe(use: Usage) -> str:
    """``requests in the last 24 h: N of a daily budget of B (under it again after T; account A)``, and
    whether the ledger has any recorded."""
    text = f"requests in the last 24 h: {use.requests:,}"
    if use.limit is not None:
        text += f" of a daily budget of {use.limit:,}"
    notes = [] if use.frees_at is None else [f"under it again after {format_time(use.frees_at)}"]
    if use.account is None:
        notes.append("no account known: give --account, or the client id")
    elif use.recorded:
        notes.append(f"account {use.account}")
    else:
        notes.append(f"account {use.account}: none recorded, no ledger at {use.ledger}")
    return f"{text} ({'; '.join(notes)})"
