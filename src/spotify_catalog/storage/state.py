"""What the crawler keeps in the destination database: the task queue, runs, key/value state.

A task is ``(kind, key)`` with a state: ``pending`` (to do), ``done`` or ``failed`` (finished, at
``done_at``). A finished task is fresh until ``done_at`` falls before the refresh cutoff; then
:func:`ensure_tasks` makes it pending again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from spotify_catalog.storage import db, schema

PENDING = "pending"
DONE = "done"
FAILED = "failed"

_CHUNK = 500
WINDOW = timedelta(hours=24)
"""The rolling window of a daily request budget."""


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
        if missing:
            conn.execute(
                t.insert(),
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


def pending_keys(conn: sa.Connection, kind: str, *, max_attempts: int | None = None) -> list[str]:
    """Keys of the pending tasks of a kind, sorted."""
    t = schema.tasks
    query = sa.select(t.c.key).where(t.c.kind == kind, t.c.state == PENDING)
    if max_attempts is not None:
        query = query.where(t.c.attempts < max_attempts)
    return list(conn.execute(query.order_by(t.c.key)).scalars())


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
    values = {"state": state, "error": error, "run_id": run_id, "updated_at": now, "done_at": now}
    for chunk in _chunks(keys):
        updated = conn.execute(t.update().where(t.c.kind == kind, t.c.key.in_(chunk)).values(**values))
        if updated.rowcount == len(chunk):  # matched rows (MySQL too: SQLAlchemy sets FOUND_ROWS)
            continue
        present = set(conn.execute(sa.select(t.c.key).where(t.c.kind == kind, t.c.key.in_(chunk))).scalars())
        missing = [k for k in chunk if k not in present]
        if missing:
            conn.execute(
                t.insert(),
                [{"kind": kind, "key": k, "attempts": 0, "created_at": now, **values} for k in missing],
            )


def retry_later(conn: sa.Connection, kind: str, keys: Iterable[str], *, error: str, now: datetime) -> None:
    """Count a failed attempt of pending tasks (they stay pending; see :func:`reset_attempts`)."""
    t = schema.tasks
    for chunk in _chunks(sorted(set(keys))):
        conn.execute(
            t.update()
            .where(t.c.kind == kind, t.c.key.in_(chunk))
            .values(attempts=t.c.attempts + 1, error=error, updated_at=now)
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
    db.upsert(conn, schema.state, [{"key": key, "value": value}])


@dataclass
class RunEnd:
    """How a run ended, for :func:`finish_run`."""

    status: str  # done | done_with_errors | stopped | interrupted | failed
    requests: int
    rows_written: int
    reason: str | None = None
    retry_at: datetime | None = None
    api_mode: str | None = None


def start_run(engine: sa.Engine, *, command: str, now: datetime) -> int:
    """Record a new run (status ``running``); returns its id."""
    with engine.begin() as conn:
        result = conn.execute(
            schema.runs.insert().values(
                started_at=now, status="running", requests=0, rows_written=0, command=command
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def finish_run(engine: sa.Engine, run_id: int, end: RunEnd, *, now: datetime) -> None:
    """Record how a run ended."""
    with engine.begin() as conn:
        conn.execute(
            schema.runs.update()
            .where(schema.runs.c.id == run_id)
            .values(
                ended_at=now,
                status=end.status,
                reason=end.reason,
                retry_at=end.retry_at,
                api_mode=end.api_mode,
                requests=end.requests,
                rows_written=end.rows_written,
            )
        )


def _last_activity() -> sa.ColumnElement[datetime]:
    r = schema.runs
    return sa.func.coalesce(r.c.updated_at, r.c.ended_at, r.c.started_at)


def requests_since(conn: sa.Connection, since: datetime) -> int:
    """Requests of the runs active since ``since`` (a run counts whole, at its last activity:
    ``updated_at``, else ``ended_at``, else ``started_at``)."""
    r = schema.runs
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(r.c.requests), 0)).where(_last_activity() >= since)
    ).scalar_one()
    return int(total)


def budget_frees_at(conn: sa.Connection, now: datetime, budget: int) -> datetime | None:
    """When the requests of the rolling 24 h (see :func:`requests_since`) fall below ``budget``
    again, as the runs leave the window one by one; ``None`` when they are below it already."""
    r = schema.runs
    at = _last_activity().label("at")
    rows = conn.execute(sa.select(at, r.c.requests).where(at >= now - WINDOW).order_by(at, r.c.id)).all()
    used = sum(int(requests or 0) for _, requests in rows)
    for when, requests in rows:
        if used < budget:
            break
        used -= int(requests or 0)
        if used < budget:
            return _aware(when) + WINDOW
    return None


def _aware(value: datetime) -> datetime:
    """A stored time is UTC (the COALESCE keeps the column type; this is a safety net)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
