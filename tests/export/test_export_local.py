"""The lake on local disk: round trips through pyarrow.dataset and DuckDB, atomic replace, failures."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from lake_helpers import PARQUET, as_read, database_rows, fill, lake_rows, small_metadata

from spotify_catalog import export as lake_export
from spotify_catalog.errors import SpotifyCatalogError, UsageError

DAY = date(2026, 11, 25)
PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")


def read_partitioned(root: Path, table: str) -> pa.Table:
    return ds.dataset(root / table, format=PARQUET, partitioning=PARTITIONING).to_table()


def test_round_trip_every_row_and_type(db_url: str, tmp_path: Path) -> None:
    """SQLite, PostgreSQL, MariaDB -> Parquet -> pyarrow.dataset and DuckDB: same rows, same types."""
    meta = small_metadata()
    engine = sa.create_engine(db_url)
    try:
        fill(engine, meta, 40)
        lake = lake_export.open_lake(str(tmp_path / "lake"))
        done = lake_export.export(engine, meta, lake, DAY, with_raw=True, batch_rows=3, row_group_rows=7)
        assert [(d.table, d.rows) for d in done] == [("items", 40), ("links", 40)]
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for table in (meta.tables["items"], meta.tables["links"]):
            expected = database_rows(engine, table, with_raw=True)
            files = list((tmp_path / "lake" / table.name).rglob("*.parquet"))
            assert [f.relative_to(tmp_path / "lake") for f in files] == [
                Path(table.name) / "dt=2026-11-25" / "part-00000.parquet"
            ]
            info = pq.ParquetFile(files[0]).metadata  # streamed: batches of 3 gathered into groups >= 7
            assert [info.row_group(i).num_rows for i in range(info.num_row_groups)] == [9, 9, 9, 9, 4]

            got = read_partitioned(tmp_path / "lake", table.name)
            want_schema = as_read(lake_export.arrow_schema(table, with_raw=True))
            want_schema = want_schema.append(pa.field("dt", pa.string()))
            assert got.schema.equals(want_schema)  # types and nullability
            assert set(got.column("dt").to_pylist()) == {"2026-11-25"}
            assert lake_rows(got, table) == expected

            rel = con.execute(
                f"SELECT * FROM read_parquet('{tmp_path}/lake/{table.name}/*/*.parquet', "
                "hive_partitioning=true)"
            )
            names = [d[0] for d in rel.description]
            duck = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rel.fetchall()])
            assert lake_rows(duck, table) == expected
        types = dict(
            con.execute(
                f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                f"read_parquet('{tmp_path}/lake/items/*/*.parquet', hive_partitioning=false))"
            ).fetchall()
        )
        assert types == {
            "id": "VARCHAR",
            "name": "VARCHAR",
            "count": "INTEGER",
            "small": "SMALLINT",
            "big": "BIGINT",
            "flag": "BOOLEAN",
            "score": "DOUBLE",
            "day": "DATE",
            "seen_at": "TIMESTAMP",  # INT96: UTC, the printed DDL makes it WITH TIME ZONE
            "markets": "VARCHAR[]",
            "numbers": "INTEGER[]",
            "extra": "VARCHAR",
            "raw": "VARCHAR",
            "kind": "VARCHAR",
        }
    finally:
        engine.dispose()


def test_raw_only_with_the_flag_and_bookkeeping_left_out(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    meta = small_metadata()
    fill(sqlite_engine, meta, 5)
    lake = lake_export.open_lake(str(tmp_path))
    done = lake_export.export(sqlite_engine, meta, lake, DAY)
    assert [d.table for d in done] == ["items", "links"]
    assert not (tmp_path / "_runs").exists()
    assert "raw" not in read_partitioned(tmp_path, "items").column_names
    only = lake_export.export(sqlite_engine, meta, lake, DAY, tables=["_runs"])
    assert [(d.table, d.rows) for d in only] == [("_runs", 5)]


def test_same_date_replaced_other_dates_untouched(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    meta = small_metadata()
    items = meta.tables["items"]
    tmp_path = tmp_path / "lake"
    lake = lake_export.open_lake(str(tmp_path))
    fill(sqlite_engine, meta, 10, seed=1)
    lake_export.export(sqlite_engine, meta, lake, date(2026, 11, 24))
    first = database_rows(sqlite_engine, items)
    lake_export.export(sqlite_engine, meta, lake, DAY)

    fill(sqlite_engine, meta, 4, seed=2)  # the catalog changed
    lake_export.export(sqlite_engine, meta, lake, DAY, tables=["items"])
    second = database_rows(sqlite_engine, items)
    assert second != first[:4]

    got = read_partitioned(tmp_path, "items")
    by_day = {
        day: lake_rows(got.filter(pa.compute.equal(got.column("dt"), day)), items)
        for day in ("2026-11-24", "2026-11-25")
    }
    assert by_day == {"2026-11-24": first, "2026-11-25": second}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items", "links"]  # no staging left
    assert sorted(p.name for p in (tmp_path / "items").iterdir()) == ["dt=2026-11-24", "dt=2026-11-25"]


def test_a_failure_midway_leaves_the_old_partitions(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    meta = small_metadata()
    tmp_path = tmp_path / "lake"
    lake = lake_export.open_lake(str(tmp_path))
    fill(sqlite_engine, meta, 30, seed=1)
    lake_export.export(sqlite_engine, meta, lake, DAY)
    before = {t: read_partitioned(tmp_path, t) for t in ("items", "links")}

    fill(sqlite_engine, meta, 50, seed=2)
    seen: list[tuple[str, int]] = []

    def fail_in_links(table: str, rows: int) -> None:  # items fully staged, links half written
        seen.append((table, rows))
        if table == "links" and rows >= 20:
            raise RuntimeError("disk pulled out")

    with pytest.raises(RuntimeError, match="disk pulled out"):
        lake_export.export(sqlite_engine, meta, lake, DAY, batch_rows=10, progress=fail_in_links)
    assert ("items", 50) in seen
    for table, old in before.items():
        assert read_partitioned(tmp_path, table).equals(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items", "links"]


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_csv_and_jsonl_read_back_in_duckdb(
    sqlite_engine: sa.Engine, tmp_path: Path, compression: str
) -> None:
    meta = small_metadata()
    items = meta.tables["items"]
    fill(sqlite_engine, meta, 25)
    expected = database_rows(sqlite_engine, items)
    lake = lake_export.open_lake(str(tmp_path))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for fmt in ("csv", "jsonl"):
        done = lake_export.export(
            sqlite_engine, meta, lake, DAY, fmt=fmt, compression=compression, batch_rows=9
        )
        name = lake_export.file_name(fmt, compression)
        assert done[0].uri == f"{tmp_path}/items/dt=2026-11-25/{name}"
        reader = "read_csv" if fmt == "csv" else "read_json"
        quoted = ", allow_quoted_nulls=false" if fmt == "csv" else ""  # "" is an empty string, not NULL
        rel = con.execute(
            f"SELECT * FROM {reader}('{tmp_path}/items/*/{name}', hive_partitioning=true{quoted}) ORDER BY id"
        )
        names = [d[0] for d in rel.description]
        got = [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
        assert len(got) == 25
        assert [g["id"] for g in got] == [e["id"] for e in expected]
        assert [g["count"] for g in got] == [e["count"] for e in expected]
        assert [g["seen_at"] for g in got] == [e["seen_at"] for e in expected]
        markets = [g["markets"] for g in got]
        if fmt == "csv":  # CSV holds lists as JSON text
            markets = [None if m is None else json.loads(m) for m in markets]
        assert markets == [e["markets"] for e in expected]
        assert [g["name"] for g in got] == [e["name"] for e in expected]


def test_the_printed_duckdb_ddl_counts_the_lake(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    meta = small_metadata()
    lake = lake_export.open_lake(str(tmp_path))
    fill(sqlite_engine, meta, 12, seed=1)
    lake_export.export(sqlite_engine, meta, lake, date(2026, 11, 24))
    fill(sqlite_engine, meta, 5, seed=2)
    lake_export.export(sqlite_engine, meta, lake, DAY)
    con = duckdb.connect()
    con.execute(lake_export.ddl(meta, lake.uri, "duckdb"))
    assert con.execute("SELECT dt, count(*) FROM items GROUP BY dt ORDER BY dt").fetchall() == [
        ("2026-11-24", 12),
        ("2026-11-25", 5),
    ]
    assert con.execute("SELECT count(*) FROM links").fetchone() == (17,)
    assert con.execute("SELECT count(*) FROM items WHERE 'US' = ANY(markets)").fetchone()[0] > 0


def test_an_empty_table_is_a_valid_empty_file(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    meta = small_metadata()
    fill(sqlite_engine, meta, 3)
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    lake_export.export(sqlite_engine, meta, lake, DAY)
    with sqlite_engine.begin() as conn:
        conn.execute(meta.tables["items"].delete())
    done = lake_export.export(sqlite_engine, meta, lake, DAY)
    assert [(d.table, d.rows) for d in done] == [("items", 0), ("links", 3)]
    got = read_partitioned(tmp_path / "lake", "items")
    assert got.num_rows == 0
    assert got.schema.field("count").type == pa.int32()

    with sqlite_engine.begin() as conn:  # a database with no rows at all replaces nothing
        conn.execute(meta.tables["links"].delete())
    with pytest.raises(UsageError, match=r"nothing to export: items, links in sqlite:///\S+ hold no rows"):
        lake_export.export(sqlite_engine, meta, lake, DAY)
    assert read_partitioned(tmp_path / "lake", "links").num_rows == 3


def test_bad_destinations_and_databases(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    meta = small_metadata()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        lake_export.open_lake(str(tmp_path / "file"))
    with pytest.raises(UsageError, match="directory or an s3://"):
        lake_export.open_lake("gs://bucket/x")
    with pytest.raises(UsageError, match="needs a bucket"):
        lake_export.open_lake("s3:///x")
    with pytest.raises(SpotifyCatalogError, match="cannot create"):
        lake_export.open_lake(str(tmp_path / "file" / "below"))
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    with pytest.raises(UsageError, match="has no table items, links"):
        lake_export.export(sqlite_engine, meta, lake, DAY)
    with pytest.raises(UsageError, match="unknown table nope"):
        lake_export.export(sqlite_engine, meta, lake, DAY, tables=["nope"])
    with pytest.raises(UsageError, match="snappy is for Parquet"):
        lake_export.export(sqlite_engine, meta, lake, DAY, fmt="csv", compression="snappy")
    assert list((tmp_path / "lake").iterdir()) == []


def test_all_tables_are_read_as_one_snapshot(db_url: str, tmp_path: Path) -> None:
    """Rows a crawl commits while the export runs are in none of the exported tables."""
    from spotify_catalog.storage.engine import create_engine  # WAL mode on SQLite, as the crawler uses it

    meta = small_metadata()
    engine = create_engine(db_url)
    writer = create_engine(db_url)
    try:
        fill(engine, meta, 10)
        links = meta.tables["links"]

        def crawl_meanwhile(table: str, rows: int) -> None:
            if (table, rows) == ("items", 4):  # after the first batch of the first table
                with writer.begin() as conn:
                    conn.execute(links.insert(), [{"item_id": "new", "position": 0, "target": "x"}])

        lake = lake_export.open_lake(str(tmp_path / "lake"))
        done = lake_export.export(engine, meta, lake, DAY, batch_rows=4, progress=crawl_meanwhile)
        assert [(d.table, d.rows) for d in done] == [("items", 10), ("links", 10)]
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(links)).scalar() == 11
    finally:
        engine.dispose()
        writer.dispose()
