"""Reading for the lake: ADBC (SQLite, PostgreSQL) and the driver's cursor (SQLite, PostgreSQL) give
what SQLAlchemy's rows give; each read checks which reader was chosen."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from lake_helpers import database_rows, fill, lake_rows, small_metadata

from spotify_catalog import export as lake_export
from spotify_catalog.errors import StorageError
from spotify_catalog.export import arrays, read_adbc, read_mysql, read_sqlite
from spotify_catalog.export.read_driver import RowsReader
from spotify_catalog.storage.engine import create_engine
from spotify_catalog.storage.schema import metadata

ADBC_SQLITE = "through ADBC (adbc-driver-sqlite)"
WRITE = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"


def read(engine: sa.Engine, table: sa.Table, reader: str, *, with_raw: bool = False) -> pa.Table:
    """``table`` read in batches of 3 by the reader chosen for a connection of ``engine``, which must
    be ``reader``."""
    options = lake_export.ReadOptions(with_raw=with_raw, batch_rows=3)
    with engine.connect() as conn:
        chosen = lake_export.choose_reader(conn, table, options)
        try:
            assert chosen.name == reader
            batches = list(chosen.batches(table))
        finally:
            chosen.close()
    return pa.Table.from_batches(batches, options.schema(table))


def read_as_export(
    engine: sa.Engine, table: sa.Table, reader: str, *, batch_rows: int = 3, with_raw: bool = False
) -> pa.Table:
    """``table`` read as the export reads it (on SQLite: ADBC where it can), by ``reader`` (checked),
    in batches of exactly ``batch_rows`` (the last one shorter)."""
    options = lake_export.ReadOptions(with_raw=with_raw, batch_rows=batch_rows)
    with lake_export.reading(engine, [table], options) as choose:
        chosen = choose(table)
        assert chosen.name == reader
        batches = list(chosen.batches(table))
    assert all(b.num_rows == batch_rows for b in batches[:-1])
    assert not batches or 0 < batches[-1].num_rows <= batch_rows
    return pa.Table.from_batches(batches, options.schema(table))


def assert_as_sqlalchemy_gives(
    engine: sa.Engine, meta: sa.MetaData, fast_read: Callable[[sa.Engine, sa.Table], pa.Table]
) -> None:
    """Each table of ``meta`` (40 rows, with ``raw``) read by ``fast_read`` equals what SQLAlchemy's
    rows give."""
    options = lake_export.ReadOptions(with_raw=True, batch_rows=3)
    for table in (meta.tables["items"], meta.tables["links"]):
        fast = fast_read(engine, table)
        with engine.connect() as conn:
            generic = pa.Table.from_batches(RowsReader(conn, options).batches(table), options.schema(table))
        assert fast.num_rows == 40
        assert fast.equals(generic), table.name


@pytest.fixture
def adbc_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="spotify_catalog.export")
    return caplog


@pytest.mark.parametrize(
    ("backend", "reader"),
    [
        ("sqlite", "cursor"),
        ("postgresql", "adbc-postgresql"),
        ("postgresql", "cursor"),
        ("mysql", "mysql-csv"),
    ],
)
def test_the_reader_chosen_gives_what_sqlalchemy_rows_give(
    backend: str, reader: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader chosen for a connection, the driver's cursor on SQLite, ADBC on PostgreSQL (its
    cursor without the ADBC driver), the server's CSV lines on MariaDB, gives the very batches
    SQLAlchemy's rows give. (ADBC SQLite, chosen for a whole export: below.)"""
    if backend == "postgresql" and reader == "cursor":
        monkeypatch.setattr(read_adbc, "postgresql_driver", lambda: None)
    servers = {"postgresql": "postgres_url", "mysql": "mysql_url"}
    url = (
        f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite" else request.getfixturevalue(servers[backend])
    )
    meta = small_metadata()
    engine = sa.create_engine(url)
    try:
        fill(engine, meta, 40)
        assert_as_sqlalchemy_gives(engine, meta, lambda e, t: read(e, t, reader, with_raw=True))
    finally:
        engine.dispose()


@pytest.mark.parametrize("path", ["adbc", "sqlite3"])
def test_values_after_a_batch_of_nulls_keep_their_types(
    tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch, adbc_logs: pytest.LogCaptureFixture
) -> None:
    """A column that is NULL in the first batches (where ADBC, guessing types from the first batch,
    would settle on int64) still reads as text, timestamps, dates, booleans, floats and lists, and a
    JSON number (held as a number: a JSON column's affinity is NUMERIC) as its text."""
    monkeypatch.setattr(read_sqlite, "ADBC_SQLITE_BATCH_ROWS", 2)  # the NULLs span several reads
    meta = sa.MetaData()
    table = sa.Table(
        "t",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(20)),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("day", sa.Date),
        sa.Column("flag", sa.Boolean),
        sa.Column("score", sa.Float),
        sa.Column("markets", sa.JSON, info={"list_of": sa.String(2)}),
        sa.Column("numbers", sa.JSON, info={"list_of": sa.Integer()}),
        sa.Column("images", sa.JSON, info={"list_of": sa.JSON()}),
        sa.Column("extra", sa.JSON),
    )
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    meta.create_all(engine)
    at = datetime(2026, 11, 25, 12, 30, 1, 250, tzinfo=UTC)
    full = {"name": "x", "at": at, "day": date(2026, 11, 25), "flag": True, "score": 0.25, "markets": ["SE"],
            "numbers": [1, -2], "images": [{"url": "u", "w": 1}], "extra": 5}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, **dict.fromkeys(full)} for i in range(7)])
        conn.execute(table.insert(), [{"id": 7, **full}, {"id": 8, **full, "flag": False, "markets": []}])
        conn.exec_driver_sql("UPDATE t SET extra = NULL WHERE id < 7")  # SQL NULL, not JSON null
    with engine.connect() as conn:  # a JSON number is held as a number
        assert conn.exec_driver_sql("SELECT typeof(extra) FROM t WHERE id = 7").scalar() == "integer"
    engine.dispose()
    arrow = read_as_export(engine, table, "adbc-sqlite") if path == "adbc" else read(engine, table, "cursor")
    got = arrow.to_pylist()
    engine.dispose()
    assert (ADBC_SQLITE in adbc_logs.text) == (path == "adbc")
    assert got[:7] == [{"id": i, **dict.fromkeys(full)} for i in range(7)]
    assert got[7] == {"id": 7, **full, "images": ['{"url":"u","w":1}'], "extra": "5"}
    assert got[8]["flag"] is False
    assert got[8]["markets"] == []


def test_list_texts_are_parsed_in_one_call_or_one_at_a_time() -> None:
    target = pa.list_(pa.string())
    texts = ['["a","b"]', None, "[]"]
    assert arrays.list_array(texts, target=target, objects=False).to_pylist() == [["a", "b"], None, []]
    parsed = [["a"], None, '["c"]']  # a driver that hands JSON back parsed (or some of it)
    assert arrays.list_array(parsed, target=target, objects=False).to_pylist() == [["a"], None, ["c"]]
    objects = ['[{"b":1,"a":2}]', None]
    assert arrays.list_array(objects, target=target, objects=True).to_pylist() == [
        ['{"a":2,"b":1}'],
        None,
    ]


class _Reader:
    """An Arrow reader stand-in: ``n`` batches of one row (the value is the batch's number), an error
    instead of batch ``fail_at``; counts its reads."""

    def __init__(self, n: int, *, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.reads = 0
        self.closed = False

    def read_next_batch(self) -> pa.RecordBatch:
        i = self.reads
        self.reads += 1
        if i == self.fail_at:
            raise OSError("connection lost\nsecond line")
        if i >= self.n:
            raise StopIteration
        return pa.RecordBatch.from_pydict({"i": [i]})

    def close(self) -> None:
        self.closed = True


def _values(batches: Iterable[pa.RecordBatch]) -> list[int]:
    return [v for b in batches for v in b.column(0).to_pylist()]


def test_read_ahead_keeps_the_order_and_reads_at_most_depth_batches_ahead() -> None:
    reader = _Reader(10)
    batches = read_adbc.read_ahead(reader, (), depth=4)
    assert _values([next(batches), next(batches)]) == [0, 1]
    deadline = time.monotonic() + 10
    while reader.reads < 6 and time.monotonic() < deadline:  # 2 handed on, 4 read ahead
        time.sleep(0.01)
    time.sleep(0.1)
    assert reader.reads == 6
    assert _values(batches) == list(range(2, 10))
    assert reader.closed
    assert reader.reads == 11  # the end seen once; the reads queued after it do not touch the reader


def test_read_ahead_closed_early_stops_reading_and_closes_the_reader() -> None:
    reader = _Reader(100)
    batches = read_adbc.read_ahead(reader, (), depth=4)
    assert _values([next(batches)]) == [0]
    batches.close()
    assert reader.closed
    assert reader.reads <= 6  # what was queued when it closed, no more


def test_read_ahead_error_is_one_line_and_ends_the_reading() -> None:
    reader = _Reader(100, fail_at=3)
    batches = read_adbc.read_ahead(reader, (), depth=4)
    assert _values([next(batches), next(batches), next(batches)]) == [0, 1, 2]
    with pytest.raises(StorageError, match=r"^reading the database failed: connection lost$"):
        next(batches)
    assert reader.reads == 4  # nothing read after the error
    assert reader.closed


def test_adbc_reads_the_snapshot_of_the_export(postgres_url: str) -> None:
    """Rows committed by another connection after the export's snapshot was taken are not read: the
    ADBC connection imports that snapshot."""
    meta = small_metadata()
    engine = sa.create_engine(postgres_url)
    try:
        fill(engine, meta, 10)
        links = meta.tables["links"]
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            conn.execute(sa.select(sa.func.count()).select_from(links)).scalar_one()  # the snapshot
            with engine.begin() as other:
                other.execute(links.insert(), [{"item_id": "late", "position": 0, "target": "x"}])
            reader = lake_export.choose_reader(conn, links, lake_export.ReadOptions())
            assert reader.name == "adbc-postgresql"
            rows = sum(b.num_rows for b in reader.batches(links))
        assert rows == 10
    finally:
        engine.dispose()


def test_a_driver_error_while_reading_is_one_line(tmp_path: Path) -> None:
    """The driver's own error (no SQLAlchemy around it to wrap it) is a StorageError, not a traceback."""
    meta = small_metadata()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    fill(engine, meta, 3)
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP TABLE links")
        with pytest.raises(StorageError, match=r"^reading the database failed: no such table: links$"):
            list(lake_export.iter_batches(conn, meta.tables["links"]))
    engine.dispose()


# ----------------------------------------------------------------------------------- ADBC on SQLite


def test_adbc_sqlite_gives_what_the_sqlalchemy_path_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adbc_logs: pytest.LogCaptureFixture
) -> None:
    """Every column kind (a fifth of the values NULL), read in ADBC batches of 4 and handed on in
    batches of exactly 3: the very table SQLAlchemy's rows give."""
    monkeypatch.setattr(read_sqlite, "ADBC_SQLITE_BATCH_ROWS", 4)
    meta = small_metadata()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    fill(engine, meta, 40)
    assert_as_sqlalchemy_gives(engine, meta, lambda e, t: read_as_export(e, t, "adbc-sqlite", with_raw=True))
    engine.dispose()
    assert adbc_logs.text.count(ADBC_SQLITE) == 2


def test_adbc_sqlite_reads_every_table_as_of_one_moment(tmp_path: Path) -> None:
    """Rows another process commits after the export read its first table are not read from the
    second: one read transaction across tables."""
    meta = small_metadata()
    path = tmp_path / "c.db"
    engine = create_engine(f"sqlite:///{path}")  # WAL: the writer does not wait for the reader
    fill(engine, meta, 10)
    items, links = meta.tables["items"], meta.tables["links"]
    with lake_export.reading(engine, [items, links], lake_export.ReadOptions(batch_rows=4)) as choose:
        assert choose(items).name == "adbc-sqlite"
        assert sum(b.num_rows for b in choose(items).batches(items)) == 10
        sql = "INSERT INTO links VALUES ('late', 0, 'x')"
        subprocess.run([sys.executable, "-c", WRITE, str(path), sql], check=True)  # another process
        assert sum(b.num_rows for b in choose(links).batches(links)) == 10
    assert read_as_export(engine, links, "adbc-sqlite").num_rows == 11  # a new export sees it
    engine.dispose()


def test_adbc_sqlite_only_reads_and_leaves_no_file_behind(tmp_path: Path) -> None:
    """The ADBC connection cannot write, and a WAL database is left as it was: no ``-wal`` or ``-shm``
    beside it (the connection closes as the last one, like ``sqlite3``'s)."""
    meta = small_metadata()
    path = tmp_path / "c.db"
    engine = create_engine(f"sqlite:///{path}")
    fill(engine, meta, 10)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert list(before) == ["c.db"]
    arrow = read_sqlite.open_sqlite_arrow(engine, list(meta.tables.values()), lake_export.ReadOptions())
    assert arrow is not None
    try:
        with (
            arrow.connection.cursor() as cur,
            pytest.raises(read_sqlite.sqlite_driver().Error, match=r"readonly database"),
        ):
            cur.execute("DELETE FROM links")
    finally:
        arrow.close()
    lake_export.export(engine, meta, lake_export.open_lake(str(tmp_path / "lake")), date(2026, 11, 25))
    engine.dispose()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "lake"} == before


def test_a_file_open_elsewhere_in_the_process_is_read_through_sqlite3(
    tmp_path: Path, adbc_logs: pytest.LogCaptureFixture
) -> None:
    """Two SQLite libraries (Python's, ADBC's) with one file open break each other's locks: while this
    process holds another connection to the file, the export reads through ``sqlite3``."""
    meta = small_metadata()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    fill(engine, meta, 10)
    with engine.connect() as held:
        held.exec_driver_sql("SELECT count(*) FROM items").scalar()
        got = read_as_export(engine, meta.tables["items"], "cursor")
    engine.dispose()
    assert got.num_rows == 10
    assert "the database is open elsewhere in this process" in adbc_logs.text
    assert ADBC_SQLITE not in adbc_logs.text
    assert "through the pysqlite cursor" in adbc_logs.text


def test_columns_without_an_exact_arrow_path_take_sqlite3_for_every_table(
    tmp_path: Path, adbc_logs: pytest.LogCaptureFixture
) -> None:
    """A decimal column: that table cannot be read through ADBC, so no table is (one snapshot)."""
    meta = sa.MetaData()
    plain = sa.Table("plain", meta, sa.Column("id", sa.Integer, primary_key=True))
    prices = sa.Table(
        "prices", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("price", sa.Numeric(6, 2))
    )
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(plain.insert(), [{"id": 1}])
        conn.execute(prices.insert(), [{"id": 1, "price": Decimal("3.50")}])
    options = lake_export.ReadOptions(batch_rows=5)
    assert read_sqlite.sqlite_query(plain, engine.dialect, options)
    assert read_sqlite.open_sqlite_arrow(engine, [plain, prices], options) is None
    with lake_export.reading(engine, [plain, prices], options) as choose:
        assert choose(prices).name == "cursor"
        assert pa.Table.from_batches(list(choose(prices).batches(prices))).to_pylist() == [
            {"id": 1, "price": Decimal("3.50")}
        ]
    engine.dispose()
    assert "prices has a column ADBC cannot read exactly" in adbc_logs.text
    assert ADBC_SQLITE not in adbc_logs.text


def test_an_adbc_error_while_reading_is_one_line(tmp_path: Path, adbc_logs: pytest.LogCaptureFixture) -> None:
    """The driver's message without its prefixes (``INVALID_ARGUMENT: [SQLite] Failed to prepare
    query: ...``), as a StorageError."""
    meta = small_metadata()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    fill(engine, meta, 3)
    engine.dispose()
    subprocess.run([sys.executable, "-c", WRITE, str(tmp_path / "c.db"), "DROP TABLE links"], check=True)
    links = meta.tables["links"]
    with lake_export.reading(engine, [links], lake_export.ReadOptions(batch_rows=5)) as choose:
        assert choose(links).name == "adbc-sqlite"
        with pytest.raises(StorageError, match=r"^reading the database failed: no such table: links$"):
            list(choose(links).batches(links))
    engine.dispose()
    assert ADBC_SQLITE in adbc_logs.text


# ------------------------------------------------------------------------------- list columns in Arrow

LIST_TEXTS = [
    '["US","SE"]', '["US", "SE"]', "[]", None, '[""]', '["",""]', '["a,b","c"]', '["Sigur Rós","東京"]',
    '["a\\"b"]', '["\\u00e9"]', '[ "x" , "y" ]', "null", '["line\\nbreak"]',
    '["a",", ","b"]', '["a", ",", "b"]', '[", "]', '["a",",","b"]', '["a", "b","c"]',
]  # fmt: skip


@pytest.mark.parametrize("text", LIST_TEXTS)
def test_list_texts_parsed_in_arrow_are_what_orjson_gives(text: str | None) -> None:
    """Arrow's string kernels (plain lists) and JSON reader (escapes, spaces) give what orjson does."""
    target = pa.list_(pa.string())
    texts = pa.array([text, '["JP"]', None, "[]"], pa.string())
    want = [None if t is None else orjson.loads(t) for t in texts.to_pylist()]
    got = arrays.parse_lists(texts, target)
    assert got is not None
    assert got.type == target
    assert got.to_pylist() == want


@pytest.mark.parametrize(
    ("texts", "target"),
    [
        (["[1,2]", "[-3]", "[]", None], pa.list_(pa.int32())),
        (['["1"]'], pa.list_(pa.int32())),  # not a list of integers
        (["[1]"], pa.list_(pa.string())),  # not a list of text
        (['["a"]\n'], pa.list_(pa.string())),  # a line break: never one line per text
        (['["a"]}\n{"v":["b"]'], pa.list_(pa.string())),
        (['["a"],"w":1'], pa.list_(pa.string())),
        (["not json"], pa.list_(pa.string())),
        (['[{"a":1}]'], pa.list_(pa.string())),
    ],
)
def test_list_texts_arrow_cannot_parse_exactly_go_back_to_python(
    texts: list[str | None], target: pa.DataType
) -> None:
    parsed = arrays.parse_lists(pa.array(texts, pa.string()), target)
    if parsed is not None:  # only what orjson gives, exactly
        assert parsed.to_pylist() == [None if t is None else orjson.loads(t) for t in texts]
    else:
        assert texts[0] is not None


# ------------------------------------------------------------------------------ MariaDB's CSV lines


def _export_files(engine: sa.Engine, meta: sa.MetaData, root: Path, **kwargs: Any) -> dict[str, bytes]:
    done = lake_export.export(engine, meta, lake_export.open_lake(str(root)), date(2026, 11, 25), **kwargs)
    return {d.table: Path(d.uri).read_bytes() for d in done}


@pytest.mark.parametrize("schema", ["small", "real"])
def test_mariadb_csv_lines_write_the_files_sqlalchemy_rows_write(
    mysql_url: str,
    schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    adbc_logs: pytest.LogCaptureFixture,
) -> None:
    """On MariaDB the export through the server's CSV lines writes byte for byte the Parquet files of
    the export through SQLAlchemy's rows, and their rows are the database's: every column kind (text
    with quotes, commas, line breaks, empty and NULL; lists; JSON objects with ``--with-raw``;
    timestamps; gone rows with ``--include-gone``), 2,003 rows a table in batches of 500."""
    meta = small_metadata() if schema == "small" else metadata
    engine = sa.create_engine(mysql_url)
    try:
        fill(engine, meta, 2003, gone=True)
        csv = _export_files(engine, meta, tmp_path / "csv", with_raw=True, include_gone=True, batch_rows=500)
        assert adbc_logs.text.count("through CSV lines of the server (pymysql)") == len(csv)
        monkeypatch.setattr(read_mysql.MysqlCsvReader, "open", classmethod(lambda cls, *args: None))
        rows = _export_files(
            engine, meta, tmp_path / "rows", with_raw=True, include_gone=True, batch_rows=500
        )
        assert "through SQLAlchemy rows (pymysql)" in adbc_logs.text
        assert list(csv) == list(rows)
        for name, data in csv.items():
            table = meta.tables[name]
            got = pq.read_table(pa.BufferReader(data), coerce_int96_timestamp_unit="us")
            assert lake_rows(got, table) == database_rows(engine, table, with_raw=True, include_gone=True), (
                name
            )
            assert data == rows[name], name
    finally:
        engine.dispose()


def test_mariadb_csv_lines_take_what_has_no_exact_text_path_through_rows(mysql_url: str) -> None:
    """A decimal column: that table is read through SQLAlchemy's rows, another through CSV lines."""
    meta = sa.MetaData()
    plain = sa.Table("plain", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))
    prices = sa.Table(
        "prices", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("price", sa.Numeric(6, 2))
    )
    engine = sa.create_engine(mysql_url)
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                plain.insert(),
                [{"id": 1, "note": 'say "hi",\nbye'}, {"id": 2, "note": ""}, {"id": 3, "note": None}],
            )
            conn.execute(prices.insert(), [{"id": 1, "price": Decimal("3.50")}])
        assert read(engine, plain, "mysql-csv").to_pylist() == [
            {"id": 1, "note": 'say "hi",\nbye'},
            {"id": 2, "note": ""},
            {"id": 3, "note": None},
        ]
        assert read(engine, prices, "rows").to_pylist() == [{"id": 1, "price": Decimal("3.50")}]
    finally:
        engine.dispose()
