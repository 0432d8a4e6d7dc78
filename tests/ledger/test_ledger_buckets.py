"""The buckets' parked state in the account's ledger (:mod:`spotify_catalog.ledger.parking`): a 429
``QUOTA_EXCEEDED`` parks its bucket for every process of the account until its time, with the size the
ledger learnt (what it counted in the bucket in the 24 h before the 429); a ledger of version 1 is
brought up to date, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from spotify_catalog import ledger
from spotify_catalog.errors import BucketParked
from spotify_catalog.storage.engine import create_engine

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ALBUMS = "/artists/x/albums"


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_quota_429_parks_its_bucket_for_every_process_of_the_account(ledger_url: str) -> None:
    book = ledger.Ledger(ledger_url)
    clock = Clock(T0)
    first = ledger.AccountBudget(book, "acct", clock=clock)
    for _ in range(12):  # more than a block: some closed before the 429, some in the block it closes
        first.take(ALBUMS)
    first.take("/tracks/t")
    clock.now = T0 + HOUR
    flying_book = ledger.Ledger(ledger_url)
    flying = ledger.AccountBudget(flying_book, "acct", clock=clock)
    flying.take(ALBUMS)  # another process's request, in flight when the 429 comes
    first.take(ALBUMS)  # the 13th of the bucket: refused
    until = T0 + 25 * HOUR
    assert first.refused(ALBUMS, until) == 12  # the learnt size: the refused request left out
    with pytest.raises(BucketParked) as refused:
        first.take(ALBUMS)
    assert refused.value.parked == {"artist-albums": until}
    first.take("/tracks/t")  # every other bucket goes on
    first.release()
    # another process of the account (a new budget on the same ledger): refused before sending
    other_book = ledger.Ledger(ledger_url)
    other = ledger.AccountBudget(other_book, "acct", clock=clock)
    with pytest.raises(BucketParked):
        other.take("/artists/y/albums")
    other.take("/artists/y")
    assert other.parked() == {"artist-albums": until}
    # the request that was in flight refused too: the size learnt first stays, the time never moves back
    assert flying.refused(ALBUMS, until - HOUR) == 12
    assert other.refused(ALBUMS, until + HOUR) == 12
    for budget, book_of in ((flying, flying_book), (other, other_book)):
        budget.release()
        book_of.close()
    # another account shares nothing
    ledger.AccountBudget(book, "someone else", clock=clock).take(ALBUMS)
    use = book.usage("acct", now=clock.now, limit=None)
    assert use.buckets["artist-albums"] == ledger.BucketState(14, 12, until + HOUR)
    assert use.buckets["tracks"] == ledger.BucketState(2, None, None)
    assert use.parked == {"artist-albums": until + HOUR}
    # once the time has come the bucket answers again; the learnt size stays known
    clock.now = until + HOUR
    again = ledger.AccountBudget(book, "acct", clock=clock)
    again.take(ALBUMS)
    again.release()
    later = book.usage("acct", now=clock.now, limit=None).buckets["artist-albums"]
    assert (later.learnt_size, later.parked_until) == (12, None)
    book.close()


def test_force_sends_to_a_parked_bucket_until_spotify_refuses_again(tmp_path: Path) -> None:
    book = ledger.Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    clock = Clock(T0)
    budget = ledger.AccountBudget(book, "acct", clock=clock)
    budget.take(ALBUMS)
    budget.refused(ALBUMS, T0 + 24 * HOUR)
    budget.release()
    forced = ledger.AccountBudget(book, "acct", clock=clock)
    forced.force()
    forced.take(ALBUMS)
    assert forced.parked() == {}
    forced.refused(ALBUMS, T0 + 24 * HOUR)
    with pytest.raises(BucketParked):
        forced.take(ALBUMS)
    forced.release()
    book.close()


def test_a_ledger_of_version_1_is_brought_up_to_date(ledger_url: str) -> None:
    if ledger_url.startswith("sqlite:///"):  # an existing ledger file, written by an older version
        Path(ledger_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(ledger_url)
    old = [ledger.meta, ledger.accounts, ledger.blocks, ledger.block_buckets]
    with engine.begin() as conn:
        ledger.metadata.create_all(conn, tables=old)
        conn.execute(ledger.meta.insert().values(key="version", value="1"))
        conn.execute(ledger.accounts.insert().values(account="acct", created_at=T0))
        block = ledger.blocks.insert().values(
            account="acct", opened_at=T0, ends_at=T0, requests=7, closed=True, host="h", pid=1
        )
        key = conn.execute(block).inserted_primary_key
        assert key is not None
        conn.execute(
            ledger.block_buckets.insert().values(block_id=key[0], bucket="artist-albums", requests=7)
        )
        assert not sa.inspect(conn).has_table(ledger.buckets.name)
    # status reads an old ledger as it is (nothing learnt)
    with engine.connect() as conn:
        read = ledger.usage(conn, "acct", "where", now=T0 + HOUR, limit=None)
    assert read.buckets == {"artist-albums": ledger.BucketState(7, None, None)}
    book = ledger.Ledger(ledger_url)
    budget = ledger.AccountBudget(book, "acct", clock=lambda: T0 + HOUR)
    budget.take(ALBUMS)
    assert budget.refused(ALBUMS, T0 + 24 * HOUR) == 7  # the requests of version 1 count
    budget.release()
    book.close()
    with engine.connect() as conn:
        version = conn.execute(sa.select(ledger.meta.c.value).where(ledger.meta.c.key == "version")).scalar()
        assert sa.inspect(conn).has_table(ledger.buckets.name)
    assert version == str(ledger.VERSION) == "2"
    engine.dispose()
