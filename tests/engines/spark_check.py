"""Run in the pyspark environment (not by pytest): run printed DDL in a local Spark session and write
what it reads as JSON.

    python spark_check.py spark  DDL_FILE SPEC_FILE OUT_FILE   Spark SQL DDL, in-memory catalog
    python spark_check.py athena DDL_FILE SPEC_FILE OUT_FILE   Athena DDL, Hive support (Derby metastore);
                                                              read by Spark's and by Hive's Parquet reader

SPEC_FILE (JSON): ``tables``, ``timestamps`` ({table: [key SQL, [columns]]}), ``lists`` ([[table, column]]),
``join`` (SQL with {tracks}, {albums}, {album_artists}, {artists}), ``work`` (a scratch directory).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from pyspark.sql import SparkSession


def session(mode: str, work: str) -> SparkSession:
    builder = (
        SparkSession.builder.master("local[2]")
        .appName(f"spotify-catalog-{mode}")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", f"{work}/warehouse")
        .config("spark.sql.variable.substitute", "false")  # keeps ${dt} of the projection template
    )
    if mode == "athena":
        builder = (
            builder.enableHiveSupport()
            .config(
                "spark.hadoop.javax.jdo.option.ConnectionURL",
                f"jdbc:derby:;databaseName={work}/metastore_db;create=true",
            )
            # Hive's reader takes INT96 as UTC (as parquet-mr writes it), whatever the JVM's zone
            .config("spark.hadoop.hive.parquet.timestamp.skip.conversion", "false")
        )
    return builder.getOrCreate()


def statements(ddl: str) -> list[str]:
    return [s.strip() for s in ddl.split(";\n") if s.strip().rstrip(";")]


def rows(spark: SparkSession, sql: str) -> list[list[Any]]:
    return [list(r) for r in spark.sql(sql).collect()]


def union(parts: list[str]) -> str:
    return "\nUNION ALL\n".join(parts)


def read(spark: SparkSession, spec: dict[str, Any]) -> dict[str, Any]:
    """A few queries, each over every table (UNION ALL): a Spark job costs more than these rows."""
    tables = spec["tables"]
    out: dict[str, Any] = {
        "counts": {t: {} for t in tables},
        "latest": {},
        "rows_read": dict.fromkeys(tables, 0),
    }
    out["instants"] = {}
    # hash(*) takes every column: all of them go through the reader (a count alone would read none)
    sql = union([f"SELECT '{t}', dt, count(*), count(hash(*)) FROM {t} GROUP BY dt" for t in tables])
    for table, dt, count, hashed in rows(spark, sql):
        out["counts"].setdefault(table, {})[dt] = count
        out["rows_read"][table] += hashed
    sql = union([f"SELECT '{t}', count(*), min(dt), max(dt) FROM {t}_latest" for t in tables])
    out["latest"] = {table: rest for table, *rest in rows(spark, sql)}
    out["types"] = {
        t: {f.name: f.dataType.simpleString() for f in spark.table(t).schema.fields} for t in tables
    }
    sql = union(
        [
            f"SELECT '{t}', '{c}', dt, {key}, unix_micros({c}) FROM {t} WHERE {c} IS NOT NULL"
            for t, (key, columns) in spec["timestamps"].items()
            for c in columns
        ]
    )
    for table, column, dt, key, micros in rows(spark, sql):
        out["instants"].setdefault(table, {}).setdefault(column, {}).setdefault(dt, {})[key] = micros
    sql = union(
        [
            f"SELECT '{t}.{c}', sum(CASE WHEN {c} IS NULL THEN 0 ELSE size({c}) END) FROM {t}_latest"
            for t, c in spec["lists"]
        ]
    )
    out["lists"] = dict(rows(spark, sql))
    names = {t: f"{t}_latest" for t in ("tracks", "albums", "album_artists", "artists")}
    out["join"] = rows(spark, spec["join"].format(**names))[0]
    out["releases"] = rows(spark, spec["releases"].format(albums="albums_latest"))
    return out


def plan(spark: SparkSession, sql: str) -> str:
    """The physical plan: ``FileScan parquet`` is Spark's reader, ``Scan hive`` Hive's."""
    return str(spark.sql(sql)._jdf.queryExecution().executedPlan().toString())


def main() -> None:
    mode, ddl_file, spec_file, out_file = sys.argv[1:5]
    spec = json.loads(open(spec_file).read())
    started = time.monotonic()
    spark = session(mode, spec["work"])
    spark.sparkContext.setLogLevel("ERROR")
    result: dict[str, Any] = {"statements": 0, "timings": {"session": round(time.monotonic() - started, 1)}}
    for statement in statements(open(ddl_file).read()):
        spark.sql(statement)
        result["statements"] += 1
    result["timings"]["ddl"] = round(time.monotonic() - started, 1)
    if mode == "athena":  # no partition projection outside Athena: register the partitions
        for table in spec["tables"]:
            spark.sql(f"MSCK REPAIR TABLE {table}")
        result["timings"]["msck"] = round(time.monotonic() - started, 1)
        for reader, convert in (("spark_reader", "true"), ("hive_reader", "false")):
            spark.conf.set("spark.sql.hive.convertMetastoreParquet", convert)
            result[reader] = read(spark, spec)
            result["timings"][reader] = round(time.monotonic() - started, 1)
            result[reader]["plan"] = plan(spark, "SELECT * FROM tracks")
    else:
        result["spark_reader"] = read(spark, spec)
        result["spark_reader"]["plan"] = plan(spark, "SELECT * FROM tracks")
    result["seconds"] = round(time.monotonic() - started, 1)
    spark.stop()
    with open(out_file, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
