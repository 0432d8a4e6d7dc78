"""The DDL that reads the Parquet lake (pure): Athena, Spark SQL and DuckDB, a table per exported
table over every snapshot and a ``<table>_latest`` view of its newest one."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa
import sqlalchemy as sa

from spotify_catalog.errors import UsageError
from spotify_catalog.export.lake import PARTITION
from spotify_catalog.export.types import arrow_schema, select_tables

DDL_DIALECTS = ("athena", "spark", "duckdb")
LATEST_SUFFIX = "_latest"

_HIVE_TYPES: dict[str, str] = {
    "bool": "boolean",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
    "date32[day]": "date",
    "binary": "binary",
}
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def hive_type(t: pa.DataType) -> str:
    """Athena/Spark (Hive DDL) type of an Arrow type."""
    if pa.types.is_list(t):
        return f"array<{hive_type(t.value_type)}>"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_time(t) or pa.types.is_duration(t):
        return "bigint"
    return _HIVE_TYPES[str(t)]


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _view_name(name: str, quote: str) -> str:
    """A name as a view statement writes it: plain names bare (Athena's views are Trino SQL, which has
    no backticks, while Spark reads double quotes as a string), others quoted for the one engine."""
    return name if _PLAIN_NAME.fullmatch(name) else f"{quote}{name.replace(quote, quote * 2)}{quote}"


def _latest_view(table: str, quote: str) -> str:
    """``<table>_latest``: the rows of the table's newest ``dt`` (a string ``YYYY-MM-DD``, so the
    greatest string is the newest date)."""
    view, name = _view_name(table + LATEST_SUFFIX, quote), _view_name(table, quote)
    newest = f"(SELECT max({PARTITION}) FROM {name})"  # noqa: S608
    return f"CREATE OR REPLACE VIEW {view} AS\nSELECT * FROM {name} WHERE {PARTITION} = {newest};"


def _duckdb_columns(schema: pa.Schema) -> str:
    """``*``, with every timestamp column read as ``TIMESTAMP WITH TIME ZONE``: the files hold INT96
    instants in UTC, which DuckDB reads as a ``TIMESTAMP`` without a zone."""
    stamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    if not stamps:
        return "*"
    quoted = ['"' + name.replace('"', '""') + '"' for name in stamps]
    return "* REPLACE (" + ", ".join(f"timezone('UTC', {q}) AS {q}" for q in quoted) + ")"


def _duckdb(table: str, where: str, schema: pa.Schema) -> str:
    """A DuckDB view over every snapshot of ``table``, its timestamps read as UTC."""
    glob = _sql_string(f"{where}/*/*.parquet")
    name = '"' + table.replace('"', '""') + '"'
    return (
        f"CREATE OR REPLACE VIEW {name} AS SELECT {_duckdb_columns(schema)} FROM "  # noqa: S608
        f"read_parquet({glob}, hive_partitioning = true, hive_types = {{'{PARTITION}': VARCHAR}});\n"
        + _latest_view(table, '"')
    )


def _spark(table: str, where: str, cols: str) -> str:
    """A Spark SQL table over ``where``, its partitions found by ``MSCK REPAIR TABLE``."""
    return (
        f"CREATE TABLE IF NOT EXISTS `{table}` (\n{cols},\n  `{PARTITION}` string\n)\n"
        f"USING parquet\nPARTITIONED BY ({PARTITION})\nLOCATION {_sql_string(where + '/')};\n"
        f"MSCK REPAIR TABLE `{table}`;\n" + _latest_view(table, "`")
    )


def _athena(table: str, where: str, cols: str) -> str:
    """An Athena table over ``where`` with partition projection on ``dt`` (no partitions to add)."""
    props = {
        "projection.enabled": "true",
        f"projection.{PARTITION}.type": "date",
        f"projection.{PARTITION}.format": "yyyy-MM-dd",
        f"projection.{PARTITION}.range": "2000-01-01,NOW",
        f"projection.{PARTITION}.interval": "1",
        f"projection.{PARTITION}.interval.unit": "DAYS",
        "storage.location.template": f"{where}/{PARTITION}=${{{PARTITION}}}/",
    }
    tblprops = ",\n".join(f"  {_sql_string(k)} = {_sql_string(v)}" for k, v in props.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{cols}\n)\n"
        f"PARTITIONED BY (`{PARTITION}` string)\nSTORED AS PARQUET\n"
        f"LOCATION {_sql_string(where + '/')}\nTBLPROPERTIES (\n{tblprops}\n);\n" + _latest_view(table, '"')
    )


def ddl(
    metadata: sa.MetaData,
    location: str,
    dialect: str,
    *,
    tables: Sequence[str] | None = None,
    with_raw: bool = False,
    include_gone: bool = False,
) -> str:
    """The statements that read the Parquet lake at ``location``, per table: one named as the table
    over every snapshot (Athena ``CREATE EXTERNAL TABLE`` with partition projection on ``dt``, Spark SQL
    ``CREATE TABLE ... USING parquet`` + ``MSCK REPAIR TABLE``, DuckDB ``CREATE VIEW``), then a view
    ``<table>_latest`` of only its newest ``dt``."""
    if dialect not in DDL_DIALECTS:
        raise UsageError(f"unknown DDL dialect {dialect!r}; choose {', '.join(DDL_DIALECTS)}")
    root = location.rstrip("/")
    if dialect == "athena" and not root.startswith("s3://"):
        raise UsageError("Athena reads from S3: give --to s3://bucket/prefix")
    statements = []
    for table in select_tables(metadata, tables):
        schema = arrow_schema(table, with_raw=with_raw, include_gone=include_gone)
        where = f"{root}/{table.name}"
        if dialect == "duckdb":
            statements.append(_duckdb(table.name, where, schema))
            continue
        cols = ",\n".join(f"  `{f.name}` {hive_type(f.type)}" for f in schema)
        statements.append((_spark if dialect == "spark" else _athena)(table.name, where, cols))
    return "\n\n".join(statements) + "\n"
