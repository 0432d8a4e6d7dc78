"""What a crawl database says about its crawl: tasks, runs, the requests left to finish (counted by
:mod:`spotify_catalog.plan`), and what its account's ledger says of the requests of the last 24 h. Read
only: no client, no request, no write.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from spotify_catalog import ledger
from spotify_catalog.crawl import ACCOUNT_STATE_KEY
from spotify_catalog.errors import StorageError
from spotify_catalog.plan import KINDS, Estimate, Plan, estimate, plan_from_database
from spotify_catalog.redaction import redact_url
from spotify_catalog.settings import Settings
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.engine import describe_error
from spotify_catalog.storage.read_only import has_crawl, open_read_only, reading

RECENT_RUNS = 10
ASSUMED_BUDGET = 1000
"""Requests a day assumed for the days figure when no daily budget is set."""

# ------------------------------------------------------------------------------------ the status


@dataclass
class RunInfo:
    """One row of ``_runs``."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    status: str
    reason: str | None
    retry_at: datetime | None
    requests: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "status": self.status,
            "reason": self.reason,
            "retry_at": _iso(self.retry_at),
            "requests": self.requests,
        }


@dataclass
class Status:
    """What ``spotify-catalog status`` reports."""

    tasks: dict[str, dict[str, int]]
    runs: list[RunInfo]
    unresolved: list[str]
    estimate: Estimate
    daily_budget: int | None
    now: datetime
    usage: ledger.Usage | None = None
    """The account's requests in its ledger (``None``: not asked for)."""

    @property
    def requests_last_24h(self) -> int:
        """The account's requests in the rolling 24 h of its ledger."""
        return self.usage.requests if self.usage is not None else 0

    @property
    def budget_frees_at(self) -> datetime | None:
        """When the account's requests fall under the daily budget again (``None``: they are under it)."""
        return self.usage.frees_at if self.usage is not None else None

    @property
    def empty(self) -> bool:
        return not self.tasks and not self.runs

    @property
    def last_run(self) -> RunInfo | None:
        return self.runs[0] if self.runs else None

    @property
    def budget(self) -> int:
        """The daily budget, or :data:`ASSUMED_BUDGET` when none is set."""
        return self.daily_budget or ASSUMED_BUDGET

    @property
    def days_left(self) -> int:
        return math.ceil(self.estimate.total / self.budget)

    def to_json(self) -> dict[str, Any]:
        last = self.last_run
        plan, extended = self.estimate.plan, self.estimate.extended
        return {
            "tasks": self.tasks,
            "requests_last_24h": self.requests_last_24h,
            "account": self.usage.account if self.usage is not None else None,
            "ledger": self.usage.ledger if self.usage is not None else None,
            "last_run": None
            if last is None
            else {
                k: v
                for k, v in last.to_json().items()
                if k in ("id", "status", "reason", "retry_at", "requests")
            },
            "unresolved": self.unresolved,
            "requests_left": self.estimate.total,
            "requests_left_exact": self.estimate.exact,
            "requests_left_by_kind": {k: round(v) for k, v in self.estimate.requests.items() if v},
            "days_left": self.days_left,
            "daily_budget": self.daily_budget,
            "daily_budget_assumed": self.daily_budget is None,
            "budget_frees_at": _iso(self.budget_frees_at),
            "api_mode": str(self.estimate.mode) if self.estimate.mode_known else None,
            "requests_left_if_extended": None if extended is None else extended.total,
            "depth": plan.depth.label,
            "counted_for": plan.source,
            "include_groups": list(plan.include_groups),
            "notes": self.estimate.notes,
            "runs": [run.to_json() for run in self.runs],
            "now": _iso(self.now),
        }


def read_status(
    conn: sa.Connection, *, now: datetime, daily_budget: int | None = None, settings: Settings | None = None
) -> Status:
    """The status of the crawl database behind ``conn`` (read only); with ``settings``, the requests of
    its account in the last 24 h, from the account's ledger (:func:`ledger_usage`)."""
    if not has_crawl(conn):
        use = None if settings is None else ledger_usage(settings, now=now, limit=daily_budget)
        return Status({}, [], [], Estimate({}, True, Plan()), daily_budget, now, use)
    t = schema.tasks
    tasks: dict[str, dict[str, int]] = {}
    counts = conn.execute(sa.select(t.c.kind, t.c.state, sa.func.count()).group_by(t.c.kind, t.c.state))
    for kind, st, count in counts:
        tasks.setdefault(kind, {state.PENDING: 0, state.DONE: 0, state.FAILED: 0})[st] = int(count)
    order = {kind: position for position, kind in enumerate(KINDS)}
    tasks = dict(sorted(tasks.items(), key=lambda item: (order.get(item[0], len(KINDS)), item[0])))
    runs = recent_runs(conn, state.dead_runs(conn, now=now), limit=RECENT_RUNS)
    a = schema.artist_resolutions
    unresolved = list(
        conn.execute(sa.select(a.c.input).where(a.c.artist_id.is_(None)).order_by(a.c.input)).scalars()
    )
    use = None
    if settings is not None:
        recorded = state.get_state(conn, ACCOUNT_STATE_KEY)
        use = ledger_usage(settings, now=now, limit=daily_budget, recorded=recorded)
    return Status(
        tasks=tasks,
        runs=runs,
        unresolved=unresolved,
        estimate=estimate(conn, plan_from_database(conn)),
        daily_budget=daily_budget,
        now=now,
        usage=use,
    )


def ledger_usage(
    settings: Settings, *, now: datetime, limit: int | None, recorded: str | None = None
) -> ledger.Usage:
    """The requests of the account in the rolling 24 h of its ledger, read only: the account
    ``settings`` name (``--account``, else the client id), else ``recorded`` (the one the crawl
    database's last crawl counted in); a ledger not created yet has recorded nothing."""
    account = settings.account_name() or recorded
    url = ledger.ledger_url(settings)
    where = redact_url(url)
    if account is None:
        return ledger.Usage(None, where, False, limit=limit)
    engine = open_read_only(url)
    if engine is None:
        return ledger.Usage(account, where, False, limit=limit)
    try:
        with engine.connect() as conn:
            return ledger.usage(conn, account, where, now=now, limit=limit)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"ledger {where}: {describe_error(exc)}") from None
    finally:
        engine.dispose()


def recent_runs(conn: sa.Connection, dead: Sequence[int], *, limit: int) -> list[RunInfo]:
    """The last ``limit`` runs, newest first; the ``dead`` ones (:func:`state.dead_runs`: still
    ``running``, their process gone) show ``abandoned``, as the next crawl marks them (this only
    reads)."""
    r = schema.runs
    status, reason = state.shown_status(dead)
    query = sa.select(
        r.c.id, r.c.started_at, r.c.ended_at, status, reason, r.c.retry_at, r.c.requests
    ).order_by(r.c.id.desc())
    return [
        RunInfo(int(row[0]), row[1], row[2], row[3], row[4], row[5], int(row[6]))
        for row in conn.execute(query.limit(limit))
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ------------------------------------------------------------------------------------- opening


def estimate_for(url: str, plan: Plan, db_schema: str | None = None) -> Estimate:
    """:func:`estimate` over ``url``'s database, read only; a database not created yet (or without
    the crawl's tables) is estimated as an empty one."""
    with reading(url, db_schema=db_schema, new_as_empty=True) as engine, engine.connect() as conn:
        return estimate(conn, plan)
