"""The export: every table read as of one moment, written to staging, then published in place of the
partitions of its date, holding the date's lock; the staging removed however it ends."""

from __future__ import annotations

import functools
import logging
import time as systime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

from spotify_catalog.errors import SpotifyCatalogError, StorageError, UsageError, first_line
from spotify_catalog.export.choose import reading
from spotify_catalog.export.lake import Lake, partition_dir
from spotify_catalog.export.reader import DEFAULT_BATCH_ROWS, Reader, ReadOptions
from spotify_catalog.export.s3_errors import BotoCoreError, ClientError
from spotify_catalog.export.staging import remove_staging, remove_stale_staging, staging_root
from spotify_catalog.export.types import dictionary_columns, select_tables, to_lake
from spotify_catalog.export.write import DEFAULT_ROW_GROUP_ROWS, check_options, file_name, write_file
from spotify_catalog.redaction import redact_url
from spotify_catalog.storage import schema as catalog_schema
from spotify_catalog.storage.engine import describe_error
from spotify_catalog.storage.migrate import schema_version

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]
"""``progress(table, rows_written_so_far)``: called after every batch (and once at the end of a table)."""


@dataclass
class ExportedTable:
    """One table written: where, how many rows."""

    table: str
    rows: int
    uri: str


@dataclass
class _Staged:
    table: str
    rows: int
    staged_dir: str
    final_dir: str


@dataclass
class _Run:
    """One export into ``lake``: its staging directory, and the tables staged so far."""

    lake: Lake
    snapshot_date: date
    options: ReadOptions
    fmt: str
    compression: str
    row_group_rows: int
    report: Progress
    root: str = ""  # the staging directory: TO/_staging/<date>-<random>
    name: str = ""  # the file's name in each partition
    staged: list[_Staged] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = staging_root(self.lake, self.snapshot_date)
        self.name = file_name(self.fmt, self.compression)

    def stage(self, engine: sa.Engine, tables: Sequence[sa.Table]) -> None:
        """Write every table to its partition under the staging directory, as of one moment."""
        with reading(engine, tables, self.options) as choose:
            for table in tables:
                rows, staged_dir = self.write(table, choose(table))
                final_dir = partition_dir(self.lake.root, table.name, self.snapshot_date)
                self.staged.append(_Staged(table.name, rows, staged_dir, final_dir))

    def write(self, table: sa.Table, reader: Reader) -> tuple[int, str]:
        """Write ``table`` through ``reader`` to its staged partition: its rows and the directory."""
        staged_dir = partition_dir(self.root, table.name, self.snapshot_date)
        if not self.lake.is_s3:
            Path(staged_dir).mkdir(parents=True)
        log.info("exporting %s to %s", table.name, staged_dir)
        options = self.options
        schema = options.lake_schema(table)
        batches = (to_lake(table, batch, schema) for batch in reader.batches(table))
        with self.lake.fs.open_output_stream(f"{staged_dir}/{self.name}", compression=None) as sink:
            rows = write_file(
                sink,
                schema,
                batches,
                fmt=self.fmt,
                compression=self.compression,
                row_group_rows=self.row_group_rows,
                on_batch=functools.partial(self.report, table.name),
                dictionary=dictionary_columns(
                    table, with_raw=options.with_raw, include_gone=options.include_gone
                ),
            )
        self.report(table.name, rows)
        return rows, staged_dir

    def publish(self, *, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        """Put every staged partition in place, holding the lock of the date."""
        with self.lake.publishing(self.snapshot_date, clock=clock, sleep=sleep) as lock:
            for item in self.staged:
                lock.check()
                self.lake.publish(item.staged_dir, item.final_dir)
                log.info("published %s (%d rows)", item.final_dir, item.rows)

    def exported(self) -> list[ExportedTable]:
        uri = self.lake.uri.rstrip("/")
        return [
            ExportedTable(s.table, s.rows, f"{partition_dir(uri, s.table, self.snapshot_date)}/{self.name}")
            for s in self.staged
        ]


def export(
    engine: sa.Engine,
    metadata: sa.MetaData,
    lake: Lake,
    snapshot_date: date,
    *,
    tables: Sequence[str] | None = None,
    fmt: str = "parquet",
    compression: str = "zstd",
    with_raw: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    include_gone: bool = False,
    clock: Callable[[], float] = systime.monotonic,
    sleep: Callable[[float], None] = systime.sleep,
) -> list[ExportedTable]:
    """Export ``tables`` (default: all but bookkeeping) of the database to ``lake`` as the partition
    ``dt=snapshot_date``; gone rows (and the ``gone_at`` column) only with ``include_gone``. All tables
    are staged first and swapped in only when all are complete; on any error (``KeyboardInterrupt`` and
    so SIGTERM too) the staging area is removed, its multipart uploads aborted, and the lake is as it
    was. Staging left by dead exports is removed first (:func:`remove_stale_staging`). Exports of one
    date into one lake publish one after the other, so that they end as if run one after the other
    (:meth:`Lake.publishing`; ``clock``, monotonic seconds, and ``sleep`` serve the waiting for its
    lock)."""
    check_options(fmt, compression)
    chosen = select_tables(metadata, tables)
    check_database(engine, chosen)
    remove_stale_staging(lake, now=now())
    options = ReadOptions(with_raw=with_raw, include_gone=include_gone, batch_rows=batch_rows)
    run = _Run(
        lake, snapshot_date, options, fmt, compression, row_group_rows, progress or (lambda t, n: None)
    )
    try:
        run.stage(engine, chosen)
        run.publish(clock=clock, sleep=sleep)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"reading the database failed: {describe_error(exc)}") from None
    except (OSError, BotoCoreError, ClientError) as exc:
        raise SpotifyCatalogError(f"writing to {lake.uri} failed: {first_line(exc)}") from None
    finally:
        remove_staging(lake, run.root)
    return run.exported()


def check_database(engine: sa.Engine, tables: Sequence[sa.Table]) -> None:
    """The tables exist, and not all of them are empty: an export of an empty database would replace a
    good snapshot with empty files (a wrong ``--db`` is the likelier story). Tables of this program's
    schema need a database of it, not another program's nor a newer schema (:func:`schema_version`)."""
    where = redact_url(engine.url)
    try:
        if any(t.metadata is catalog_schema.metadata for t in tables):
            with engine.connect() as conn:
                schema_version(conn)
        present = set(sa.inspect(engine).get_table_names())
        missing = [t.name for t in tables if t.name not in present]
        if missing:
            raise UsageError(f"the database {where} has no table {', '.join(missing)} (crawl into it first)")
        with engine.connect() as conn:
            any_row = (sa.select(sa.literal(1)).select_from(t).limit(1) for t in tables)
            empty = all(conn.execute(query).first() is None for query in any_row)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot open the database {where}: {describe_error(exc)}") from None
    if empty:
        what = ", ".join(t.name for t in tables) if len(tables) <= 3 else f"the {len(tables)} tables"
        raise UsageError(f"nothing to export: {what} in {where} hold no rows (crawl into it first)")
