"""The rate limit's gate (:mod:`spotify_catalog.pacing`): one 429 closes it for every thread until its
``Retry-After``, the pace it teaches holds the next windows under the limit, and the processes of a
client id share both through the ledger's database (:mod:`spotify_catalog.pace_store`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from spotify_catalog import pace_store
from spotify_catalog.errors import WaitTooLongError
from spotify_catalog.pacing import MARGIN, WINDOW, Gate, lowered
from spotify_catalog.storage.engine import create_engine
from threaded_time import T0, SharedTime


def _gate(time: SharedTime, **extra: object) -> Gate:
    return Gate(clock=time.clock, sleep=time.sleep, wall_clock=time.wall, max_wait=60, **extra)  # type: ignore[arg-type]


def _in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    return results


def test_one_429_holds_every_thread_until_its_retry_after() -> None:
    time = SharedTime()
    gate = _gate(time)
    gate.refused(gate.enter(), 20)  # a window filled by another program: nothing of ours in it
    entered = _in_threads(8, lambda _: gate.enter())
    assert entered == [1020.0] * 8  # no thread went before the one Retry-After
    assert gate.events == 1
    assert gate.pace is None  # nothing learnt from a window of others
    waits = len(time.sleeps)
    assert _in_threads(8, lambda _: gate.enter()) == [1020.0] * 8  # open again: nobody waits
    assert len(time.sleeps) == waits


def test_the_429s_of_requests_in_flight_are_one_event_and_the_pace_is_what_was_admitted() -> None:
    time = SharedTime()
    gate = _gate(time)
    sent = [gate.enter() for _ in range(10)]
    for at, wait in zip(sent[6:], (12, 14, 13, 11), strict=True):  # four were in flight when it filled
        gate.refused(at, wait)
    assert gate.events == 1
    assert gate.pace == 6
    assert gate.closed_until == 1012.0  # the first Retry-After: the others were in flight when it came
    assert gate.enter() == 1000.0 + WINDOW + MARGIN  # and the six admitted hold the window


def test_the_pace_holds_the_next_window_under_the_limit() -> None:
    time = SharedTime()
    gate = _gate(time)
    sent = [gate.enter() for _ in range(5)]
    time.sleep(2)
    refused = gate.enter()
    gate.refused(refused, 28)  # the window admitted 5
    assert gate.pace == 5
    after = [gate.enter() for _ in range(6)]
    # the gate opened at 1030, but a slot frees only when a request of the window has left it
    assert after[:5] == [sent[0] + WINDOW + MARGIN] * 5
    assert after[5] == after[0] + WINDOW + MARGIN
    assert gate.events == 1


def test_a_wait_over_max_wait_is_refused_without_sending() -> None:
    time = SharedTime()
    gate = _gate(time)
    gate.closed_for(7200)
    with pytest.raises(WaitTooLongError, match="7200 s, over the maximum wait of 60 s") as info:
        gate.enter()
    assert info.value.retry_at == T0 + timedelta(seconds=7200)
    assert time.sleeps == []


def test_a_request_that_never_left_frees_its_slot() -> None:
    time = SharedTime()
    gate = _gate(time, pace=2)
    first = gate.enter()
    second = gate.enter()
    gate.unsent(second)
    assert gate.enter() == first  # no wait: one slot was free again
    assert time.sleeps == []


@pytest.mark.parametrize(
    ("before", "admitted", "after"),
    [(None, 150, 150), (None, 0, None), (150, 149, 149), (150, 150, 149), (150, 10, 75), (150, 0, 150)],
)
def test_lowered(before: int | None, admitted: int, after: int | None) -> None:
    assert lowered(before, admitted) == after


# ------------------------------------------------------------------ shared by processes, in a database


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mysql_url"))


def _store(url: str, process: str, time: SharedTime) -> pace_store.PaceStore:
    return pace_store.PaceStore(url, "client-a", process=process, wall_clock=time.wall)


def _two_processes(
    url: str,
) -> tuple[SharedTime, tuple[pace_store.PaceStore, Gate], tuple[pace_store.PaceStore, Gate]]:
    """A fake time, and two processes of one client id: each its store and its gate."""
    time = SharedTime()
    a_store, b_store = _store(url, "a", time), _store(url, "b", time)
    return time, (a_store, _gate(time, shared=a_store)), (b_store, _gate(time, shared=b_store))


def _learnt(url: str, client_id: str) -> int | None:
    store = pace_store.PaceStore(url, client_id)
    try:
        return store.pace()
    finally:
        store.close()


def test_processes_share_the_pace_its_shares_and_the_gate(store_url: str) -> None:
    time, (a_store, a), (b_store, b) = _two_processes(store_url)
    try:
        a_store.record(4, None)  # learnt by an earlier run
        assert a.enter() == 1000.0
        assert b.enter() == 1001.0  # a is there: b reads what a sends before it sends
        assert (a.pace, b.pace) == (4, 4)
        time.sleep(1.5)
        assert a.enter() == 1002.5
        # two processes alive: a's share is two requests a window
        assert a.enter() == 1000.0 + WINDOW + MARGIN
        time.sleep(1.5)
        refused = a.enter()
        a.refused(refused, 20)
        assert a.pace == 2  # what a's window admitted
        # b reads the closed gate when its next read is due (a second at most), and waits with a
        time.sleep(1.5)
        assert b.enter() >= refused + 20
        assert b.closed_until == refused + 20
        assert b.pace == 2
    finally:
        a_store.close()
        b_store.close()
    # the pace is the next run's
    assert _learnt(store_url, "client-a") == 2
    assert _learnt(store_url, "client-b") is None
    engine = create_engine(store_url)
    with engine.connect() as conn:  # the processes have left: they take no share
        left = sa.select(pace_store.processes.c.left_at.is_not(None))
        assert conn.execute(left).scalars().all() == [True, True]
    engine.dispose()


def test_a_store_that_fails_leaves_each_process_its_own_gate(caplog: pytest.LogCaptureFixture) -> None:
    time = SharedTime()
    store = pace_store.PaceStore(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", "client-a", wall_clock=time.wall
    )
    gate = _gate(time, shared=store)
    sent = gate.enter()
    gate.refused(sent, 5)
    assert gate.enter() == 1005.0
    warnings = [r.getMessage() for r in caplog.records if "pace store" in r.getMessage()]
    assert len(warnings) == 1  # said once, not at every poll
    assert "this process paces itself alone meanwhile" in warnings[0]
    store.close()


def test_what_a_process_that_left_sent_counts_until_it_has_left_the_window(store_url: str) -> None:
    _, (a_store, a), (b_store, b) = _two_processes(store_url)
    try:
        a_store.record(4, None)
        for _ in range(3):
            a.enter()
        a.report()
        a_store.close()
        assert b.enter() == 1000.0  # a has left: b alone takes the pace, less what a sent
        assert b.enter() > 1000.0 + WINDOW  # a's three count until they have left the window
    finally:
        b_store.close()


def test_a_process_takes_the_pace_the_others_leave_unused(store_url: str) -> None:
    time, (a_store, a), (b_store, b) = _two_processes(store_url)

    def b_reports_nothing_for(seconds: int) -> None:
        for _ in range(seconds):
            time.sleep(1)
            b.report()

    try:
        a_store.record(40, None)
        b.report()  # b is there, and sends nothing
        assert a.enter() == 1001.0  # a read what b sends first
        b_reports_nothing_for(20)
        assert [a.enter() for _ in range(19)] == [1021.0] * 19  # an equal share: 20
        b_reports_nothing_for(12)  # a whole window: a's first has left it, its 19 are in it
        # more than an equal share: all the pace but what b may send before it has read a's
        assert [a.enter() for _ in range(11)] == [1033.0] * 11
        assert a.enter() > 1033.0
    finally:
        a_store.close()
        b_store.close()


def test_processes_started_together_keep_to_the_pace_together(store_url: str) -> None:
    """Two crawls started at once, each sending as fast as its gate lets it: what they reported when
    they last read is up to two reads old, so neither takes more than its share while the other sends."""
    _, (a_store, a), (b_store, b) = _two_processes(store_url)
    try:
        a_store.record(40, None)
        sent = sorted(t for _ in range(40) for t in (a.enter(), b.enter()))
    finally:
        a_store.close()
        b_store.close()
    busiest = max(sum(1 for t in sent if start <= t < start + WINDOW + MARGIN) for start in sent)
    assert busiest <= 40
