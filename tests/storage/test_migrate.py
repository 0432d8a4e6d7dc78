"""Schema creation and migration: other programs' databases are left alone, version 1 databases are
migrated keeping their rows, crawls starting together do not race, PostgreSQL schemas and URL forms."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from spotify_catalog.errors import StorageError, UsageError
from spotify_catalog.storage import schema
from spotify_catalog.storage.engine import _search_path_schema, create_engine
from spotify_catalog.storage.migrate import _MYSQL_LOCK, _PG_LOCK, migrate, open_database

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
# what version 2 added to version 1
V2_COLUMNS = {"_runs": ("updated_at", "pid", "host"), "_tasks": ("lease_until", "leased_by")}


def v1_metadata() -> sa.MetaData:
    """The schema as version 1 created it: today's, without the columns version 2 added."""
    v1 = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        dropped = V2_COLUMNS.get(table.name)
        if dropped is None:
            table.to_metadata(v1)
            continue
        columns = [c._copy() for c in table.columns if c.name not in dropped]
        indexes = [sa.Index(i.name, *(c.name for c in i.columns)) for i in table.indexes]
        sa.Table(table.name, v1, *columns, *indexes, **table.kwargs)
    return v1


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_columns(engine: sa.Engine) -> dict[str, list[str]]:
    inspector = sa.inspect(engine)
    return {name: [c["name"] for c in inspector.get_columns(name)] for name in inspector.get_table_names()}


# ------------------------------------------------------------------------------ foreign databases


@pytest.mark.parametrize(
    ("ddl", "message"),
    [
        (
            ["CREATE TABLE artists(id integer, title, country)", "CREATE TABLE _state(k, v)"],
            "(table artists has columns id, title, country)",
        ),
        (["CREATE TABLE artists(id text, name text)"], "(table artists has columns id, name)"),
    ],
)
def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path: Path, ddl: list[str], message: str) -> None:
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as conn:
        for statement in ddl:
            conn.execute(statement)
        conn.execute("INSERT INTO artists(id) VALUES (1)")
    before = file_digest(path)
    url = f"sqlite:///{path}"
    with pytest.raises(UsageError) as info:
        open_database(url)
    assert str(info.value) == (
        f"{url} is not a spotify-catalog database {message}; use another database or schema"
    )
    assert file_digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]  # no -wal, no -journal left


def test_a_known_version_with_unusable_tables_is_refused(tmp_path: Path) -> None:
    """A ``_state`` that looks like ours does not make a table without our key columns ours."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        schema.state.create(conn)
        conn.execute(schema.state.insert().values(key="schema_version", value="1"))
        conn.exec_driver_sql("CREATE TABLE artists(name TEXT, genre TEXT)")
    engine.dispose()
    with pytest.raises(UsageError, match=r"\(table artists has columns name, genre\)"):
        open_database(url)


def test_unrelated_tables_are_no_clash(db_url: str) -> None:
    """A database holding only other names is given the schema next to them."""
    other = sa.create_engine(db_url)
    with other.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)")
    other.dispose()
    engine = open_database(db_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert names == {t.name for t in schema.metadata.sorted_tables} | {"invoices"}
    finally:
        engine.dispose()


def test_a_foreign_postgresql_database_is_refused_untouched(postgres_url: str) -> None:
    other = sa.create_engine(postgres_url)
    with other.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE artists (id text, name text)")
        conn.exec_driver_sql("CREATE TABLE _state (k text, v text)")
    with pytest.raises(
        UsageError, match=r"is not a spotify-catalog database \(table artists has columns id, name\)"
    ):
        open_database(postgres_url)
    assert table_columns(other) == {"artists": ["id", "name"], "_state": ["k", "v"]}
    other.dispose()


def test_a_cut_short_creation_is_completed(db_url: str) -> None:
    """No version yet but exactly our tables (a MySQL creation killed half-way): ours."""
    some = [schema.artists, schema.albums, schema.state]
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            schema.metadata.create_all(conn, tables=some)
        assert migrate(engine) == "completed"
        assert set(sa.inspect(engine).get_table_names()) >= {t.name for t in schema.metadata.sorted_tables}
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ migration


def test_a_version_1_database_migrates_keeping_its_rows(db_url: str) -> None:
    old = sa.create_engine(db_url)
    v1 = v1_metadata()
    with old.begin() as conn:
        v1.create_all(conn)
        conn.execute(v1.tables["_state"].insert(), [{"key": "schema_version", "value": "1"}])
        conn.execute(
            v1.tables["_runs"].insert(),
            [{"id": 1, "started_at": T0, "status": "done", "requests": 7, "rows_written": 9, "command": "c"}],
        )
        conn.execute(
            v1.tables["_tasks"].insert(),
            [
                {
                    "kind": "album",
                    "key": "a1",
                    "state": "pending",
                    "attempts": 1,
                    "created_at": T0,
                    "updated_at": T0,
                }
            ],
        )
        conn.execute(v1.tables["artists"].insert(), [{"id": "x1", "name": "X", "detail": "full"}])
    old.dispose()

    engine = create_engine(db_url)
    try:
        assert migrate(engine) == "migrated from version 1"
        assert migrate(engine) is None
        columns = table_columns(engine)
        for table in schema.metadata.sorted_tables:
            assert set(columns[table.name]) == set(table.columns.keys()), table.name
        with engine.begin() as conn:
            version = conn.execute(sa.select(schema.state.c.value)).scalars().all()
            assert version == [str(schema.SCHEMA_VERSION)]
            run = conn.execute(sa.select(schema.runs)).mappings().one()
            assert (run["status"], run["requests"], run["command"], run["pid"]) == ("done", 7, "c", None)
            task = conn.execute(sa.select(schema.tasks)).mappings().one()
            assert (task["key"], task["state"], task["lease_until"]) == ("a1", "pending", None)
            assert conn.execute(sa.select(schema.artists.c.name)).scalar() == "X"
            # the new columns take values
            conn.execute(schema.runs.update().values(pid=42, host="h", updated_at=T0))
            conn.execute(schema.tasks.update().values(lease_until=T0, leased_by="h:42:1"))
            assert conn.execute(sa.select(schema.runs.c.updated_at)).scalar() == T0
            assert conn.execute(sa.select(schema.tasks.c.leased_by)).scalar() == "h:42:1"
    finally:
        engine.dispose()


def test_a_version_2_database_gets_the_claim_index(db_url: str) -> None:
    """Version 3 replaces the ``(kind, state)`` index of ``_tasks`` by ``(kind, state, key)``; the
    tasks stay."""
    old = sa.create_engine(db_url)
    v2 = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        if table.name != schema.tasks.name:
            table.to_metadata(v2)
    columns = [c._copy() for c in schema.tasks.columns]
    tasks = sa.Table(schema.tasks.name, v2, *columns, sa.Index("ix__tasks_kind_state", "kind", "state"),
                     **schema.tasks.kwargs)  # fmt: skip
    with old.begin() as conn:
        v2.create_all(conn)
        conn.execute(v2.tables["_state"].insert(), [{"key": "schema_version", "value": "2"}])
        conn.execute(
            tasks.insert(),
            [
                {
                    "kind": "track",
                    "key": "t1",
                    "state": "pending",
                    "attempts": 0,
                    "created_at": T0,
                    "updated_at": T0,
                }
            ],
        )
    old.dispose()

    engine = create_engine(db_url)
    try:
        assert migrate(engine) == "migrated from version 2"
        indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("_tasks")}
        assert indexes.get("ix__tasks_claim") == ["kind", "state", "key"]
        assert "ix__tasks_kind_state" not in indexes
        with engine.connect() as conn:
            assert conn.execute(sa.select(schema.tasks.c.key)).scalars().all() == ["t1"]
        assert migrate(engine) is None
    finally:
        engine.dispose()


def test_a_newer_version_is_refused_before_looking_further(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = open_database(url)
    with engine.begin() as conn:
        conn.execute(schema.state.update().values(value="99"))
        conn.exec_driver_sql("ALTER TABLE artists ADD COLUMN added_by_v99 TEXT NOT NULL DEFAULT ''")
    with pytest.raises(StorageError, match="schema version 99, newer than this program's"):
        migrate(engine)
    engine.dispose()


# ------------------------------------------------------------------------------ concurrency


def test_processes_starting_together_create_the_schema_once(db_url: str) -> None:
    """Six openers at once on a fresh database: none fails, one creates, the others find it done."""
    barrier = threading.Barrier(6)

    def open_one(_: int) -> str | None:
        engine = create_engine(db_url)
        try:
            barrier.wait()
            return migrate(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(open_one, range(6)))
    assert sorted(results, key=str) == [None, None, None, None, None, "created"]
    engine = open_database(db_url)
    try:
        columns = table_columns(engine)
        for table in schema.metadata.sorted_tables:
            assert set(columns[table.name]) == set(table.columns.keys()), table.name
        with engine.connect() as conn:
            assert conn.execute(sa.select(schema.state.c.key, schema.state.c.value)).all() == [
                ("schema_version", str(schema.SCHEMA_VERSION))
            ]
    finally:
        engine.dispose()


def test_openers_of_a_new_postgresql_schema_do_not_race(postgres_url: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS alone fails under concurrency (pg_namespace_nspname_index)."""
    barrier = threading.Barrier(6)

    def open_one(_: int) -> None:
        engine = create_engine(postgres_url, schema="music")
        try:
            barrier.wait()
            migrate(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(open_one, range(6)))
    plain = sa.create_engine(postgres_url)
    try:
        assert set(sa.inspect(plain).get_table_names(schema="music")) == set(schema.metadata.tables)
    finally:
        plain.dispose()


@contextmanager
def schema_lock_held(engine: sa.Engine) -> Iterator[None]:
    """Another session holding the lock migrate takes (as a migration running elsewhere would)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
        elif engine.dialect.name in ("mysql", "mariadb"):
            name = f"{_MYSQL_LOCK}.{engine.url.database}"[:64]
            assert conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar() == 1
        else:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
            elif engine.dialect.name in ("mysql", "mariadb"):
                conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
            else:
                conn.exec_driver_sql("ROLLBACK")


def test_an_up_to_date_database_takes_no_lock(db_url: str) -> None:
    open_database(db_url).dispose()
    holder = create_engine(db_url)
    engine = create_engine(db_url)
    try:
        with schema_lock_held(holder):
            outcome: list[object] = []
            opener = threading.Thread(target=lambda: outcome.append(migrate(engine)), daemon=True)
            started = time.monotonic()
            opener.start()
            opener.join(10)
            assert not opener.is_alive(), "migrate waited for the schema lock"
            assert outcome == [None]
            assert time.monotonic() - started < 5
    finally:
        engine.dispose()
        holder.dispose()


# ------------------------------------------------------------------------------ URLs and schemas


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u@h/d", "postgresql+psycopg"),
        ("postgresql://u@h/d", "postgresql+psycopg"),
        ("postgres+psycopg://u@h/d", "postgresql+psycopg"),
        ("mysql://u@h/d", "mysql+pymysql"),
        ("mariadb://u@h/d", "mariadb+pymysql"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_urls_without_a_driver_get_the_installed_one(url: str, driver: str) -> None:
    engine = create_engine(url)
    assert engine.url.drivername == driver
    engine.dispose()


def test_postgres_scheme_opens_a_real_database(postgres_url: str) -> None:
    heroku = "postgres://" + postgres_url.split("://", 1)[1]
    engine = open_database(heroku)
    try:
        assert "artists" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("-csearch_path=music", "music"),
        ("-c search_path=Music,public", "music"),
        ('-csearch_path="Music"', "Music"),
        ("--search_path=a", "a"),
        ("-cstatement_timeout=5000 -csearch_path=b", "b"),
        ("-csearch_path=$user,public", None),
        ("-cstatement_timeout=5000", None),
    ],
)
def test_the_schema_of_a_search_path_option(options: str, expected: str | None) -> None:
    assert _search_path_schema(options) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///x.db", "SQLite has no schemas"),
        ("mysql+pymysql://u@h/d", "on MySQL/MariaDB a schema is a database"),
        ("postgresql+psycopg://u@h/d", "a schema name is letters, digits and _"),
    ],
)
def test_db_schema_misuse_is_a_usage_error(url: str, message: str) -> None:
    name = "bad-name" if url.startswith("postgresql") else "music"
    with pytest.raises(UsageError, match=message):
        create_engine(url, schema=name)


def test_a_schema_is_created_and_used(postgres_url: str) -> None:
    engine = open_database(postgres_url, schema="Music")  # folded as PostgreSQL folds it
    try:
        with engine.begin() as conn:
            conn.execute(schema.artists.insert().values(id="x1", name="X", detail="full"))
    finally:
        engine.dispose()
    plain = sa.create_engine(postgres_url)
    try:
        inspector = sa.inspect(plain)
        assert inspector.get_table_names() == []  # public untouched
        assert set(inspector.get_table_names(schema="music")) == set(schema.metadata.tables)
        with plain.connect() as conn:
            assert conn.exec_driver_sql("SELECT name FROM music.artists").scalar() == "X"
    finally:
        plain.dispose()


def test_the_urls_search_path_is_honoured(postgres_url: str) -> None:
    url = sa.engine.make_url(postgres_url).update_query_dict({"options": "-csearch_path=lake"})
    engine = open_database(url.render_as_string(hide_password=False))
    engine.dispose()
    plain = sa.create_engine(postgres_url)
    try:
        assert set(sa.inspect(plain).get_table_names(schema="lake")) == set(schema.metadata.tables)
        assert sa.inspect(plain).get_table_names() == []
    finally:
        plain.dispose()


def test_a_foreign_table_in_the_chosen_schema_is_refused(postgres_url: str) -> None:
    other = sa.create_engine(postgres_url)
    with other.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA theirs")
        conn.exec_driver_sql("CREATE TABLE theirs.tracks (id integer, title text)")
    other.dispose()
    with pytest.raises(UsageError, match=r"\(schema theirs\) is not a spotify-catalog database"):
        open_database(postgres_url, schema="theirs")
    engine = open_database(postgres_url, schema="ours")  # another schema of the same database works
    engine.dispose()


def test_a_version_3_database_gets_the_tables_of_a_users_data(db_url: str) -> None:
    """Version 4 adds the tables ``crawl --me`` writes; the rows already there stay, and a play's
    ``played_at`` keeps its milliseconds on every backend (it is a key)."""
    old = sa.create_engine(db_url)
    v3 = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        if table.name in ("users", "plays", "top_items", *schema.USER_LISTS):
            continue
        table.to_metadata(v3)
    with old.begin() as conn:
        v3.create_all(conn)
        conn.execute(v3.tables["_state"].insert(), [{"key": "schema_version", "value": "3"}])
        conn.execute(v3.tables["artists"].insert(), [{"id": "a1", "detail": "full"}])
    old.dispose()

    engine = create_engine(db_url)
    try:
        assert migrate(engine) == "migrated from version 3"
        played = datetime(2026, 11, 25, 10, 0, 1, 123000, tzinfo=UTC)
        with engine.begin() as conn:
            assert conn.execute(sa.select(schema.artists.c.id)).scalars().all() == ["a1"]
            conn.execute(
                schema.plays.insert(),
                [{"user_id": "u", "played_at": played, "track_id": "t", "fetched_at": T0}],
            )
            assert conn.execute(sa.select(schema.plays.c.played_at)).scalar() == played
        assert migrate(engine) is None
    finally:
        engine.dispose()
