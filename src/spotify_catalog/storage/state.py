"""What the crawler keeps in the destination database: the task queue, runs, key/value state.

A task is ``(kind, key)`` with a state: ``pending`` (to do), ``done`` or ``failed`` (finished, at
``done_at``). A finished task is fresh until ``done_at`` falls before the refresh cutoff; then
:func:`ensure_tasks` makes it pending again.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from spotify_catalog.storage import schema
from spotify_catalog.storage.write import insert_missing, upsert

PENDING = "pending"
DONE = "done"
FAILED = "failed"

_CHUNK = 500


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ensure_tasks(
    conn: sa.Connection, kind: str, keys: Iterable[str], *, now: datetime, fresh_since: datetime
) -> int:
    """Make sure each key has a task that is pending or fresh: insert missing ones, reopen those
    finished before ``fresh_since``. Returns how many were inserted or reopened."""
    wanted = sorted(set(keys))
    t = schema.tasks
    changed = 0
    for chunk in _chunks(wanted):
        existing = dict(
            conn.execute(sa.select(t.c.key, t.c.done_at).where(t.c.kind == kind, t.c.key.in_(chunk))).all()
        )
        missing = [k for k in chunk if k not in existing]
        if missing:  # another crawl may insert the same tasks at the same time: theirs stand
            insert_missing(
                conn,
                t,
                [
                    {
                        "kind": kind,
                        "key": k,
                        "state": PENDING,
                        "attempts": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for k in missing
                ],
            )
        stale = [k for k, done_at in existing.items() if done_at is not None and done_at < fresh_since]
        if stale:
            conn.execute(
                t.update()
                .where(t.c.kind == kind, t.c.key.in_(stale))
                .values(state=PENDING, attempts=0, error=None, done_at=None, updated_at=now)
            )
        changed += len(missing) + len(stale)
    return changed


def analyze(conn: sa.Connection) -> None:
    """Refresh PostgreSQL's statistics of ``_tasks`` after many tasks were queued at once. Without them
    the planner, still counting a few rows, reads every task of a kind through the ``(kind, state)``
    index to mark 50 of them done (40 ms a statement at 40,000 tasks) instead of using the primary key;
    autovacuum comes too late for a crawl. Other databases need nothing here."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(schema.tasks)}"))


def count_pending(conn: sa.Connection, kinds: Sequence[str]) -> int:
    """How many tasks of ``kinds`` are pending (for progress: the keys themselves are claimed)."""
    t = schema.tasks
    query = sa.select(sa.func.count()).select_from(t).where(t.c.kind.in_(kinds), t.c.state == PENDING)
    return int(conn.execute(query).scalar_one())


def finish_tasks(
    conn: sa.Connection,
    kind: str,
    keys: Iterable[str],
    *,
    now: datetime,
    run_id: int | None,
    state: str = DONE,
    error: str | None = None,
) -> None:
    """Mark tasks done (or failed), creating them if they were not queued (e.g. an artist a search
    already delivered)."""
    keys = sorted(set(keys))
    if not keys:
        return
    t = schema.tasks
    values = {
        "state": state,
        "error": error,
        "run_id": run_id,
        "updated_at": now,
        "done_at": now,
        "lease_until": None,
        "leased_by": None,
    }
    update = _finish_statement()
    for chunk in _chunks(keys):
        updated = conn.execute(update, {"kind_": kind, "keys_": list(chunk), **values})
        if updated.rowcount == len(chunk):  # matched rows (MySQL too: SQLAlchemy sets FOUND_ROWS)
            continue
        present = set(conn.execute(sa.select(t.c.key).where(t.c.kind == kind, t.c.key.in_(chunk))).scalars())
        missing = [k for k in chunk if k not in present]
        if missing:  # inserted, or updated if another crawl inserted it meanwhile
            new = [{"kind": kind, "key": k, "attempts": 0, "created_at": now, **values} for k in missing]
            upsert(conn, t, new)


@functools.cache
def _finish_statement() -> sa.Update:
    """The update of :func:`finish_tasks`, built once (its 50 keys are one expanding parameter, not 50
    literals coerced on every call)."""
    t = schema.tasks
    keys: sa.BindParameter[str] = sa.bindparam("keys_", expanding=True)
    return t.update().where(t.c.kind == sa.bindparam("kind_"), t.c.key.in_(keys))


def retry_later(conn: sa.Connection, kind: str, keys: Iterable[str], *, error: str, now: datetime) -> None:
    """Count a failed attempt of pending tasks (they stay pending; see :func:`reset_attempts`)."""
    t = schema.tasks
    for chunk in _chunks(sorted(set(keys))):
        conn.execute(
            t.update()
            .where(t.c.kind == kind, t.c.key.in_(chunk))
            .values(attempts=t.c.attempts + 1, error=error, updated_at=now, lease_until=None, leased_by=None)
        )


LEASE = timedelta(minutes=10)
"""How long a claimed task is a crawl's own; a crawl that dies loses its claims after this at the latest,
at once when another run finds it dead (:func:`abandon_dead_runs`: at its start, and while it waits for
claims of others)."""


def claim(
    conn: sa.Connection,
    kind: str,
    limit: int,
    *,
    run_id: int,
    now: datetime,
    max_attempts: int | None = None,
    lease: timedelta = LEASE,
) -> list[str]:
    """Claim up to ``limit`` pending tasks of a kind that no other crawl holds (call in a transaction of
    its own): several crawl processes on one PostgreSQL or MariaDB database share the queue, each task
    fetched by one of them. Rows are locked with ``FOR UPDATE SKIP LOCKED``, so concurrent claims skip
    each other's rows instead of waiting; keys come in key order."""
    t = schema.tasks
    query = (
        sa.select(t.c.key)
        .where(
            t.c.kind == kind,
            t.c.state == PENDING,
            sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now),
        )
        .order_by(t.c.key)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if max_attempts is not None:
        query = query.where(t.c.attempts < max_attempts)
    keys = list(conn.execute(query).scalars())
    if keys:
        conn.execute(
            t.update()
            .where(t.c.kind == kind, t.c.key.in_(keys))
            .values(lease_until=now + lease, leased_by=str(run_id))
        )
    return keys


def held_by_others(
    conn: sa.Connection, kinds: Sequence[str], *, run_id: int, now: datetime, max_attempts: int | None = None
) -> int:
    """Pending tasks of ``kinds`` that other crawls hold now (they will finish them or lose the lease)."""
    t = schema.tasks
    query = (
        sa.select(sa.func.count())
        .select_from(t)
        .where(
            t.c.kind.in_(kinds),
            t.c.state == PENDING,
            t.c.lease_until >= now,
            t.c.leased_by != str(run_id),
        )
    )
    if max_attempts is not None:
        query = query.where(t.c.attempts < max_attempts)
    return int(conn.execute(query).scalar_one())


def release(conn: sa.Connection, run_ids: Sequence[int]) -> None:
    """Give up the claims of runs (ended, or found dead)."""
    if run_ids:
        t = schema.tasks
        conn.execute(
            t.update()
            .where(t.c.leased_by.in_([str(r) for r in run_ids]))
            .values(lease_until=None, leased_by=None)
        )


def unclaim(conn: sa.Connection, kind: str, keys: Iterable[str]) -> None:
    """Give up this run's claims of ``keys`` untried (no attempt counted): others may take them."""
    t = schema.tasks
    for chunk in _chunks(sorted(set(keys))):
        conn.execute(
            t.update().where(t.c.kind == kind, t.c.key.in_(chunk)).values(lease_until=None, leased_by=None)
        )


def reset_attempts(conn: sa.Connection) -> None:
    """A new run gives pending tasks that failed in an earlier run their attempts back."""
    t = schema.tasks
    conn.execute(t.update().where(t.c.state == PENDING, t.c.attempts > 0).values(attempts=0))


def task_states(conn: sa.Connection, kind: str, keys: Iterable[str]) -> dict[str, str]:
    """The state of each key's task (keys without a task are left out)."""
    t = schema.tasks
    result: dict[str, str] = {}
    for chunk in _chunks(sorted(set(keys))):
        result.update(
            conn.execute(sa.select(t.c.key, t.c.state).where(t.c.kind == kind, t.c.key.in_(chunk))).all()
        )
    return result


def get_state(conn: sa.Connection, key: str) -> str | None:
    """A value of ``_state``."""
    return conn.execute(sa.select(schema.state.c.value).where(schema.state.c.key == key)).scalar()


def set_state(conn: sa.Connection, key: str, value: str) -> None:
    """Set a value of ``_state``."""
    upsert(conn, schema.state, [{"key": key, "value": value}])


@dataclass
class RunEnd:
    """How a run ended, for :func:`finish_run`."""

    status: str  # done | incomplete | stopped | interrupted | failed (abandoned: set by another run)
    requests: int
    rows_written: int
    reason: str | None = None
    retry_at: datetime | None = None
    api_mode: str | None = None


def reopen_failed(conn: sa.Connection, *, keep_error: str) -> int:
    """Make failed tasks pending again, except those whose error is ``keep_error`` (e.g. ``not
    found``): for when the API mode changed, so that what a wrong mode refused is asked again."""
    t = schema.tasks
    result = conn.execute(
        t.update()
        .where(t.c.state == FAILED, sa.or_(t.c.error.is_(None), t.c.error != keep_error))
        .values(state=PENDING, attempts=0, done_at=None)
    )
    return int(result.rowcount)


# ------------------------------------------------------------------------------------------ runs

BUDGET_REASON = "daily budget"
"""How the reason of a run stopped by ``--daily-budget`` begins (its ``retry_at`` is the ledger's, not
Spotify's: see :mod:`spotify_catalog.ledger`)."""


def _last_activity() -> sa.ColumnElement[datetime]:
    r = schema.runs
    return sa.func.coalesce(r.c.updated_at, r.c.ended_at, r.c.started_at)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def retry_at(conn: sa.Connection, now: datetime) -> datetime | None:
    """The ``retry_at`` Spotify gave the last run, if it is still to come (a quota or a long wait)."""
    r = schema.runs
    last = conn.execute(
        sa.select(r.c.status, r.c.reason, r.c.retry_at)
        .where(r.c.status != "running")
        .order_by(r.c.id.desc())
        .limit(1)
    ).first()
    if last is None or last.retry_at is None or last.status != "stopped":
        return None
    if (last.reason or "").startswith(BUDGET_REASON):
        return None
    return last.retry_at if last.retry_at > now else None


def this_process() -> tuple[str, int]:
    """``(host, pid)`` recorded with a run."""
    return socket.gethostname(), os.getpid()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STALE_AFTER = timedelta(hours=1)
"""A run on another host that nothing was heard of for this long is taken for dead."""
ABANDONED = "abandoned"
ABANDONED_REASON = "the process ended without recording its end"


def dead_runs(
    conn: sa.Connection,
    *,
    now: datetime,
    stale_after: timedelta = STALE_AFTER,
    alive: Callable[[int], bool] = _process_alive,
) -> list[int]:
    """The runs still ``running`` whose process is gone: on this host, its pid is not alive; elsewhere,
    nothing was heard of it for ``stale_after``. Reads only."""
    r = schema.runs
    host, _pid = this_process()
    rows = conn.execute(
        sa.select(r.c.id, r.c.host, r.c.pid, _last_activity().label("active")).where(r.c.status == "running")
    ).all()
    return [
        row.id
        for row in rows
        if (row.host == host and row.pid is not None and not alive(row.pid))
        or (_aware(row.active) < now - stale_after)
    ]


def abandon_dead_runs(conn: sa.Connection, *, now: datetime) -> list[int]:
    """Mark ``abandoned`` the :func:`dead_runs` and give up their claims. Returns their ids."""
    dead = dead_runs(conn, now=now)
    if dead:
        r = schema.runs
        conn.execute(
            r.update().where(r.c.id.in_(dead)).values(status=ABANDONED, ended_at=now, reason=ABANDONED_REASON)
        )
        release(conn, dead)
    return dead


def shown_status(dead: Sequence[int]) -> tuple[sa.ColumnElement[str], sa.ColumnElement[str | None]]:
    """``_runs.status`` and ``reason`` as a command that only reads shows them: the ``dead`` runs
    (:func:`dead_runs`) ``abandoned``, as the next crawl marks them."""
    r = schema.runs
    if not dead:
        return r.c.status, r.c.reason
    is_dead = r.c.id.in_(dead)
    return (
        sa.case((is_dead, ABANDONED), else_=r.c.status),
        sa.case((is_dead, ABANDONED_REASON), else_=r.c.reason),
    )


def running(conn: sa.Connection) -> Sequence[sa.Row[Any, Any, Any, Any]]:
    """The runs recorded as running (call :func:`abandon_dead_runs` first to leave out dead ones)."""
    r = schema.runs
    query = sa.select(r.c.id, r.c.host, r.c.pid, r.c.started_at).where(r.c.status == "running")
    return conn.execute(query.order_by(r.c.id)).all()


def lock_runs(conn: sa.Connection) -> None:
    """Take SQLite's write lock at the start of a transaction (a no-op write), so that what it reads
    next cannot change before it commits: one crawl at a time starts on a SQLite file. Other
    databases lock rows instead, and need nothing here."""
    if conn.dialect.name == "sqlite":
        r = schema.runs
        conn.execute(r.update().where(r.c.id == -1).values(status=r.c.status))


def touch_run(conn: sa.Connection, run_id: int, *, requests: int, rows_written: int, now: datetime) -> None:
    """Keep a running run's counts current (in the transaction of each write)."""
    conn.execute(
        schema.runs.update()
        .where(schema.runs.c.id == run_id)
        .values(requests=requests, rows_written=rows_written, updated_at=now)
    )


def start_run(engine: sa.Engine, *, command: str, now: datetime) -> int:
    """Record a new run (status ``running``); returns its id."""
    host, pid = this_process()
    with engine.begin() as conn:
        result = conn.execute(
            schema.runs.insert().values(
                started_at=now,
                updated_at=now,
                status="running",
                requests=0,
                rows_written=0,
                command=command,
                host=host,
                pid=pid,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def finish_run(engine: sa.Engine, run_id: int, end: RunEnd, *, now: datetime) -> None:
    """Record how a run ended, and give up its claims."""
    with engine.begin() as conn:
        release(conn, [run_id])
        conn.execute(
            schema.runs.update()
            .where(schema.runs.c.id == run_id)
            .values(
                ended_at=now,
                updated_at=now,
                status=end.status,
                reason=end.reason,
                retry_at=end.retry_at,
                api_mode=end.api_mode,
                requests=end.requests,
                rows_written=end.rows_written,
            )
        )
