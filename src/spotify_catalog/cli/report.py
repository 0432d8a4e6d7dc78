"""``report``: the crawl and the catalog of a database as one self-contained HTML page, without a
request (docs/report.md)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import click

from spotify_catalog import report as report_lib
from spotify_catalog.cli import Globals, db_options
from spotify_catalog.errors import UsageError
from spotify_catalog.redaction import redact_url
from spotify_catalog.settings import Settings
from spotify_catalog.storage.read_only import reading

log = logging.getLogger(__name__)

DEFAULT_DB = "sqlite:///spotify-catalog.db"
DEFAULT_TITLE = "spotify-catalog report"


def write_report(
    db_url: str,
    out: Path,
    *,
    db_schema: str | None = None,
    title: str = DEFAULT_TITLE,
    daily_budget: int | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> report_lib.Report:
    """Read ``db_url``'s database (read only) and write its report to ``out``; a SQLite file that does
    not exist is a usage error, a database without a crawl gives the "nothing collected yet" page.
    ``settings``: the account's requests of the last 24 h come from its ledger."""
    with reading(db_url, db_schema=db_schema) as engine, engine.connect() as conn:
        data = report_lib.collect(
            conn, now=now or datetime.now(UTC), daily_budget=daily_budget, settings=settings
        )
    page = report_lib.render(data, title=title, source=redact_url(db_url))
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(page, "utf-8")
        temporary.replace(out)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    return data


@click.command()
@db_options(DEFAULT_DB)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option("--title", default=DEFAULT_TITLE, show_default=True, help="The page's title.")
@click.option(
    "--daily-budget",
    type=click.IntRange(min=1),
    metavar="N",
    help="Requests a day: a line on the requests chart, the days left [env SPOTIFY_CATALOG_DAILY_BUDGET].",
)
def report(db_url: str, db_schema: str | None, out: Path, title: str, daily_budget: int | None) -> None:
    """One HTML file (charts and data inline, opens offline): the crawl's progress and the catalog.

    Reads the database only: sends no request, needs no credentials, writes nothing but --out.
    """
    g = click.get_current_context().find_object(Globals) or Globals()
    settings = g.settings(daily_budget=daily_budget)
    data = write_report(
        db_url, out, db_schema=db_schema, title=title, daily_budget=settings.daily_budget, settings=settings
    )
    if data.empty:
        click.echo(f"{out}: nothing collected yet in {redact_url(db_url)}", err=True)
    click.echo(str(out))
