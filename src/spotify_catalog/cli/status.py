"""``status``: what a crawl database holds and what is left, without a request (docs/operations.md);
and the table ``crawl --plan`` prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from spotify_catalog import crawl as crawl_lib
from spotify_catalog import ledger
from spotify_catalog import plan as plan_lib
from spotify_catalog import status as status_lib
from spotify_catalog.cli import Globals, db_options
from spotify_catalog.redaction import redact_url
from spotify_catalog.settings import Settings
from spotify_catalog.storage.read_only import reading

DEFAULT_DB = "sqlite:///spotify-catalog.db"


def _console() -> Console:
    """Standard output; when it is not a terminal (a log, a pipe) no line is wrapped or cut."""
    console = Console(soft_wrap=True, highlight=False)
    if not console.is_terminal:
        console.width = 10_000  # tables keep their natural width
    return console


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def _number(value: float) -> str:
    return f"{round(value):,}"


@click.command()
@db_options(DEFAULT_DB)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output.",
)
@click.option(
    "--daily-budget",
    type=click.IntRange(min=1),
    metavar="N",
    help="The account's requests a day, for the days left [env SPOTIFY_CATALOG_DAILY_BUDGET].",
)
def status(db_url: str, db_schema: str | None, fmt: str, daily_budget: int | None) -> None:
    """Tasks done and pending, recent runs, the account's requests of the last 24 h (its ledger) and
    the requests left.

    Reads the database and the ledger only: sends no request, needs no credentials, writes nothing.
    """
    g = click.get_current_context().find_object(Globals) or Globals()
    settings = g.settings(daily_budget=daily_budget)
    with reading(db_url, db_schema=db_schema) as engine, engine.connect() as conn:
        report = status_lib.read_status(
            conn, now=datetime.now(UTC), daily_budget=settings.daily_budget, settings=settings
        )
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return
    _print_status(_console(), report, redact_url(db_url))


BEYOND_PENDING = (
    "* more requests left than tasks pending: the rest belong to tasks not created yet, which the crawl "
    "finds as it fetches what comes first (the track pages of albums not fetched yet, the albums of "
    "discographies not listed yet), or to done ones due for a refresh"
)


def _print_status(out: Console, report: status_lib.Status, where: str) -> None:
    if report.empty:
        out.print(f"{where}: nothing crawled yet.", markup=False)
        if report.usage is not None:  # the account may have spent its budget elsewhere
            out.print(ledger.describe(report.usage), markup=False)
        return
    estimate = report.estimate
    tasks = Table(title=f"spotify-catalog status: {where}", title_justify="left")
    for name in ("task kind", "done", "pending", "failed", *_left_columns(estimate, "requests left")):
        tasks.add_column(name, justify="left" if name == "task kind" else "right")
    beyond = False  # a kind with more requests left than pending tasks
    for kind, counts in report.tasks.items():
        done, pending, failed = (_number(counts[st]) for st in ("done", "pending", "failed"))
        cells = _left(estimate, kind, counts["pending"])
        beyond = beyond or any(cell.endswith("*") for cell in cells)
        tasks.add_row(kind, done, pending, failed, *cells)
    for kind, left in estimate.requests.items():  # kinds with no task yet
        if kind not in report.tasks and left:
            tasks.add_row(kind, "0", "0", "0", *_left(estimate, kind, 0))
            beyond = True
    out.print(tasks)
    if beyond:
        out.print(BEYOND_PENDING, markup=False)

    runs = Table(title=f"last {len(report.runs)} run(s)", title_justify="left")
    for name in ("run", "started", "ended", "status", "requests", "reason"):
        runs.add_column(name, justify="right" if name in ("run", "requests") else "left")
    for run in report.runs:
        runs.add_row(
            str(run.id),
            _when(run.started_at),
            _when(run.ended_at),
            run.status,
            _number(run.requests),
            run.reason or "",
        )
    out.print(runs)

    lines = [] if report.usage is None else [ledger.describe(report.usage)]
    last = report.last_run
    if last is not None:
        line = f"last run: #{last.id} {last.status}"
        if last.reason:
            line += f": {last.reason}"
        if last.retry_at is not None:
            line += f"; run again after {_when(last.retry_at)}"
        lines.append(line)
    shown = ", ".join(repr(name) for name in report.unresolved)
    lines.append(f"names that found no artist: {shown or 'none'}")
    for history in report.histories:
        line = f"plays of {history.user_id}: {history.plays}, {_when(history.first)} to {_when(history.last)}"
        gaps = "; ".join(f"{after} to {before}" for after, before in history.gaps)
        lines.append(line + (f"; plays may be missing between {gaps}" if gaps else "; no gap"))
    lines.extend(_summary_lines(estimate, report.daily_budget, report.usage, "crawl --mode"))
    lines.extend(_bucket_lines(report.usage))
    for line in lines:
        out.print(line, markup=False)


def _left_columns(estimate: plan_lib.Estimate, name: str) -> list[str]:
    """The requests-left column, or one per mode when the mode is not known."""
    return [name] if estimate.extended is None else [f"{name} (development)", f"{name} (extended)"]


def _left(estimate: plan_lib.Estimate, kind: str, pending: int | None = None) -> list[str]:
    """A kind's requests left, in each mode when the mode is not known; with its ``pending`` tasks,
    marked ``*`` (:data:`BEYOND_PENDING`) above them: each task is one request at most."""
    both = [estimate] if estimate.extended is None else [estimate, estimate.extended]
    cells = []
    for e in both:
        left = e.requests.get(kind)
        beyond = left is not None and pending is not None and round(left) > pending
        cells.append("" if left is None else _number(left) + ("*" if beyond else ""))
    return cells


def _summary_lines(
    estimate: plan_lib.Estimate, daily_budget: int | None, use: ledger.Usage | None, pin: str
) -> list[str]:
    """The requests left and the days they take (at the daily budget and each bucket's learnt size,
    from ``use``); with the mode not known, the same in extended mode and ``pin``, the option that
    says the mode."""
    plan = estimate.plan
    total = estimate.total
    kind = "exact" if estimate.exact else "estimated"
    mode = f"{estimate.mode} mode" + ("" if estimate.mode_known else " (assumed)")
    line = f"requests left: {total:,} ({kind}; depth {plan.depth.label}, {mode})"
    lines = [line + _days(estimate, daily_budget, use)]
    other = estimate.extended
    if other is not None:
        kind = "exact" if other.exact else "estimated"
        days = _days(other, daily_budget, use)
        lines.append(f"requests left in extended mode: {other.total:,} ({kind})" + days)
    notes = [*estimate.notes]
    if other is not None:
        pinned = f"pin the mode: {pin} extended|development ('spotify-catalog auth check' says the app's)"
        notes.insert(notes.index(plan_lib.MODE_UNKNOWN) + 1, pinned)
    return [*lines, *(f"  {note}" for note in notes)] if total else lines


def _days(estimate: plan_lib.Estimate, daily_budget: int | None, use: ledger.Usage | None) -> str:
    """``; D day(s) at 1,000 a day (assumed: ...); artist-albums: 120 left at 30 a day (learnt ...)``."""
    if estimate.total == 0:
        return ": nothing left to do"
    limits = status_lib.limits(estimate, daily_budget, use)
    return f"; {status_lib.days_left(limits)} day(s) at " + "; ".join(limit.describe() for limit in limits)


def _bucket_lines(use: ledger.Usage | None) -> list[str]:
    """One line per quota bucket Spotify refused: its learnt size, and until when it is parked."""
    lines = []
    for name, bucket in (use.buckets if use is not None else {}).items():
        if bucket.learnt_size is None:
            continue
        line = f"quota bucket {name}: {bucket.learnt_size:,} a day (learnt)"
        line += f", {bucket.spent_24h:,} in the last 24 h"
        if bucket.parked_until is not None:
            line += f"; parked until {_when(bucket.parked_until)}"
        lines.append(line)
    return lines


def print_plan(
    db_url: str, db_schema: str | None, options: crawl_lib.CrawlOptions, settings: Settings, *, now: datetime
) -> None:
    """``crawl --plan``: the requests the crawl needs, per task kind, and a one-line summary."""
    plan = plan_lib.Plan.of(
        options, source="the given options", mode=settings.mode, fresh_since=now - options.refresh_after
    )
    estimate = status_lib.estimate_for(db_url, plan, db_schema)
    use = status_lib.ledger_usage(settings, now=now, limit=settings.daily_budget)
    out = _console()
    table = Table(title=f"spotify-catalog crawl --plan: {redact_url(db_url)}", title_justify="left")
    table.add_column("task kind")
    for name in _left_columns(estimate, "requests"):
        table.add_column(name, justify="right")
    for kind in estimate.requests:
        table.add_row(kind, *_left(estimate, kind))
    out.print(table)
    for line in _summary_lines(estimate, settings.daily_budget, use, "--mode"):
        out.print(line, markup=False)
    out.print(ledger.describe(use), markup=False)
    for line in _bucket_lines(use):
        out.print(line, markup=False)
