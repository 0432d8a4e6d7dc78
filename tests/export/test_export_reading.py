"""Reading for the lake: the driver's cursor (SQLite, PostgreSQL) gives what SQLAlchemy's rows give."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from lake_helpers import fill, small_metadata

from spotify_catalog import export as lake_export
from spotify_catalog.errors import StorageError


def read(engine: sa.Engine, table: sa.Table, **kwargs: object) -> pa.Table:
    with engine.connect() as conn:
        batches = list(lake_export.iter_batches(conn, table, batch_rows=3, **kwargs))  # type: ignore[arg-type]
    return pa.Table.from_batches(batches, lake_export.arrow_schema(table, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("adbc", [True, False], ids=["adbc", "no-adbc"])
def test_the_driver_path_gives_what_the_sqlalchemy_path_gives(
    db_url: str, adbc: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrow from ADBC (PostgreSQL), or the driver's cursor (SQLite, PostgreSQL without the ADBC
    driver), gives the very batches SQLAlchemy's rows give (MariaDB: SQLAlchemy's rows both times)."""
    if not adbc:
        monkeypatch.setattr(lake_export, "_adbc_module", lambda: None)
    meta = small_metadata()
    engine = sa.create_engine(db_url)
    try:
        fill(engine, meta, 40)
        for table in (meta.tables["items"], meta.tables["links"]):
            fast = read(engine, table, with_raw=True)
            with monkeypatch.context() as m:
                m.setattr(lake_export, "_RAW_DRIVERS", set())
                generic = read(engine, table, with_raw=True)
            assert fast.num_rows == 40
            assert fast.equals(generic), table.name
    finally:
        engine.dispose()


def test_values_after_a_batch_of_nulls_keep_their_types(tmp_path: Path) -> None:
    """A column that is NULL in the first batches (where a driver guessing types from the first rows
    would settle on the wrong one) still reads as text, timestamps, dates, booleans and lists."""
    meta = sa.MetaData()
    table = sa.Table(
        "t",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(20)),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("day", sa.Date),
        sa.Column("flag", sa.Boolean),
        sa.Column("markets", sa.JSON, info={"list_of": sa.String(2)}),
        sa.Column("images", sa.JSON, info={"list_of": sa.JSON()}),
    )
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    meta.create_all(engine)
    at = datetime(2026, 11, 25, 12, 30, 1, 250, tzinfo=UTC)
    full = {"name": "x", "at": at, "day": date(2026, 11, 25), "flag": True, "markets": ["SE"],
            "images": [{"url": "u", "w": 1}]}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": i, **dict.fromkeys(full)} for i in range(7)])
        conn.execute(table.insert(), [{"id": 7, **full}, {"id": 8, **full, "flag": False, "markets": []}])
    got = read(engine, table).to_pylist()
    engine.dispose()
    assert got[:7] == [{"id": i, **dict.fromkeys(full)} for i in range(7)]
    assert got[7] == {"id": 7, **full, "images": ['{"url":"u","w":1}']}
    assert got[8]["flag"] is False
    assert got[8]["markets"] == []


def test_list_texts_are_parsed_in_one_call_or_one_at_a_time() -> None:
    target = pa.list_(pa.string())
    texts = ['["a","b"]', None, "[]"]
    assert lake_export._list_array(texts, target=target, objects=False).to_pylist() == [["a", "b"], None, []]
    parsed = [["a"], None, '["c"]']  # a driver that hands JSON back parsed (or some of it)
    assert lake_export._list_array(parsed, target=target, objects=False).to_pylist() == [["a"], None, ["c"]]
    objects = ['[{"b":1,"a":2}]', None]
    assert lake_export._list_array(objects, target=target, objects=True).to_pylist() == [
        ['{"a":2,"b":1}'],
        None,
    ]


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
            rows = sum(b.num_rows for b in lake_export.iter_batches(conn, links))
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
