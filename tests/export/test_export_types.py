"""Pure parts of the exporter: the type mapping, table selection, file names, the DDL types."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from required import unavailable
from spotify_catalog import export as lake_export
from spotify_catalog.errors import UsageError
from spotify_catalog.export import lake as lake_layout


class Utc(sa.TypeDecorator[datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True


@pytest.mark.parametrize(
    ("sa_type", "info", "arrow"),
    [
        (sa.Integer(), {}, pa.int32()),
        (sa.SmallInteger(), {}, pa.int16()),
        (sa.BigInteger(), {}, pa.int64()),
        (sa.Boolean(), {}, pa.bool_()),
        (sa.Float(), {}, pa.float64()),
        (sa.Float(precision=10), {}, pa.float32()),
        (sa.Numeric(12, 3), {}, pa.decimal128(12, 3)),
        (sa.Numeric(), {}, pa.float64()),
        (sa.String(2), {}, pa.string()),
        (sa.Text(), {}, pa.string()),
        (sa.Enum("a", "b"), {}, pa.string()),
        (sa.Uuid(), {}, pa.string()),
        (sa.Date(), {}, pa.date32()),
        (sa.DateTime(), {}, pa.timestamp("us", tz="UTC")),
        (Utc(), {}, pa.timestamp("us", tz="UTC")),
        (sa.Time(), {}, pa.time64("us")),
        (sa.LargeBinary(), {}, pa.binary()),
        (sa.JSON(), {}, pa.string()),
        (sa.JSON(), {"list_of": sa.String(2)}, pa.list_(pa.string())),
        (sa.JSON(), {"list_of": sa.Integer()}, pa.list_(pa.int32())),
        (sa.JSON(), {"list_of": sa.JSON()}, pa.list_(pa.string())),
    ],
)
def test_arrow_type(sa_type: sa.types.TypeEngine[Any], info: dict[str, Any], arrow: pa.DataType) -> None:
    assert lake_export.arrow_type(sa_type, list_of=info.get("list_of")) == arrow


def test_an_unknown_type_is_an_error_not_a_guess() -> None:
    with pytest.raises(TypeError, match="no Arrow type"):
        lake_export.arrow_type(sa.ARRAY(sa.Integer))


def test_schema_keeps_order_and_nullability_and_drops_raw() -> None:
    table = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("id", sa.String(5), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("raw", sa.JSON),
        sa.Column("price", sa.Numeric(6, 2)),
    )
    assert lake_export.arrow_schema(table) == pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("n", pa.int32(), nullable=False),
            pa.field("price", pa.decimal128(6, 2)),
        ]
    )
    assert lake_export.arrow_schema(table, with_raw=True).names == ["id", "n", "raw", "price"]


def test_batches_from_a_database_with_lists_of_objects_and_decimals(tmp_path: Path) -> None:
    meta = sa.MetaData()
    table = sa.Table(
        "t",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("images", sa.JSON, info={"list_of": sa.JSON()}),
        sa.Column("price", sa.Numeric(6, 2, asdecimal=True)),
    )
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db'}")
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text('INSERT INTO t VALUES (2, \'[{"url": "b", "h": 1}]\', \'3.50\')'))
        conn.execute(sa.text("INSERT INTO t VALUES (1, NULL, NULL)"))
        conn.execute(sa.text("INSERT INTO t VALUES (3, '[]', '0.01')"))
    with engine.connect() as conn:
        batches = list(lake_export.iter_batches(conn, table, batch_rows=2))
    engine.dispose()
    assert [b.num_rows for b in batches] == [2, 1]
    got = pa.Table.from_batches(batches).to_pylist()
    assert got == [
        {"id": 1, "images": None, "price": None},
        {"id": 2, "images": ['{"h":1,"url":"b"}'], "price": Decimal("3.50")},
        {"id": 3, "images": [], "price": Decimal("0.01")},
    ]


def test_table_selection() -> None:
    meta = sa.MetaData()
    for name in ("b", "a", "_runs"):
        sa.Table(name, meta, sa.Column("id", sa.Integer, primary_key=True))
    assert [t.name for t in lake_export.select_tables(meta, None)] == ["a", "b"]
    assert [t.name for t in lake_export.select_tables(meta, ["b", "_runs", "b"])] == ["b", "_runs"]
    with pytest.raises(UsageError, match="unknown table x, y; tables: a, b"):
        lake_export.select_tables(meta, ["a", "x", "y"])


def test_file_names_and_hive_types() -> None:
    assert lake_export.file_name("parquet", "zstd") == "part-00000.parquet"
    assert lake_export.file_name("csv", "none") == "part-00000.csv"
    assert lake_export.file_name("jsonl", "zstd") == "part-00000.jsonl.zst"
    assert lake_export.hive_type(pa.list_(pa.int64())) == "array<bigint>"
    assert lake_export.hive_type(pa.timestamp("us", tz="UTC")) == "timestamp"
    assert lake_export.hive_type(pa.decimal128(6, 2)) == "decimal(6,2)"
    assert lake_export.hive_type(pa.date32()) == "date"


def test_duckdb_ddl_quotes_the_location() -> None:
    meta = sa.MetaData()
    sa.Table("t", meta, sa.Column("id", sa.Integer, primary_key=True))
    assert lake_export.ddl(meta, "/data/o'brien/", "duckdb") == (
        "CREATE OR REPLACE VIEW \"t\" AS SELECT * FROM read_parquet('/data/o''brien/t/*/*.parquet', "
        "hive_partitioning = true, hive_types = {'dt': VARCHAR});\n"
        "CREATE OR REPLACE VIEW t_latest AS\nSELECT * FROM t WHERE dt = (SELECT max(dt) FROM t);\n"
    )
    with pytest.raises(UsageError, match="unknown DDL dialect"):
        lake_export.ddl(meta, "/x", "hive")


def test_directories_are_swapped_in_one_step(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f").write_text("new")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "f").write_text("old")
    if not lake_layout.exchange(tmp_path / "new", tmp_path / "old"):
        unavailable("no renameat2(RENAME_EXCHANGE) here")
    assert (tmp_path / "old" / "f").read_text() == "new"
    assert (tmp_path / "new" / "f").read_text() == "old"


def test_latest_views_in_every_dialect() -> None:
    """``<table>_latest`` after each table: plain names bare (Trino has no backticks, Spark takes double
    quotes for a string), other names quoted for the engine; DuckDB reads the INT96 timestamps as UTC."""
    meta = sa.MetaData()
    sa.Table(
        "Odd-Name",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True)),
        sa.Column('say "hi"', sa.DateTime()),
    )
    sa.Table("plain", meta, sa.Column("id", sa.Integer, primary_key=True))
    athena = lake_export.ddl(meta, "s3://b/l", "athena")
    spark = lake_export.ddl(meta, "s3a://b/l", "spark")
    duck = lake_export.ddl(meta, "s3://b/l", "duckdb")
    for text, quote in ((athena, '"'), (spark, "`"), (duck, '"')):
        odd = f"{quote}Odd-Name{quote}"
        assert (
            f"CREATE OR REPLACE VIEW {quote}Odd-Name_latest{quote} AS\n"
            f"SELECT * FROM {odd} WHERE dt = (SELECT max(dt) FROM {odd});"
        ) in text
        latest = "SELECT * FROM plain WHERE dt = (SELECT max(dt) FROM plain);\n"
        assert text.endswith(f"CREATE OR REPLACE VIEW plain_latest AS\n{latest}")
    assert spark.count("MSCK REPAIR TABLE") == 2
    assert spark.index("MSCK REPAIR TABLE `plain`;") < spark.index("CREATE OR REPLACE VIEW plain_latest")
    assert (
        'CREATE OR REPLACE VIEW "Odd-Name" AS SELECT * REPLACE (timezone(\'UTC\', "seen_at") AS "seen_at", '
        'timezone(\'UTC\', "say ""hi""") AS "say ""hi""") '
        "FROM read_parquet('s3://b/l/Odd-Name/*/*.parquet', "
    ) in duck
    assert 'CREATE OR REPLACE VIEW "plain" AS SELECT * FROM read_parquet(' in duck


def test_timestamps_are_int96_in_parquet(tmp_path: Path) -> None:
    """Hive's Parquet reader takes only INT96 timestamps (an INT64 one fails with a ClassCastException);
    the Arrow schema stays timestamp[us, UTC], the files hold INT96."""
    meta = sa.MetaData()
    table = sa.Table(
        "t",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("day", sa.Date),
    )
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    moment = datetime(2026, 11, 25, 10, 17, 3, 123456)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [{"id": 1, "at": moment, "day": moment.date()}, {"id": 2, "at": None, "day": None}],
        )
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    lake_export.export(engine, meta, lake, date(2026, 11, 25))
    engine.dispose()
    parquet = pq.ParquetFile(tmp_path / "lake" / "t" / "dt=2026-11-25" / "part-00000.parquet")
    physical = {c.name: c.physical_type for c in parquet.schema}
    assert physical == {"id": "INT32", "at": "INT96", "day": "INT32"}
    assert parquet.schema_arrow.field("at").type == pa.timestamp("ns")  # INT96 carries no zone
    got = pq.read_table(tmp_path / "lake" / "t", coerce_int96_timestamp_unit="us")
    assert got.column("at").to_pylist() == [moment, None]  # the instant, in UTC


def _dictionary_encoded(path: Path) -> dict[str, bool]:
    """Per Parquet column (leaf path): whether every row group wrote it with a dictionary page."""
    meta = pq.ParquetFile(path).metadata
    columns = [meta.row_group(0).column(i).path_in_schema for i in range(meta.num_columns)]
    return {
        name: all(
            meta.row_group(g).column(i).dictionary_page_offset is not None
            and "RLE_DICTIONARY" in meta.row_group(g).column(i).encodings
            for g in range(meta.num_row_groups)
        )
        for i, name in enumerate(columns)
    }


def test_dictionary_encoding_only_where_values_repeat(tmp_path: Path) -> None:
    """A Parquet dictionary for columns whose values repeat (lists' elements too); none for a lone key,
    a ``unique`` column, JSON objects and columns marked ``info={"distinct": True}``; ``False`` there
    keeps the dictionary even on a key. Checked in the files written, read back through pyarrow."""
    meta = sa.MetaData()
    table = sa.Table(
        "t",
        meta,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.Text, info={"distinct": True}),
        sa.Column("code", sa.String(12), unique=True),
        sa.Column("kind", sa.String(16)),
        sa.Column("count", sa.Integer),
        sa.Column("markets", sa.JSON, info={"list_of": sa.String(2)}),
        sa.Column("raw", sa.JSON),
        sa.Column("extra", sa.JSON),
        sa.Column("at", sa.DateTime(timezone=True)),
    )
    links = sa.Table(
        "links",
        meta,
        sa.Column("item_id", sa.String(40), primary_key=True),  # one of two key columns: repeats
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("target", sa.String(40), info={"distinct": False}),
    )
    assert lake_export.dictionary_columns(table, with_raw=True) == [
        "kind",
        "count",
        "markets.list.element",
        "at",
    ]
    assert lake_export.dictionary_columns(table) == ["kind", "count", "markets.list.element", "at"]
    assert lake_export.dictionary_columns(links) == ["item_id", "position", "target"]

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    meta.create_all(engine)
    moment = datetime(2026, 11, 25, 10, 17, 3)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "id": f"id{i:04d}",
                    "name": f"name {i}",
                    "code": f"c{i}",
                    "kind": ["album", "single"][i % 2],
                    "count": i % 3,
                    "markets": ["US", "GB"][: i % 3],
                    "raw": {"i": i},
                    "extra": {"j": i},
                    "at": moment,
                }
                for i in range(50)
            ],
        )
        conn.execute(
            links.insert(), [{"item_id": f"id{i // 3}", "position": i % 3, "target": "x"} for i in range(9)]
        )
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    lake_export.export(
        engine, meta, lake, date(2026, 11, 25), with_raw=True, row_group_rows=20, batch_rows=10
    )
    engine.dispose()
    partition = tmp_path / "lake" / "{}" / "dt=2026-11-25" / "part-00000.parquet"
    assert pq.ParquetFile(str(partition).format("t")).metadata.num_row_groups == 3
    assert _dictionary_encoded(Path(str(partition).format("t"))) == {
        "id": False,
        "name": False,
        "code": False,
        "kind": True,
        "count": True,
        "markets.list.element": True,
        "raw": False,
        "extra": False,
        "at": True,
    }
    assert _dictionary_encoded(Path(str(partition).format("links"))) == dict.fromkeys(
        ["item_id", "position", "target"], True
    )
    got = pq.read_table(str(partition).format("t"))
    assert got.column("kind").to_pylist()[:3] == ["album", "single", "album"]
    assert got.column("markets").to_pylist()[:3] == [[], ["US"], ["US", "GB"]]


def test_the_catalog_schema_writes_dictionaries_where_values_repeat() -> None:
    """The project's tables: ids, names, URLs, codes and raw JSON without a dictionary; album ids,
    types, dates, markets and timestamps with one."""
    from spotify_catalog.storage.schema import albums, artist_genres, tracks

    assert lake_export.dictionary_columns(tracks, with_raw=True) == [
        "album_id",
        "disc_number",
        "track_number",
        "explicit",
        "is_local",
        "is_playable",
        "popularity",
        "available_markets.list.element",
        "linked_from_id",
        "restriction",
        "detail",
        "fetched_at",
    ]
    album_dictionary = lake_export.dictionary_columns(albums)
    for kept in ("album_type", "release_date", "release_date_precision", "label", "copyrights.list.element"):
        assert kept in album_dictionary
    for dropped in ("id", "name", "upc", "uri", "href", "spotify_url", "image_url"):
        assert dropped not in album_dictionary
    assert lake_export.dictionary_columns(artist_genres) == ["artist_id", "genre"]


def test_partial_dates_are_the_first_day_of_their_year_or_month() -> None:
    texts = ["1987", "2012-11", "2012-11-16", "2024-02-29", None, "0000", "0000-00-00", "2023-02-30"]
    texts += ["2023-13", "2023-1-5", "", "soon", "2012-11-16T00:00"]
    got = lake_export.partial_dates(pa.array(texts, pa.string())).to_pylist()
    assert got == [date(1987, 1, 1), date(2012, 11, 1), date(2012, 11, 16), date(2024, 2, 29)] + [None] * 9


def test_a_partial_date_column_is_a_date_then_its_text_in_the_lake() -> None:
    meta = sa.MetaData()
    table = sa.Table(
        "t",
        meta,
        sa.Column("id", sa.String(10), primary_key=True),
        sa.Column("day", sa.String(10), info={lake_export.PARTIAL_DATE: True}),
        sa.Column("day_precision", sa.String(8)),
    )
    schema = lake_export.arrow_schema(table)
    assert schema.names == ["id", "day", "day_text", "day_precision"]
    assert schema.field("day").type == pa.date32()
    read = lake_export.read_schema(table)
    batch = pa.RecordBatch.from_pylist(
        [
            {"id": "a", "day": "2001-04", "day_precision": "month"},
            {"id": "b", "day": None, "day_precision": None},
        ],
        schema=read,
    )
    lake = lake_export.to_lake(table, batch, schema)
    assert lake.to_pylist() == [
        {"id": "a", "day": date(2001, 4, 1), "day_text": "2001-04", "day_precision": "month"},
        {"id": "b", "day": None, "day_text": None, "day_precision": None},
    ]
    assert lake_export.dictionary_columns(table) == ["day", "day_text", "day_precision"]
