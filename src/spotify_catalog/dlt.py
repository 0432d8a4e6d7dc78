"""A crawl database as a dlt source (the ``dlt`` extra; docs/dlt.md): every catalog table a resource
with its primary key, the ``merge`` write disposition and an incremental cursor on ``written_at``, the
time the row was last written (:mod:`spotify_catalog.increments`), so that a daily pipeline loads
only what changed since its last run into any dlt destination.

::

    import dlt
    from spotify_catalog.dlt import catalog_source

    pipeline = dlt.pipeline("spotify_catalog", destination="duckdb", dataset_name="spotify")
    pipeline.run(catalog_source("sqlite:///catalog.db"))

Importing this module without dlt raises ``ModuleNotFoundError`` with the line that installs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from spotify_catalog import extras, increments
from spotify_catalog.errors import StorageError, UsageError
from spotify_catalog.increments import DELETED, WRITTEN_AT, Increment
from spotify_catalog.redaction import redact_url
from spotify_catalog.storage import read_only, schema
from spotify_catalog.storage.engine import describe_error, name_of

try:
    import dlt
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(extras.needs("spotify_catalog.dlt", exc.name), name=exc.name) from None

SOURCE_NAME = "spotify_catalog"


def data_type(column: sa.Column[Any]) -> str:
    """The dlt data type of one of the schema's columns (JSON lists and objects stay ``json``)."""
    kind = column.type
    if isinstance(kind, schema.UtcDateTime | sa.DateTime):
        return "timestamp"
    if isinstance(kind, sa.JSON):
        return "json"
    if isinstance(kind, sa.Boolean):
        return "bool"
    if isinstance(kind, sa.Date):
        return "date"
    if isinstance(kind, sa.Integer):
        return "bigint"
    return "text"


def column_hints(increment: Increment, *, with_raw: bool = False) -> dict[str, dict[str, Any]]:
    """dlt's column schema of a resource: the table's columns, ``written_at`` and, for a list loaded
    whole with its parent, ``deleted`` (dlt's ``hard_delete`` hint: a parent whose list is now empty)."""
    hints: dict[str, dict[str, Any]] = {
        c.name: {"data_type": data_type(c), "nullable": bool(c.nullable) and not c.primary_key}
        for c in increments.columns(increment, with_raw=with_raw)
    }
    hints[WRITTEN_AT] = {"data_type": "timestamp", "nullable": True}
    if increment.group is not None:
        hints[DELETED] = {"data_type": "bool", "nullable": True, "hard_delete": True}
    return hints


def _resource(engine: sa.Engine, increment: Increment, with_raw: bool) -> Any:
    """One table as a dlt resource: primary key, ``merge`` (on the parent for a list loaded whole:
    ``merge_key``), and the incremental cursor ``written_at``, whose last value dlt keeps in the
    pipeline's state."""

    def rows(  # dlt finds the cursor as the default of an argument, and gives it the pipeline's state
        written_at: Any = dlt.sources.incremental(WRITTEN_AT, on_cursor_value_missing="include"),  # noqa: B008
    ) -> Iterator[list[dict[str, Any]]]:
        with engine.connect() as conn:
            yield from increments.written_since(conn, increment, written_at.start_value, with_raw=with_raw)

    return dlt.resource(
        rows,
        name=increment.name,
        primary_key=list(increment.key),
        merge_key=increment.group,
        write_disposition="merge",
        columns=column_hints(increment, with_raw=with_raw),
    )


def catalog_source(
    db_url: str,
    *,
    db_schema: str | None = None,
    tables: Sequence[str] | None = None,
    with_raw: bool = False,
) -> Any:
    """The dlt source of the crawl database at ``db_url`` (SQLite, PostgreSQL or MySQL/MariaDB, as
    ``--db`` takes it; ``db_schema`` as ``--db-schema``): one resource per catalog table (``tables``:
    only those), ``raw`` left out unless ``with_raw``. Only reads the database, opened as the commands
    that only read open it (:mod:`spotify_catalog.storage.read_only`): no database there, another
    program's, or one with nothing crawled is a :class:`~spotify_catalog.errors.UsageError` (exit 2),
    a newer or older schema a :class:`~spotify_catalog.errors.StorageError` (exit 1)."""
    try:
        chosen = increments.increments(tables)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    engine = read_only.open_read_only(db_url, db_schema=db_schema)
    if engine is None:
        raise UsageError(f"no database at {redact_url(db_url)} (nothing crawled there: check --db)")
    try:
        with engine.connect() as conn:
            crawled = read_only.has_crawl(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot open the database {name_of(engine)}: {describe_error(exc)}") from None
    if not crawled:
        raise UsageError(f"nothing crawled into {name_of(engine)} yet: run 'spotify-catalog crawl' first")
    resources = [_resource(engine, increment, with_raw) for increment in chosen]

    def spotify_catalog() -> Any:
        return resources

    return dlt.source(spotify_catalog, name=SOURCE_NAME, max_table_nesting=0)()
