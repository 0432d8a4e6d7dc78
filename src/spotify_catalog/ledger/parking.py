"""The buckets' parked state: what Spotify's ``429 QUOTA_EXCEEDED`` told of a quota bucket of an
account, kept in ``_ledger_buckets`` and read in the transaction that reserves.

A 429 ``QUOTA_EXCEEDED`` parks its bucket until its ``Retry-After`` (``parked_until``): no process of the
account sends to it before then. The bucket's learnt size is what the ledger counted in it in the 24 h
before the 429 (the refused request left out): the requests Spotify let through in its window. A
second 429 of a bucket already parked (a request that was in flight) moves ``parked_until`` no earlier
and keeps the size learnt first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from spotify_catalog.ledger.schema import block_buckets, blocks, buckets


@dataclass(frozen=True)
class BucketState:
    """One bucket of an account: its requests in the rolling 24 h (those of closed blocks), the size
    the ledger learnt from Spotify's last 429 (``None``: never refused), and until when it is parked
    (``None``: it is not)."""

    spent_24h: int = 0
    learnt_size: int | None = None
    parked_until: datetime | None = None

    def to_json(self) -> dict[str, object]:
        until = self.parked_until.isoformat() if self.parked_until is not None else None
        return {"spent_24h": self.spent_24h, "learnt_size": self.learnt_size, "parked_until": until}


def spent(conn: sa.Connection, account: str, *, since: datetime) -> dict[str, int]:
    """The requests of ``account`` per bucket in the closed blocks that end after ``since``."""
    bb, b = block_buckets, blocks
    query = (
        sa.select(bb.c.bucket, sa.func.sum(bb.c.requests))
        .select_from(bb.join(b, b.c.id == bb.c.block_id))
        .where(b.c.account == account, b.c.ends_at > since)
        .group_by(bb.c.bucket)
    )
    return {bucket: int(n) for bucket, n in conn.execute(query)}


def parked(conn: sa.Connection, account: str, now: datetime) -> dict[str, datetime]:
    """The buckets of ``account`` parked at ``now``, and until when."""
    k = buckets
    query = sa.select(k.c.bucket, k.c.parked_until).where(k.c.account == account, k.c.parked_until > now)
    return {str(bucket): until for bucket, until in conn.execute(query)}


def learnt(conn: sa.Connection, account: str) -> dict[str, tuple[int, datetime]]:
    """Each bucket's learnt size and when its 429 came."""
    k = buckets
    query = sa.select(k.c.bucket, k.c.learnt_size, k.c.parked_until).where(k.c.account == account)
    return {bucket: (int(size), until) for bucket, size, until in conn.execute(query)}


@dataclass(frozen=True)
class Room:
    """A bucket with a learnt size and its requests in the window as the ledger counted them (closed
    blocks): ``(ends_at, requests)``, oldest first."""

    size: int
    window: tuple[tuple[datetime, int], ...]


# What a reservation reads, built once (executed with parameters: not built again on every call).


@functools.cache
def _buckets_statement() -> sa.Select[Any]:
    k = buckets
    return sa.select(k.c.bucket, k.c.parked_until, k.c.learnt_size).where(
        k.c.account == sa.bindparam("account_")
    )


@functools.cache
def _window_statement() -> sa.Select[Any]:
    bb, b = block_buckets, blocks
    return (
        sa.select(b.c.ends_at, bb.c.bucket, bb.c.requests)
        .select_from(bb.join(b, b.c.id == bb.c.block_id))
        .where(
            b.c.account == sa.bindparam("account_"),
            b.c.ends_at > sa.bindparam("since_"),
            bb.c.bucket.in_(sa.bindparam("buckets_", expanding=True)),
        )
        .order_by(b.c.ends_at)
    )


def reading(
    conn: sa.Connection, account: str, *, now: datetime, since: datetime
) -> tuple[dict[str, datetime], dict[str, Room]]:
    """What the transaction that reserves reads of ``account``'s buckets: those parked at ``now`` (and
    until when), and those with a learnt size with their requests in the window since ``since``."""
    parked: dict[str, datetime] = {}
    sizes: dict[str, int] = {}
    for bucket, until, size in conn.execute(_buckets_statement(), {"account_": account}):
        if until > now:
            parked[bucket] = until
        if size > 0:
            sizes[bucket] = int(size)
    if not sizes:
        return parked, {}
    found: dict[str, list[tuple[datetime, int]]] = {bucket: [] for bucket in sizes}
    params = {"account_": account, "since_": since, "buckets_": list(sizes)}
    for ends_at, bucket, requests in conn.execute(_window_statement(), params):
        found[bucket].append((ends_at, int(requests)))
    return parked, {bucket: Room(sizes[bucket], tuple(rows)) for bucket, rows in found.items()}


def park(
    conn: sa.Connection, account: str, bucket: str, *, until: datetime, now: datetime, since: datetime
) -> int:
    """Park ``bucket`` until ``until`` after a 429 at ``now`` (call in the transaction holding the
    account's lock, after the block of the refused request is closed); ``since``: the window's start.
    Returns the bucket's learnt size."""
    k = buckets
    mine = sa.and_(k.c.account == account, k.c.bucket == bucket)
    row = conn.execute(sa.select(k.c.parked_until, k.c.learnt_size).where(mine)).first()
    if row is not None and row.parked_until > now:  # already parked: a request that was in flight
        if until > row.parked_until:
            conn.execute(k.update().where(mine).values(parked_until=until))
        return int(row.learnt_size)
    size = max(0, spent(conn, account, since=since).get(bucket, 0) - 1)  # the 429 itself left out
    values = {"parked_at": now, "parked_until": until, "learnt_size": size}
    if row is None:
        conn.execute(k.insert().values(account=account, bucket=bucket, **values))
    else:
        conn.execute(k.update().where(mine).values(**values))
    return size


def bucket_states(
    conn: sa.Connection, account: str, now: datetime, *, since: datetime
) -> dict[str, BucketState]:
    """Every bucket of ``account`` that has requests in the window or a learnt size (read only; a
    ledger of version 1 has learnt none)."""
    used = spent(conn, account, since=since)
    sizes = learnt(conn, account) if sa.inspect(conn).has_table(buckets.name) else {}
    out: dict[str, BucketState] = {}
    for name in sorted(set(used) | set(sizes)):
        size, until = sizes.get(name, (None, None))
        out[name] = BucketState(used.get(name, 0), size, until if until is not None and until > now else None)
    return out
