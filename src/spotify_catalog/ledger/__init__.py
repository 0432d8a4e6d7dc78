"""The account's ledger: every Web API request the tool sends, counted per developer account.

Spotify counts the Development-Mode quota per developer account (the client ids of one account share
it), over a rolling 24 h, in buckets of endpoints (docs/operations.md, "Accounts and the ledger"). The
ledger keeps the requests of each account, when they were sent and their bucket, in a database of its
own: by default a small SQLite file in the user's data directory (:func:`default_url`), or any database
given with ``--ledger URL`` (PostgreSQL or MariaDB: crawls on several machines share it). A
``--daily-budget`` then holds for all the processes of an account together, crawls and one-off
commands alike; a bucket Spotify refused with ``429 QUOTA_EXCEEDED`` is parked for all of them.

The modules:

- :mod:`~spotify_catalog.ledger.schema`: the tables, where the ledger lives, creating and migrating it;
- :mod:`~spotify_catalog.ledger.window`: the rolling 24 h counted from the blocks (:class:`Usage`);
- :mod:`~spotify_catalog.ledger.parking`: the buckets' parked state and learnt sizes;
- :mod:`~spotify_catalog.ledger.book`: :class:`Ledger`, the transactions that reserve, close and park;
- :mod:`~spotify_catalog.ledger.budget`: :class:`AccountBudget`, what a client takes its requests from.
"""

from __future__ import annotations

from spotify_catalog.buckets import BUCKETS, OTHER, bucket_of, route
from spotify_catalog.ledger.book import BLOCK, IN_FLIGHT, KEEP, LEASE, Grant, Ledger, Spent
from spotify_catalog.ledger.budget import AccountBudget, open_budget
from spotify_catalog.ledger.parking import BucketState
from spotify_catalog.ledger.schema import (
    FILE_NAME,
    VERSION,
    accounts,
    block_buckets,
    blocks,
    buckets,
    default_url,
    ledger_url,
    meta,
    metadata,
)
from spotify_catalog.ledger.window import (
    SHARE,
    WINDOW,
    Usage,
    describe,
    frees_at,
    grant_size,
    usage,
    window,
)

__all__ = [
    "BLOCK",
    "BUCKETS",
    "FILE_NAME",
    "IN_FLIGHT",
    "KEEP",
    "LEASE",
    "OTHER",
    "SHARE",
    "VERSION",
    "WINDOW",
    "AccountBudget",
    "BucketState",
    "Grant",
    "Ledger",
    "Spent",
    "Usage",
    "accounts",
    "block_buckets",
    "blocks",
    "bucket_of",
    "buckets",
    "default_url",
    "describe",
    "frees_at",
    "grant_size",
    "ledger_url",
    "meta",
    "metadata",
    "open_budget",
    "route",
    "usage",
    "window",
]
