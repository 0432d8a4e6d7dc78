"""``spotify-catalog export``: the database to a Parquet/CSV/JSONL lake, or the DDL that reads it."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import click

from spotify_catalog import export as lake_export
from spotify_catalog.cli import db_options
from spotify_catalog.errors import UsageError
from spotify_catalog.storage.read_only import reading

DEFAULT_DB = "sqlite:///spotify-catalog.db"


def _snapshot_date(ctx: click.Context, param: click.Parameter, value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


def _tables(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("name at least one table")
    return names


@click.command("export")
@db_options(DEFAULT_DB)
@click.option("--to", "to", required=True, metavar="PATH_OR_URL", help="A directory or s3://bucket/prefix.")
@click.option("--format", "fmt", type=click.Choice(lake_export.FORMATS), default="parquet", show_default=True)
@click.option("--tables", callback=_tables, metavar="T1,T2", help="Tables to export [all but _bookkeeping].")
@click.option(
    "--snapshot-date", callback=_snapshot_date, metavar="YYYY-MM-DD", help="Partition date [today, UTC]."
)
@click.option(
    "--compression",
    type=click.Choice(lake_export.COMPRESSIONS),
    default=None,
    help="Parquet: zstd (default), snappy, none. CSV/JSONL: none (default) or zstd.",
)
@click.option("--with-raw", is_flag=True, help="Also export the raw JSON column.")
@click.option(
    "--include-gone",
    is_flag=True,
    help="Also export rows no longer in the catalog (answered 404, or listed by no discography), "
    "with their gone_at column.",
)
@click.option(
    "--print-ddl",
    type=click.Choice(lake_export.DDL_DIALECTS),
    help="Print the CREATE statements for that engine instead of exporting.",
)
@click.option("--batch-rows", type=click.IntRange(min=1), default=lake_export.DEFAULT_BATCH_ROWS, hidden=True)
@click.option(
    "--row-group-rows", type=click.IntRange(min=1), default=lake_export.DEFAULT_ROW_GROUP_ROWS, hidden=True
)
@click.pass_context
def export(
    ctx: click.Context,
    db_url: str,
    db_schema: str | None,
    to: str,
    fmt: str,
    tables: list[str] | None,
    snapshot_date: date,
    compression: str | None,
    with_raw: bool,
    include_gone: bool,
    print_ddl: str | None,
    batch_rows: int,
    row_group_rows: int,
) -> None:
    """Export the catalog to TO/<table>/dt=YYYY-MM-DD/part-00000.<format> (local or S3).

    Rows no longer in the catalog (gone_at set) are left out unless --include-gone. Exporting the
    same date again replaces that partition atomically; other dates stay. Exports of one date at once
    publish one after the other (the lock TO/_locks/<date>). Credentials
    and endpoint for S3 come from the usual AWS_* variables (AWS_ENDPOINT_URL for S3-compatible stores).
    """
    from spotify_catalog.storage.schema import metadata

    if print_ddl:
        if fmt != "parquet":
            raise UsageError("--print-ddl describes the Parquet layout; drop --format")
        # any URL as given (Spark may want s3a://); a local directory as an absolute path
        location = to if "://" in to else str(Path(to).expanduser().resolve())
        text = lake_export.ddl(
            metadata, location, print_ddl, tables=tables, with_raw=with_raw, include_gone=include_gone
        )
        click.echo(text, nl=False)
        return
    compression = compression or ("zstd" if fmt == "parquet" else "none")
    lake_export.check_options(fmt, compression)
    chosen = lake_export.select_tables(metadata, tables)  # unknown names: exit 2 before touching anything
    quiet = bool(getattr(ctx.find_root().obj, "quiet", False))
    live = sys.stderr.isatty() and not quiet

    def progress(table: str, rows: int) -> None:
        if live:
            click.echo(f"\r{table}: {rows:,} rows", err=True, nl=False)

    # no schema set-up, no WAL switch: a read-only directory is fine
    with reading(db_url, db_schema=db_schema) as engine:
        try:
            lake_export.check_database(engine, chosen)  # before --to is created
            lake = lake_export.open_lake(to)
            done = lake_export.export(
                engine,
                metadata,
                lake,
                snapshot_date,
                tables=tables,
                fmt=fmt,
                compression=compression,
                with_raw=with_raw,
                batch_rows=batch_rows,
                row_group_rows=row_group_rows,
                progress=progress,
                include_gone=include_gone,
            )
        finally:
            if live:
                click.echo("\r", err=True, nl=False)
    if not quiet:
        for item in done:
            click.echo(f"{item.table}: {item.rows:,} rows -> {item.uri}", err=True)
