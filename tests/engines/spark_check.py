"""Run in the pyspark environment (not by pytest): run printed DDL in a local Spark session and write
what it reads as JSON.

    python spark_check.py spark  DDL_FILE SPEC_FILE OUT_FILE   Spark SQL DDL, in-memory catalog
    python spark_check.py athena DDL_FILE SPEC_FILE OUT_FILE   Athena DDL, Hive support (Derby metastore);
                                                              read by Spark's and by Hive's Parquet reader

SPEC_FILE (JSON): ``tables``, ``timestamps`` ({table: [key, [columns]]}), ``lists`` ([[table, column]]),
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
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", f"{work}/warehouse")
        .config("spark.sql.variable.substitute", "false")  # keeps ${dt} of the projection template
    )
    if mode == "athena":
        builder = (
            builder.enableHiveSupport()
            .config("spark.hadoop.javax.jdo.option.ConnectionURL", f"jdbc:derby:;databaseName={work}/metastore_db;create=true")
            # Hive's reader takes INT96 as UTC (as parquet-mr writes it), whatever the JVM's zone
            .config("spark.hadoop.hive.parquet.timestamp.skip.conversion", "false")
        )
    return builder.getOrCreate()


def statements(ddl: str) -> list[str]:
    return [s.strip() for s in ddl.split(";\n") if s.strip().rstrip(";")]


def rows(spark: SparkSession, sql: str) -> list[list[Any]]:
    return [list(r) for r in spark.sql(sql).collect()]


def read(spark: SparkSession, spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"counts": {}, "latest": {}, "rows_read": {}, "types": {}, "instants": {}, "lists": {}}
    for table in spec["tables"]:
        out["counts"][table] = {dt: n for dt, n in rows(spark, f"SELECT dt, count(*) FROM {table} GROUP BY dt")}
        out["latest"][table] = rows(spark, f"SELECT count(*), min(dt), max(dt) FROM {table}_latest")[0]
        out["rows_read"][table] = len(spark.table(table).collect())  # every column through the reader
        out["types"][table] = {f.name: f.dataType.simpleString() for f in spark.table(table).schema.fields}
    for table, (key, columns) in spec["timestamps"].items():
        for column in columns:
            got = rows(spark, f"SELECT dt, {key}, unix_micros({column}) FROM {table} WHERE {column} IS NOT NULL")
            per_date: dict[str, dict[str, int]] = {}
            for dt, k, micros in got:
                per_date.setdefault(dt, {})[k] = micros
            out["instants"].setdefault(table, {})[column] = per_date
    for table, column in spec["lists"]:
        sql = f"SELECT sum(CASE WHEN {column} IS NULL THEN 0 ELSE size({column}) END) FROM {table}_latest"
        out["lists"][f"{table}.{column}"] = rows(spark, sql)[0][0]
    names = {t: f"{t}_latest" for t in ("tracks", "albums", "album_artists", "artists")}
    out["join"] = rows(spark, spec["join"].format(**names))[0]
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
    result: dict[str, Any] = {"statements": 0}
    for statement in statements(open(ddl_file).read()):
        spark.sql(statement)
        result["statements"] += 1
    if mode == "athena":  # no partition projection outside Athena: register the partitions
        for table in spec["tables"]:
            spark.sql(f"MSCK REPAIR TABLE {table}")
        for reader, convert in (("spark_reader", "true"), ("hive_reader", "false")):
            spark.conf.set("spark.sql.hive.convertMetastoreParquet", convert)
            result[reader] = read(spark, spec)
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
