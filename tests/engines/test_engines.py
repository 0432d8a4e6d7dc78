"""The lake as Spark, Hive and DuckDB read it: the printed DDL of each dialect runs, every table and
date counts as exported, ``<table>_latest`` holds the newest snapshot only, list columns hold their
items, a tracks -> albums -> artists join adds up, and every timestamp is the instant the database
holds, through Spark's Parquet reader, Hive's (INT96) and DuckDB's over S3."""

from __future__ import annotations

from typing import Any

import engine_lake
import pytest
import tools

if (reason := tools.unavailable()) is not None:
    pytest.skip(reason, allow_module_level=True)  # one line for the whole suite

pytestmark = pytest.mark.engines

SPARK_TYPES = {
    ("tracks", "id"): "string",
    ("tracks", "available_markets"): "array<string>",
    ("tracks", "explicit"): "boolean",
    ("tracks", "duration_ms"): "int",
    ("tracks", "fetched_at"): "timestamp",
    ("albums", "copyrights"): "array<string>",
    ("artist_snapshots", "snapshot_date"): "date",
    ("albums", "release_date"): "date",
    ("albums", "release_date_text"): "string",
    ("artist_resolutions", "exact"): "boolean",
    ("artist_resolutions", "resolved_at"): "timestamp",
    ("tracks", "dt"): "string",
}
DUCKDB_TYPES = {
    ("tracks", "id"): "VARCHAR",
    ("tracks", "available_markets"): "VARCHAR[]",
    ("tracks", "explicit"): "BOOLEAN",
    ("tracks", "duration_ms"): "INTEGER",
    ("tracks", "fetched_at"): "TIMESTAMP WITH TIME ZONE",
    ("albums", "copyrights"): "VARCHAR[]",
    ("artist_snapshots", "snapshot_date"): "DATE",
    ("albums", "release_date"): "DATE",
    ("albums", "release_date_text"): "VARCHAR",
    ("artist_resolutions", "exact"): "BOOLEAN",
    ("artist_resolutions", "resolved_at"): "TIMESTAMP WITH TIME ZONE",
    ("tracks", "dt"): "VARCHAR",
}


def test_the_lake_has_two_snapshots_with_lists(lake: Any) -> None:
    """The data is worth reading: the second snapshot holds more, list columns hold items."""
    for table in ("artists", "albums", "tracks", "track_artists"):
        first, second = (lake.counts[table][d.isoformat()] for d in (engine_lake.FIRST, engine_lake.SECOND))
        assert 0 < first < second, table
    assert lake.counts["artist_resolutions"][engine_lake.SECOND.isoformat()] >= 1
    assert all(n > 0 for n in lake.lists.values()), lake.lists
    assert lake.join[0] >= lake.counts["tracks"][engine_lake.SECOND.isoformat()]
    assert lake.releases  # albums with a release date to group by


def check(read: dict[str, Any], lake: Any, types: dict[tuple[str, str], str]) -> None:
    assert read["counts"] == {t: {d: n for d, n in c.items() if n} for t, c in lake.counts.items()}
    for table in engine_lake.TABLES:
        count, oldest, newest = read["latest"][table]
        want, dt, _ = lake.latest(table)
        assert count == want, table
        assert (oldest, newest) == ((dt, dt) if want else (None, None)), table
        assert read["rows_read"][table] == sum(lake.counts[table].values()), table
    assert {key: read["types"][key[0]][key[1]] for key in types} == types
    assert read["lists"] == lake.lists
    assert read["join"] == lake.join
    assert read["releases"] == lake.releases
    for table, columns in lake.instants.items():
        for column, per_date in columns.items():
            want = {dt: values for dt, values in per_date.items() if values}
            got = read["instants"].get(table, {}).get(column, {})  # a column null everywhere: none
            assert got == want, f"{table}.{column}"


def test_spark_runs_the_printed_spark_ddl(spark_read: dict[str, Any], lake: Any) -> None:
    assert spark_read["statements"] == 3 * len(engine_lake.TABLES)  # table, MSCK REPAIR, _latest view
    assert "FileScan parquet" in spark_read["spark_reader"]["plan"]
    check(spark_read["spark_reader"], lake, SPARK_TYPES)


def test_the_athena_ddl_in_spark_with_hive_through_spark_reader(
    athena_read: dict[str, Any], lake: Any
) -> None:
    assert athena_read["statements"] == 2 * len(engine_lake.TABLES)  # external table, _latest view
    assert "FileScan parquet" in athena_read["spark_reader"]["plan"]
    check(athena_read["spark_reader"], lake, SPARK_TYPES)


def test_hive_reader_reads_every_column_and_timestamp(athena_read: dict[str, Any], lake: Any) -> None:
    """spark.sql.hive.convertMetastoreParquet=false: Hive's own Parquet reader, which fails on INT64
    timestamps, reads the INT96 ones as the same instants."""
    assert "Scan hive" in athena_read["hive_reader"]["plan"]
    check(athena_read["hive_reader"], lake, SPARK_TYPES)


def test_duckdb_reads_the_lake_on_s3(duckdb_read: dict[str, Any], lake: Any) -> None:
    assert duckdb_read["version"] == "1.5.5"
    check(duckdb_read["duckdb"], lake, DUCKDB_TYPES)
