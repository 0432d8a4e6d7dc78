"""Helpers of the lake tests: a small metadata with every column kind, rows generated from any
schema, and the rows as the database and the lake give them back."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import sqlalchemy as sa

from spotify_catalog import export as lake_export

PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")
# timestamps are INT96 in the files: pyarrow reads them as naive timestamps (nanoseconds by default)
PARQUET = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(coerce_int96_timestamp_unit="us"))


def as_read(schema: pa.Schema) -> pa.Schema:
    """``schema`` as pyarrow reads the files back: every timestamp naive (INT96 carries no zone)."""
    for i, f in enumerate(schema):
        if pa.types.is_timestamp(f.type):
            schema = schema.set(i, f.with_type(pa.timestamp(f.type.unit)))
    return schema


def small_metadata() -> sa.MetaData:
    """Every column kind the exporter handles, two exported tables and a bookkeeping one."""
    meta = sa.MetaData()
    sa.Table(
        "items",
        meta,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("count", sa.Integer),
        sa.Column("small", sa.SmallInteger),
        sa.Column("big", sa.BigInteger),
        sa.Column("flag", sa.Boolean),
        sa.Column("score", sa.Float),
        sa.Column("day", sa.Date),
        sa.Column("seen_at", sa.DateTime(timezone=True)),
        sa.Column("markets", sa.JSON, info={"list_of": sa.String(2)}),
        sa.Column("numbers", sa.JSON, info={"list_of": sa.Integer()}),
        sa.Column("extra", sa.JSON),
        sa.Column("raw", sa.JSON),
        sa.Column("kind", sa.String(10), nullable=False),
    )
    sa.Table(
        "links",
        meta,
        sa.Column("item_id", sa.String(40), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("target", sa.String(40), nullable=False),
    )
    sa.Table("_runs", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))
    return meta


# Spotify's release dates (a year, a month or a day) and what the lake makes of them: the first day of
# the year or month; nothing for its unknown year 0000, a day that does not exist, or text
PARTIAL_DATES = [
    ("1987", date(1987, 1, 1)),
    ("2012-11", date(2012, 11, 1)),
    ("2012-11-16", date(2012, 11, 16)),
    ("2024-02-29", date(2024, 2, 29)),
    ("0000", None),
    ("2023-02-30", None),
    ("2023-13", None),
    ("", None),
    ("soon", None),
]
_WORDS = ["Sigur Rós", "Beyoncé", "AC/DC", "O'Brien", 'say "hi"', "a,b", "line\nbreak", "東京", ""]


def _value(column: sa.Column[Any], i: int, rng: random.Random, dialect: str, gone: bool) -> Any:
    t = column.type
    if column.name == lake_export.GONE_COLUMN and not gone:
        return None
    decorated = isinstance(t, sa.types.TypeDecorator)
    base = lake_export.base_type(t)
    if column.primary_key:
        keys = [c.name for c in column.table.primary_key.columns]
        n = (i // 7 if keys.index(column.name) == 0 else i % 7) if len(keys) > 1 else i
        if isinstance(base, sa.Integer):
            return n + 1
        if isinstance(base, sa.DateTime):  # a play's played_at
            moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n, milliseconds=n % 1000)
            return moment if decorated or dialect == "postgresql" else moment.replace(tzinfo=None)
        if isinstance(base, sa.Date):
            return date(2026, 1, 1) + timedelta(days=n)
        limit = getattr(base, "length", None) or 40
        return f"id{n:06d}" if limit >= 8 else f"{n:0{limit}d}"  # short keys (a market): digits
    if column.nullable and rng.random() < 0.2:
        return None
    if column.info.get("partial_date"):
        return rng.choice(PARTIAL_DATES)[0]
    if isinstance(base, sa.JSON):
        element = column.info.get("list_of")
        if element is None:
            return {"n": i, "name": rng.choice(_WORDS), "tags": [rng.choice(_WORDS)], "ok": True}
        if isinstance(lake_export.base_type(element), sa.Integer):
            return [rng.randint(-1000, 1000) for _ in range(rng.randint(0, 4))]
        return [rng.choice(["US", "SE", "JP", "DE"]) for _ in range(rng.randint(0, 4))]
    if isinstance(base, sa.Boolean):
        return rng.random() < 0.5
    if isinstance(base, sa.BigInteger):
        return rng.randint(-(2**62), 2**62)
    if isinstance(base, sa.SmallInteger):
        return rng.randint(-32000, 32000)
    if isinstance(base, sa.Integer):
        return rng.randint(-(2**31), 2**31 - 1)
    if isinstance(base, sa.Float):
        return round(rng.uniform(-1000, 1000), 3)
    if isinstance(base, sa.DateTime):
        moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
        if decorated or dialect == "postgresql":
            return moment
        return moment.replace(tzinfo=None)  # naive UTC where the backend has no time zones
    if isinstance(base, sa.Date):
        return date(2000, 1, 1) + timedelta(days=rng.randint(0, 9000))
    if isinstance(base, sa.String):
        limit = base.length or 40
        return rng.choice(_WORDS)[:limit] if limit > 10 else "x" * rng.randint(1, min(limit, 4))
    raise TypeError(f"no sample for {t!r}")


def sample_rows(
    table: sa.Table, n: int, *, dialect: str = "sqlite", seed: int = 1, gone: bool = False
) -> list[dict[str, Any]]:
    """``n`` rows for any table: unique keys, about one null in five, unicode, lists, nested JSON;
    ``gone_at`` null unless ``gone`` (then most rows are gone)."""
    rng = random.Random(f"{table.name}-{seed}")
    return [{c.name: _value(c, i, rng, dialect, gone) for c in table.columns} for i in range(n)]


def fill(engine: sa.Engine, metadata: sa.MetaData, n: int, *, seed: int = 1, gone: bool = False) -> None:
    """Create the tables of ``metadata`` (dropping old ones) and put ``n`` rows in each (``gone``: see
    :func:`sample_rows`)."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if n:
                rows = sample_rows(table, n, dialect=engine.dialect.name, seed=seed, gone=gone)
                conn.execute(table.insert(), rows)


def database_rows(
    engine: sa.Engine, table: sa.Table, *, with_raw: bool = False, include_gone: bool = False
) -> list[dict[str, Any]]:
    """The rows as the database gives them back (all of them; ``raw`` only with ``with_raw``,
    ``gone_at`` only with ``include_gone``), normalised as the lake holds them (aware UTC timestamps,
    JSON objects as text parsed back)."""
    columns = [
        c for c in table.columns if (with_raw or c.name != "raw") and (include_gone or c.name != "gone_at")
    ]
    query = sa.select(*columns).order_by(*table.primary_key.columns)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    partial = [c.name for c in columns if c.info.get("partial_date")]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        for key in partial:  # the lake's DATE, and the text as it was
            row[f"{key}_text"] = row[key]
            row[key] = _lake_date(row[key])
    return rows


def _lake_date(text: str | None) -> date | None:
    """What the lake makes of a release date, worked out apart from the code that does it."""
    known = dict(PARTIAL_DATES)
    if text is None:
        return None
    if text in known:
        return known[text]
    year, _, rest = text.partition("-")
    month, _, day = rest.partition("-")
    try:
        return date(int(year), int(month or 1), int(day or 1)) if int(year) > 0 else None
    except ValueError:
        return None


def lake_rows(arrow_table: pa.Table, table: sa.Table) -> list[dict[str, Any]]:
    """Rows read back from the lake, JSON text columns parsed, naive timestamps taken as UTC, sorted by
    primary key, without dt."""
    json_columns = {
        c.name
        for c in table.columns
        if isinstance(lake_export.base_type(c.type), sa.JSON) and "list_of" not in c.info
    }
    rows = arrow_table.to_pylist()
    for row in rows:
        row.pop("dt", None)
        for key, value in row.items():
            if isinstance(value, datetime) and value.tzinfo is None:  # INT96: UTC
                row[key] = value.replace(tzinfo=UTC)
        for key in json_columns & row.keys():
            if row[key] is not None:
                row[key] = json.loads(row[key])
    keys = [c.name for c in table.primary_key.columns]
    return sorted(rows, key=lambda r: tuple(r[k] for k in keys))
