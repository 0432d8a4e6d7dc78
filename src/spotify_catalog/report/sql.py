"""SQL pieces the report's sections share, written once with SQLAlchemy Core: the same expressions on
SQLite, PostgreSQL and MySQL/MariaDB. A few small constructs compile per dialect: the UTC date, month
and hour of a timestamp (:class:`UtcPart`), and the length of a JSON list.

Timestamps are :class:`~spotify_catalog.storage.schema.UtcDateTime` columns: naive UTC on SQLite and
MySQL/MariaDB, ``timestamptz`` on PostgreSQL (converted ``AT TIME ZONE 'UTC'`` first).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from spotify_catalog.storage import schema


class UtcPart(FunctionElement[Any]):
    """A part of a UTC instant (a :class:`~spotify_catalog.storage.schema.UtcDateTime`): ``date``,
    ``month`` or ``hour``, written per dialect from :data:`UTC_PARTS`. Made by :func:`utc_date`,
    :func:`utc_month`, :func:`utc_hour`."""

    inherit_cache = True
    name = "utc_part"
    _traverse_internals = [*FunctionElement._traverse_internals, ("part", InternalTraversal.dp_string)]

    def __init__(self, timestamp: sa.ColumnElement[Any], part: str, type_: sa.types.TypeEngine[Any]) -> None:
        self.part = part
        self.type = type_
        super().__init__(timestamp)


def utc_date(timestamp: sa.ColumnElement[Any]) -> UtcPart:
    """The UTC calendar date (``YYYY-MM-DD``; a date, text on SQLite)."""
    return UtcPart(timestamp, "date", sa.String())


def utc_month(timestamp: sa.ColumnElement[Any]) -> UtcPart:
    """The UTC month, text ``YYYY-MM``."""
    return UtcPart(timestamp, "month", sa.String())


def utc_hour(timestamp: sa.ColumnElement[Any]) -> UtcPart:
    """The UTC hour of the day, 0-23."""
    return UtcPart(timestamp, "hour", sa.Integer())


UTC_PARTS = {
    "sqlite": {
        "date": "DATE({x})",
        "month": "strftime('%Y-%m', {x})",
        "hour": "CAST(strftime('%H', {x}) AS INTEGER)",
    },
    "postgresql": {
        "date": "CAST(({x}) AT TIME ZONE 'UTC' AS DATE)",
        "month": "to_char(({x}) AT TIME ZONE 'UTC', 'YYYY-MM')",
        "hour": "CAST(EXTRACT(HOUR FROM ({x}) AT TIME ZONE 'UTC') AS INTEGER)",
    },
    "mysql": {"date": "DATE({x})", "month": "DATE_FORMAT({x}, '%Y-%m')", "hour": "HOUR({x})"},
}
"""Per dialect (MariaDB compiles as mysql), each part's SQL; SQLite and MySQL store naive UTC."""


@compiles(UtcPart)
def _utc_part(element: UtcPart, compiler: Any, **kw: Any) -> str:
    sql = UTC_PARTS[compiler.dialect.name][element.part]
    if compiler.preparer._double_percents:  # drivers whose parameters are %s read a lone % as one
        sql = sql.replace("%", "%%")
    return sql.format(x=compiler.process(element.clauses, **kw))


class json_list_length(FunctionElement[int]):
    """The number of items of a JSON list column; NULL when it holds no list (SQL NULL, JSON null)."""

    type = sa.Integer()
    inherit_cache = True
    name = "json_list_length"


@compiles(json_list_length)
def _json_length_sqlite(element: json_list_length, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"CASE WHEN json_type({x}) = 'array' THEN json_array_length({x}) END"


@compiles(json_list_length, "postgresql")
def _json_length_postgresql(element: json_list_length, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"CASE WHEN json_typeof({x}) = 'array' THEN json_array_length({x}) END"


@compiles(json_list_length, "mysql")
def _json_length_mysql(element: json_list_length, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"CASE WHEN JSON_TYPE({x}) = 'ARRAY' THEN JSON_LENGTH({x}) END"


def top_artists(
    conn: sa.Connection,
    artist_id: sa.ColumnElement[str],
    source: sa.FromClause,
    limit: int,
    *where: sa.ColumnElement[bool],
) -> list[tuple[str, str, int]]:
    """The ``limit`` artists whose id (``artist_id``, a column of ``source``) is in the most rows of
    ``source`` (``where`` holding): (id, name, rows), the most first, ties by id; an artist the
    database has no row of is named by its id."""
    ar = schema.artists
    n = sa.func.count().label("n")
    top = (
        sa.select(artist_id.label("artist_id"), n)
        .select_from(source)
        .where(*where)
        .group_by(artist_id)
        .order_by(n.desc(), artist_id)
        .limit(limit)
        .subquery()
    )
    query = (
        sa.select(top.c.artist_id, ar.c.name, top.c.n)
        .select_from(top.outerjoin(ar, ar.c.id == top.c.artist_id))
        .order_by(top.c.n.desc(), top.c.artist_id)
    )
    return [
        (str(i), str(name) if name is not None else str(i), int(count))
        for i, name, count in conn.execute(query)
    ]
