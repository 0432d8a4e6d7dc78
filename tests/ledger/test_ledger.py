"""The account's ledger (:mod:`spotify_catalog.ledger`): routes and buckets, the rolling window counted
from blocks, reservations that several processes share without ever granting more than the budget,
and what a killed process leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from spotify_catalog import ledger
from spotify_catalog.errors import BudgetSpent, UsageError
from spotify_catalog.storage.engine import create_engine

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _spend(
    book: ledger.Ledger, account: str, requests: int, at: datetime, *, limit: int | None = None
) -> None:
    budget = ledger.AccountBudget(book, account, limit=limit, clock=lambda: at)
    for _ in range(requests):
        budget.take("/tracks/x")
    budget.release()


def _blocks(url: str) -> list[sa.Row[tuple[int, str, datetime, int, bool]]]:
    engine = create_engine(url)
    b = ledger.blocks
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(b.c.id, b.c.account, b.c.ends_at, b.c.requests, b.c.closed).order_by(b.c.id)
        ).all()
    engine.dispose()
    return list(rows)


# ------------------------------------------------------------------------------ routes and buckets


@pytest.mark.parametrize(
    ("path", "template", "bucket"),
    [
        ("/artists/0TnOYISbd1XYRBk9myaseg/albums?limit=10&offset=2", "/artists/{id}/albums", "artist-albums"),
        ("/v1/artists/0TnOYISbd1XYRBk9myaseg/albums", "/artists/{id}/albums", "artist-albums"),
        ("/artists/0TnOYISbd1XYRBk9myaseg", "/artists/{id}", "artists"),
        ("/artists?ids=a,b", "/artists", "artists"),
        ("/artists/x/top-tracks?market=US", "/artists/{id}/top-tracks", "artist-top-tracks"),
        ("/albums/x/tracks?offset=50", "/albums/{id}/tracks", "albums"),
        ("/tracks/x", "/tracks/{id}", "tracks"),
        ("/search?q=a&type=artist", "/search", "search"),
        ("/playlists/x/items", "/playlists/{id}/items", "playlists"),
        ("/users/someone/playlists", "/users/{id}/playlists", "playlists"),
        ("/browse/categories/pop/playlists", "/browse/categories/{id}/playlists", "playlists"),
        ("/me/playlists", "/me/playlists", "playlists"),
        ("/shows/x/episodes", "/shows/{id}/episodes", "shows"),
        ("/audiobooks/x/chapters", "/audiobooks/{id}/chapters", "audiobooks"),
        ("/me/albums/contains", "/me/albums/contains", "other"),
        ("/something/new", "/something/new", "other"),
    ],
)
def test_a_path_s_route_template_and_bucket(path: str, template: str, bucket: str) -> None:
    assert ledger.route(path) == template
    assert ledger.bucket_of(path) == bucket


def test_every_bucket_s_route_is_its_own_template() -> None:
    for template in ledger.BUCKETS:
        assert ledger.route(template.replace("{id}", "abc")) == template


def test_a_reservation_takes_a_share_of_what_is_left() -> None:
    assert ledger.grant_size(10, None) == 10  # no limit: a whole block
    assert [ledger.grant_size(10, left) for left in (60, 40, 39, 12, 4, 3, 1, 0, -5)] == [
        10, 10, 9, 3, 1, 1, 1, 0, 0,
    ]  # fmt: skip


def test_when_the_window_falls_under_the_limit() -> None:
    rows = [(T0, 300), (T0 + 5 * HOUR, 400), (T0 + 9 * HOUR, 200)]
    assert ledger.frees_at(rows, 901) is None  # 900 < 901: under it now
    assert ledger.frees_at(rows, 900) == T0 + 24 * HOUR  # the 300 leave
    assert ledger.frees_at(rows, 601) == T0 + 24 * HOUR
    assert ledger.frees_at(rows, 600) == T0 + 29 * HOUR  # the 400 must leave too
    assert ledger.frees_at(rows, 1) == T0 + 33 * HOUR
    assert ledger.frees_at([], 1) is None


# ------------------------------------------------------------------------------ the window


def test_the_rolling_window_counts_blocks_until_24_h_after_their_last_request(ledger_url: str) -> None:
    book = ledger.Ledger(ledger_url)
    _spend(book, "acct", 500, T0 - 30 * HOUR)  # out of the window at T0
    _spend(book, "acct", 300, T0 - 23 * HOUR - timedelta(seconds=30.5))
    _spend(book, "acct", 200, T0 - 2 * HOUR)
    _spend(book, "other", 999, T0 - HOUR)
    use = book.usage("acct", now=T0, limit=1000)
    assert (use.account, use.recorded, use.requests, use.frees_at) == ("acct", True, 500, None)
    full = book.usage("acct", now=T0, limit=500)
    # the 300's last request + a minute in flight, rounded up to the second, + 24 h
    assert full.frees_at == T0 + HOUR + ledger.IN_FLIGHT - timedelta(seconds=30)
    assert full.left == 0
    # a block held open counts whole until its lease ends, whatever it sent so far
    budget = ledger.AccountBudget(book, "acct", limit=1000, clock=lambda: T0)
    budget.take("/search?q=x")
    held = book.usage("acct", now=T0, limit=None)
    assert held.requests == 500 + ledger.grant_size(ledger.BLOCK, 500)
    assert budget.left() == 1000 - 500 - 1
    budget.release()  # what it did not send is the account's again
    assert book.usage("acct", now=T0, limit=None).requests == 501
    by_bucket = _buckets(ledger_url)
    assert by_bucket == {"tracks": 500 + 300 + 200 + 999, "search": 1}
    book.close()


def _buckets(url: str) -> dict[str, int]:
    engine = create_engine(url)
    bb = ledger.block_buckets
    with engine.connect() as conn:
        rows = conn.execute(sa.select(bb.c.bucket, sa.func.sum(bb.c.requests)).group_by(bb.c.bucket)).all()
    engine.dispose()
    return {bucket: int(total) for bucket, total in rows}


def test_a_spent_budget_refuses_and_says_when_the_oldest_request_leaves(ledger_url: str) -> None:
    book = ledger.Ledger(ledger_url)
    clock = Clock(T0)
    budget = ledger.AccountBudget(book, "acct", limit=30, clock=clock)
    for _ in range(20):
        budget.take("/artists/x")
    clock.now = T0 + 2 * HOUR
    for _ in range(10):
        budget.take("/albums/x")
    with pytest.raises(BudgetSpent) as refused:
        budget.take("/albums/x")
    spent = "daily budget of 30 requests of account acct used up (30 in the last 24 h)"
    assert refused.value.message == spent
    # the first 20 (the oldest, sent at T0) leave the window 24 h (and a minute in flight) later
    assert refused.value.retry_at == T0 + 24 * HOUR + ledger.IN_FLIGHT
    budget.release()
    assert book.usage("acct", now=clock.now, limit=30).frees_at == T0 + 24 * HOUR + ledger.IN_FLIGHT
    clock.now = T0 + 24 * HOUR + ledger.IN_FLIGHT
    budget.take("/albums/x")  # the 20 left: there is room again
    budget.release()
    book.close()


def test_a_block_is_not_used_after_its_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    book = ledger.Ledger(url)
    clock = Clock(T0)
    budget = ledger.AccountBudget(book, "acct", clock=clock)
    budget.take("/tracks/a")
    clock.now = T0 + ledger.LEASE - ledger.IN_FLIGHT + timedelta(seconds=1)  # too late for this block
    budget.take("/tracks/b")
    budget.release()
    rows = _blocks(url)
    assert [(r.requests, r.closed) for r in rows] == [(1, True), (1, True)]
    assert rows[0].ends_at == T0 + ledger.IN_FLIGHT
    assert rows[0].ends_at <= T0 + ledger.LEASE
    book.close()


def test_account_budget_limits_are_checked() -> None:
    with pytest.raises(UsageError):
        ledger.AccountBudget(ledger.Ledger("sqlite://"), "acct", limit=0)


# ------------------------------------------------------------------------------ several processes

TAKER = textwrap.dedent(
    """
    import sys
    from spotify_catalog import ledger
    from spotify_catalog.errors import BudgetSpent

    book = ledger.Ledger(sys.argv[1])
    for line in sys.stdin:  # a round: all the processes are given the same line at once
        account, limit, block = line.split()
        budget = ledger.AccountBudget(book, account, limit=int(limit), block=int(block))
        taken = 0
        try:
            while True:
                budget.take("/artists/x")
                taken += 1
        except BudgetSpent:
            pass
        budget.release()
        print(taken, flush=True)
    book.close()
    """
)


def test_processes_sharing_a_ledger_never_take_more_than_the_budget(ledger_url: str) -> None:
    book = ledger.Ledger(ledger_url)
    book.usage("acct", now=datetime.now(UTC), limit=None)  # the tables, before the processes race
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, ledger_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]

    def round_(account: str, limit: int, blocks: list[int]) -> list[int]:
        for proc, block in zip(procs, blocks, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(f"{account} {limit} {block}\n")
            proc.stdin.flush()
        return [int(proc.stdout.readline()) for proc in procs if proc.stdout is not None]

    # each takes until it is refused, and is refused only once the others hold the rest: all is taken
    taken = round_("acct", 150, [1, 1, 1, ledger.BLOCK, ledger.BLOCK])
    assert sum(taken) == 150, taken
    # the last requests of a budget, wanted by all at once (one request a reservation: the most contention)
    for round_number in range(8):
        account = f"tail-{round_number}"
        _spend(book, account, 98, datetime.now(UTC))
        taken = round_(account, 100, [1] * len(procs))
        assert sum(taken) == 2, (round_number, taken)
    book.close()
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        used = dict(
            conn.execute(
                sa.select(ledger.blocks.c.account, sa.func.sum(ledger.blocks.c.requests)).group_by(
                    ledger.blocks.c.account
                )
            ).all()
        )
    engine.dispose()
    assert used == {"acct": 150, **{f"tail-{n}": 100 for n in range(8)}}


HOLDER = textwrap.dedent(
    """
    import sys, time
    from spotify_catalog import ledger

    budget = ledger.AccountBudget(ledger.Ledger(sys.argv[1]), "acct", limit=100)
    for _ in range(3):
        budget.take("/artists/x")
    print("holding", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_process_s_block_counts_whole_until_reclaimed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding", proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    [dead] = _blocks(url)
    size = ledger.grant_size(ledger.BLOCK, 100)
    assert (dead.requests, dead.closed) == (size, False)  # 3 sent, all reserved counted
    lease_end = dead.ends_at
    now = datetime.now(UTC)
    # while its process may be alive, an open block stays open and counts whole
    book = ledger.Ledger(url, alive=lambda pid: True)
    assert book.usage("acct", now=now, limit=None).requests == size
    _spend(book, "acct", 1, now, limit=20)  # short of requests: dead processes are looked for
    book.close()
    assert [(r.requests, r.closed) for r in _blocks(url)] == [(size, False), (1, True)]
    # a process of the same host that finds it dead closes it at once, still whole
    book = ledger.Ledger(url)
    budget = ledger.AccountBudget(book, "acct", limit=20, clock=lambda: now)
    budget.take("/artists/y")
    budget.release()
    book.close()
    reclaimed = _blocks(url)[0]
    assert (reclaimed.requests, reclaimed.closed) == (size, True)
    assert now + ledger.IN_FLIGHT <= reclaimed.ends_at <= now + ledger.IN_FLIGHT + timedelta(seconds=1)
    assert reclaimed.ends_at < lease_end
