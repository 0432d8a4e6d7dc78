"""What a crawl database says about its crawl: tasks, runs, the requests left to finish (counted by
:mod:`spotify_catalog.plan`), and what its account's ledger says of the requests of the last 24 h. Read
only: no client, no request, no write.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from spotify_catalog import ledger
from spotify_catalog.crawl import ACCOUNT_STATE_KEY, me
from spotify_catalog.crawl.parking import buckets_of
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
SOURCES = {
    "given": "given: --daily-budget",
    "assumed": "assumed: no daily budget set",
    "learnt": "learnt from Spotify's 429 QUOTA_EXCEEDED",
}
"""Where each figure of requests a day comes from, as the reading commands say it."""


# ------------------------------------------------------------------------------------ the days


@dataclass(frozen=True)
class Limit:
    """Requests a day that hold back what is left: the account's daily budget (``name`` ``None``; given
    or assumed) or a quota bucket's learnt size; ``requests``: what is left of the crawl that counts
    against it."""

    name: str | None
    size: int
    source: str
    """``given`` (--daily-budget), ``assumed`` (:data:`ASSUMED_BUDGET`), ``learnt`` (the ledger)."""
    requests: int

    @property
    def days(self) -> int:
        return math.ceil(self.requests / self.size) if self.size > 0 else 0

    def describe(self) -> str:
        """``1,000 a day (assumed: no daily budget set)``, ``artist-albums: 120 left at 30 a day
        (learnt ...)``."""
        figure = f"{self.size:,} a day ({SOURCES[self.source]})"
        return figure if self.name is None else f"{self.name}: {self.requests:,} left at {figure}"

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.name,
            "requests_left": self.requests,
            "per_day": self.size,
            "source": self.source,
            "days": self.days,
        }


def limits(estimate: Estimate, daily_budget: int | None, use: ledger.Usage | None) -> list[Limit]:
    """What holds back the requests ``estimate`` counts: the daily budget (given, else
    :data:`ASSUMED_BUDGET`) over all of them, and each bucket the ledger learnt the size of over the
    requests of its task kinds."""
    total = estimate.total
    out = [Limit(None, daily_budget or ASSUMED_BUDGET, "given" if daily_budget else "assumed", total)]
    by_bucket: dict[str, float] = {}
    for kind, requests in estimate.requests.items():
        for bucket in buckets_of(kind):
            by_bucket[bucket] = by_bucket.get(bucket, 0.0) + requests
    for name, found in (use.buckets if use is not None else {}).items():
        if found.learnt_size:  # a size of 0 says nothing of a day's worth
            out.append(Limit(name, found.learnt_size, "learnt", round(by_bucket.get(name, 0.0))))
    return out


def days_left(found: Sequence[Limit]) -> int:
    """The days the slowest of ``found`` takes."""
    return max((limit.days for limit in found), default=0)


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
class History:
    """A user's listening history in the database (``crawl --me``): how many plays, the first and the
    last, and the gaps a run found (``[after, before]``: plays in between may be missing)."""

    user_id: str
    plays: int
    first: datetime | None
    last: datetime | None
    gaps: list[list[str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "plays": self.plays,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "gaps": self.gaps,
        }


def histories(conn: sa.Connection) -> list[History]:
    """The listening history of each user with plays."""
    p = schema.plays
    query = sa.select(p.c.user_id, sa.func.count(), sa.func.min(p.c.played_at), sa.func.max(p.c.played_at))
    found = conn.execute(query.group_by(p.c.user_id).order_by(p.c.user_id)).all()
    gaps = me.describe_gaps(conn, [user for user, *_ in found])
    return [
        History(user, int(count), _aware(first), _aware(last), gaps.get(user, []))
        for user, count, first, last in found
    ]


def _aware(value: Any) -> datetime | None:
    """A time read back from an aggregate (SQLite gives text) as an aware UTC datetime."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
    histories: list[History] = field(default_factory=list)
    """The listening histories ``crawl --me`` collected."""

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
    def limits(self) -> list[Limit]:
        """What holds back the requests left (:func:`limits`)."""
        return limits(self.estimate, self.daily_budget, self.usage)

    @property
    def days_left(self) -> int:
        return days_left(self.limits)

    def to_json(self) -> dict[str, Any]:
        last = self.last_run
        plan, extended = self.estimate.plan, self.estimate.extended
        return {
            "tasks": self.tasks,
            "requests_last_24h": self.requests_last_24h,
            "account": self.usage.account if self.usage is not None else None,
            "ledger": self.usage.ledger if self.usage is not None else None,
            "buckets": {name: b.to_json() for name, b in self.usage.buckets.items()}
            if self.usage is not None
            else {},
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
            "days_left_by": [limit.to_json() for limit in self.limits],
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
            "plays": [history.to_json() for history in self.histories],
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
        histories=histories(conn),
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
