"""The task queue, runs and key/value state on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from spotify_catalog.storage import schema, state
from spotify_catalog.storage.migrate import open_database

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def _tasks(engine: sa.Engine) -> dict[tuple[str, str], tuple[str, int]]:
    with engine.connect() as conn:
        t = schema.tasks
        return {(r.kind, r.key): (r.state, r.attempts) for r in conn.execute(sa.select(t))}


def test_tasks_are_queued_once_and_reopened_when_stale(engine: sa.Engine) -> None:
    week_ago = T0 - timedelta(days=7)
    with engine.begin() as conn:
        assert state.ensure_tasks(conn, "album", ["b", "a", "a"], now=T0, fresh_since=week_ago) == 2
        assert state.ensure_tasks(conn, "album", ["a", "b"], now=T0, fresh_since=week_ago) == 0
        assert state.count_pending(conn, ["album"]) == 2
        state.finish_tasks(conn, "album", ["a"], now=T0, run_id=1)
        state.finish_tasks(conn, "album", ["b"], now=T0, run_id=1, state=state.FAILED, error="not found")
        # an artist a search delivered: finished without having been queued
        state.finish_tasks(conn, "artist", ["x"], now=T0, run_id=1)
        assert state.count_pending(conn, ["album", "artist"]) == 0
        assert state.task_states(conn, "album", ["a", "b", "c"]) == {"a": "done", "b": "failed"}
    with engine.begin() as conn:  # six days later: fresh
        later = T0 + timedelta(days=6)
        assert (
            state.ensure_tasks(conn, "album", ["a", "b"], now=later, fresh_since=later - timedelta(days=7))
            == 0
        )
    with engine.begin() as conn:  # eight days later: both reopened
        later = T0 + timedelta(days=8)
        assert (
            state.ensure_tasks(conn, "album", ["a", "b"], now=later, fresh_since=later - timedelta(days=7))
            == 2
        )
    assert _tasks(engine) == {
        ("album", "a"): ("pending", 0),
        ("album", "b"): ("pending", 0),
        ("artist", "x"): ("done", 0),
    }


def test_failed_attempts_are_counted_and_given_back_next_run(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        state.ensure_tasks(conn, "track", ["t1", "t2"], now=T0, fresh_since=T0)
        for _ in range(3):
            state.retry_later(conn, "track", ["t1"], error="503", now=T0)
        claimed = state.claim(conn, "track", 10, run_id=1, now=T0, max_attempts=3)
        assert claimed == ["t2"]  # t1 failed 3 times in this run
        state.reset_attempts(conn)
        assert state.claim(conn, "track", 10, run_id=2, now=T0, max_attempts=3) == ["t1"]  # t2 is run 1's
        lapsed = T0 + state.LEASE + timedelta(seconds=1)
        assert state.claim(conn, "track", 10, run_id=2, now=lapsed, max_attempts=3) == ["t1", "t2"]


def test_many_keys_are_chunked(engine: sa.Engine) -> None:
    keys = [f"k{i:05d}" for i in range(1234)]
    with engine.begin() as conn:
        assert state.ensure_tasks(conn, "track", keys, now=T0, fresh_since=T0) == 1234
        state.finish_tasks(conn, "track", keys[:1000], now=T0, run_id=None)
        assert state.count_pending(conn, ["track"]) == 234
        assert state.claim(conn, "track", 2000, run_id=1, now=T0) == keys[1000:]


def test_runs_and_state(engine: sa.Engine) -> None:
    first = state.start_run(engine, command="spotify-catalog crawl --artist BTS", now=T0)
    second = state.start_run(engine, command="again", now=T0)
    assert second == first + 1
    retry = T0 + timedelta(hours=13)
    end = state.RunEnd(
        "stopped", requests=5, rows_written=40, reason="quota", retry_at=retry, api_mode="development"
    )
    state.finish_run(engine, first, end, now=T0 + timedelta(minutes=1))
    with engine.begin() as conn:
        row = conn.execute(sa.select(schema.runs).where(schema.runs.c.id == first)).mappings().one()
        assert (row["status"], row["requests"], row["rows_written"], row["retry_at"]) == (
            "stopped",
            5,
            40,
            retry,
        )
        assert state.get_state(conn, "api_mode") is None
        state.set_state(conn, "api_mode", "development")
        state.set_state(conn, "api_mode", "extended")
        assert state.get_state(conn, "api_mode") == "extended"


def test_analyze_gives_the_planner_the_tasks_queued(postgres_url: str) -> None:
    """Queued in one go, thousands of tasks leave PostgreSQL's planner counting next to none (until
    autovacuum passes): it then reads every task of a kind through ``(kind, state)`` to mark 50 done.
    ``analyze``, run by a crawl phase that queues many, makes it count them."""
    engine = open_database(postgres_url)
    count = sa.text("SELECT reltuples FROM pg_class WHERE relname = '_tasks'")
    try:
        with engine.begin() as conn:  # autovacuum would analyze the table too, at a time of its own
            conn.execute(sa.text("ALTER TABLE _tasks SET (autovacuum_enabled = false)"))
            state.ensure_tasks(conn, "track", [f"t{i:06d}" for i in range(5000)], now=T0, fresh_since=T0)
        with engine.begin() as conn:
            assert conn.execute(count).scalar_one() < 100
            state.analyze(conn)
        with engine.begin() as conn:
            assert conn.execute(count).scalar_one() == 5000
    finally:
        engine.dispose()
