"""The lake on S3: a real S3-compatible server (moto in server mode) on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
from lake_helpers import PARQUET, as_read, database_rows, fill, lake_rows, small_metadata

from spotify_catalog import export as lake_export
from spotify_catalog.errors import UsageError
from spotify_catalog.storage.schema import metadata

DAY = date(2026, 11, 25)
PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")


def keys(bucket: str) -> list[str]:
    s3 = boto3.client("s3")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def read(lake: lake_export.Lake, table: str) -> pa.Table:
    return ds.dataset(
        f"{lake.root}/{table}", filesystem=lake.fs, format=PARQUET, partitioning=PARTITIONING
    ).to_table()


def test_round_trip_replace_and_other_dates(s3_bucket: str, sqlite_engine: sa.Engine) -> None:
    meta = small_metadata()
    items = meta.tables["items"]
    lake = lake_export.open_lake(f"s3://{s3_bucket}/catalog/")
    assert lake.uri == f"s3://{s3_bucket}/catalog"

    fill(sqlite_engine, meta, 30, seed=1)
    first = database_rows(sqlite_engine, items, with_raw=True)
    lake_export.export(sqlite_engine, meta, lake, date(2026, 11, 24), with_raw=True, batch_rows=8)
    lake_export.export(sqlite_engine, meta, lake, DAY, with_raw=True, batch_rows=8)
    fill(sqlite_engine, meta, 12, seed=2)
    second = database_rows(sqlite_engine, items, with_raw=True)
    done = lake_export.export(sqlite_engine, meta, lake, DAY, with_raw=True, batch_rows=8)
    assert done[0].uri == f"s3://{s3_bucket}/catalog/items/dt=2026-11-25/part-00000.parquet"

    assert keys(s3_bucket) == [
        f"catalog/{t}/dt={d}/part-00000.parquet"
        for t in ("items", "links")
        for d in ("2026-11-24", "2026-11-25")
    ]  # no staging objects, no directory markers inside the tables
    got = read(lake, "items")
    want = as_read(lake_export.arrow_schema(items, with_raw=True)).append(pa.field("dt", pa.string()))
    assert got.schema.equals(want)
    by_day = {
        day: lake_rows(got.filter(pa.compute.equal(got.column("dt"), day)), items)
        for day in ("2026-11-24", "2026-11-25")
    }
    assert by_day == {"2026-11-24": first, "2026-11-25": second}


def test_a_failure_midway_leaves_the_old_partition_readable(s3_bucket: str, sqlite_engine: sa.Engine) -> None:
    meta = small_metadata()
    lake = lake_export.open_lake(f"s3://{s3_bucket}/lake")
    fill(sqlite_engine, meta, 20, seed=1)
    lake_export.export(sqlite_engine, meta, lake, DAY)
    before = {t: read(lake, t) for t in ("items", "links")}
    before_keys = keys(s3_bucket)

    fill(sqlite_engine, meta, 60, seed=2)
    during: list[list[str]] = []

    def fail_in_links(table: str, rows: int) -> None:
        if table == "links":
            during.append(keys(s3_bucket))
            # what a reader sees while the export runs: the old partitions, complete
            assert read(lake, "items").equals(before["items"])
            if rows >= 30:
                raise RuntimeError("network gone")

    with pytest.raises(RuntimeError, match="network gone"):
        lake_export.export(sqlite_engine, meta, lake, DAY, batch_rows=10, progress=fail_in_links)
    assert any("/_staging/" in k for k in during[0])  # items was staged when links failed
    for table, old in before.items():
        assert read(lake, table).equals(old)
    assert keys(s3_bucket) == before_keys  # staging removed

    fill(sqlite_engine, meta, 60, seed=2)  # the next run succeeds and replaces both
    lake_export.export(sqlite_engine, meta, lake, DAY)
    assert read(lake, "links").num_rows == 60
    assert keys(s3_bucket) == before_keys


def test_a_stale_file_in_the_partition_is_removed(s3_bucket: str, sqlite_engine: sa.Engine) -> None:
    """Exporting the same date as JSONL after Parquet leaves only the JSONL file in the partition."""
    meta = small_metadata()
    fill(sqlite_engine, meta, 5)
    lake = lake_export.open_lake(f"s3://{s3_bucket}")
    lake_export.export(sqlite_engine, meta, lake, DAY, tables=["links"])
    lake_export.export(sqlite_engine, meta, lake, DAY, tables=["links"], fmt="jsonl", compression="none")
    assert keys(s3_bucket) == ["links/dt=2026-11-25/part-00000.jsonl"]
    body = boto3.client("s3").get_object(Bucket=s3_bucket, Key=keys(s3_bucket)[0])["Body"].read()
    assert body.count(b"\n") == 5


def test_a_missing_bucket_is_a_usage_error(s3_bucket: str) -> None:
    with pytest.raises(UsageError, match="bucket 'no-such-bucket' does not exist"):
        lake_export.open_lake("s3://no-such-bucket/x")


def test_the_command_writes_to_s3_from_the_aws_variables(s3_bucket: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from spotify_catalog.cli import main

    db = tmp_path / "catalog.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    fill(engine, metadata, 9)  # the real schema, which the command exports
    engine.dispose()
    result = CliRunner().invoke(
        main, ["export", "--db", f"sqlite:///{db}", "--to", f"s3://{s3_bucket}/lake", "--tables", "tracks"]
    )
    assert result.exit_code == 0, result.stderr
    today = datetime.now(UTC).date().isoformat()
    assert f"tracks: 9 rows -> s3://{s3_bucket}/lake/tracks/dt={today}/part-00000.parquet" in result.stderr
    assert keys(s3_bucket) == [f"lake/tracks/dt={today}/part-00000.parquet"]
    assert "testing-secret" not in result.stderr + result.stdout

    result = CliRunner().invoke(main, ["export", "--db", f"sqlite:///{db}", "--to", "s3://missing-bucket/x"])
    assert result.exit_code == 2
    assert result.stderr == "Error: --to s3://missing-bucket/x: bucket 'missing-bucket' does not exist\n"
