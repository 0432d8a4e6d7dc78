"""Schema set-up: a new database given the schema, an older one of ours migrated, another program's
refused, under a database lock; the version a database records."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from spotify_catalog.errors import StorageError, UsageError
from spotify_catalog.storage import schema
from spotify_catalog.storage.engine import create_engine, describe_error, name_of, schema_in_use
from spotify_catalog.storage.write import upsert

log = logging.getLogger(__name__)

_PG_LOCK = int.from_bytes(b"spcatmig", "big")  # pg_advisory_xact_lock key of schema set-up
_MYSQL_LOCK = "spotify_catalog_migrate"  # GET_LOCK name (server-wide: the database name is added)
_MYSQL_LOCK_WAIT = 60  # seconds


def _claim_index(conn: sa.Connection) -> None:
    """Version 3: the ``_tasks`` index on (kind, state) becomes (kind, state, key), which claims read in
    key order."""
    detached = sa.Table(schema.tasks.name, sa.MetaData(), sa.Column("kind"), sa.Column("state"))
    old = sa.Index("ix__tasks_kind_state", detached.c.kind, detached.c.state)
    if old.name in {i["name"] for i in sa.inspect(conn).get_indexes(schema.tasks.name)}:
        old.drop(conn)
    for index in schema.tasks.indexes:
        index.create(conn, checkfirst=True)


# version -> what moving up to it needs beyond the generic step. The generic step, run for every
# version, creates the tables the metadata has and the database lacks and adds the columns a table
# lacks (nullable ones, or ones with a server default); a step here is for anything else (an index
# on an existing table, filling a new column, ...). It runs on the migration's connection, under the
# lock, after the generic step. Version 4 (a user's own data: users, plays, saved_*, followed_artists,
# user_playlists, top_items) is new tables only: the generic step creates them.
MIGRATION_STEPS: dict[int, Callable[[sa.Connection], None]] = {3: _claim_index}


@dataclass
class _Layout:
    """What :func:`_inspect` found: a database of ours (or an empty one), and what it lacks."""

    version: int | None  # the recorded schema_version; None: none (an empty or half-created database)
    missing_tables: list[sa.Table]
    missing_columns: dict[str, list[sa.Column[Any]]]

    @property
    def current(self) -> bool:
        return self.version == schema.SCHEMA_VERSION and not self.missing_tables and not self.missing_columns


def migrate(engine: sa.Engine, *, where: str | None = None) -> str | None:
    """Create the schema, or bring an older one up to :data:`schema.SCHEMA_VERSION`.

    The database is looked at before anything is written: a database none of whose tables has one of
    our names is given the schema; one of ours (a known ``schema_version``, or no version and exactly
    our tables: a creation cut short) is migrated; anything else with one of our table names is a
    :class:`UsageError` and stays untouched. Creation and migration run under a database lock
    (PostgreSQL advisory lock, MySQL ``GET_LOCK``, SQLite ``BEGIN IMMEDIATE``) so that crawls starting
    together do not race; a database already up to date takes no lock. ``where`` names the database in
    messages (default: :func:`~spotify_catalog.storage.engine.name_of`). Returns what was done
    (``created``, ``migrated from version N``, ``completed``), None when nothing was.
    """
    target = schema_in_use(engine)
    where = where or name_of(engine)
    try:
        if engine.dialect.name == "postgresql" and target:
            _create_pg_schema(engine, target)
        with engine.connect() as conn:  # the quick look, no lock
            if _inspect(conn, where).current:
                return None
        with migration_lock(engine) as conn:
            layout = _inspect(conn, where)
            done = _bring_up_to_date(conn, layout)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot set up the database {where}: {describe_error(exc)}") from None
    if done:
        log.info("database %s: %s (schema version %d)", where, done, schema.SCHEMA_VERSION)
    return done


def open_database(url: str, *, schema: str | None = None) -> sa.Engine:
    """``create_engine`` + ``migrate``: an engine on a database holding the current schema."""
    engine = create_engine(url, schema=schema)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def schema_version(conn: sa.Connection) -> int | None:
    """The schema version of the database behind ``conn`` (``None``: none of our tables, or a creation
    cut short: nothing crawled yet), for the commands that only read it (``status``, ``crawl --plan``,
    ``report``, ``export``): another program's database and a newer schema are refused as ``crawl``
    refuses them (:func:`migrate`), with the same message."""
    return _inspect(conn, name_of(conn.engine)).version


def _inspect(conn: sa.Connection, where: str) -> _Layout:
    """Our tables in the database, and what they lack; a clash with another program's table is a
    :class:`UsageError`, a newer schema a :class:`StorageError`."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    ours = [t for t in schema.metadata.sorted_tables if t.name in present]
    missing_tables = [t for t in schema.metadata.sorted_tables if t.name not in present]
    if not ours:
        return _Layout(None, missing_tables, {})
    found = {t.name: {c["name"]: c for c in inspector.get_columns(t.name)} for t in ours}
    version = _recorded_version(conn, found.get(schema.state.name))
    if version is not None and version > schema.SCHEMA_VERSION:
        raise StorageError(
            f"the database has schema version {version}, newer than this program's "
            f"{schema.SCHEMA_VERSION}: upgrade spotify-catalog"
        )
    missing_columns: dict[str, list[sa.Column[Any]]] = {}
    for table in sorted(ours, key=lambda t: (t.name.startswith("_"), t.name)):  # catalog tables first
        columns = found[table.name]
        lacking = [c for c in table.columns if c.name not in columns]
        if version is None:  # no version: ours only if exactly our tables (a creation cut short)
            fits = not lacking and set(columns) == set(table.columns.keys())
        else:
            extra = [c for name, c in columns.items() if name not in table.columns]
            fits = all(_addable(c) for c in lacking) and all(
                c["nullable"] or c.get("default") is not None for c in extra
            )
        if not fits:
            raise UsageError(
                f"{where} is not a spotify-catalog database (table {table.name} has columns "
                f"{', '.join(columns)}); use another database or schema"
            )
        if lacking:
            missing_columns[table.name] = lacking
    return _Layout(version, missing_tables, missing_columns)


def _recorded_version(conn: sa.Connection, state_columns: Mapping[str, Any] | None) -> int | None:
    if state_columns is None or not {"key", "value"} <= set(state_columns):
        return None
    value = conn.execute(
        sa.select(schema.state.c.value).where(schema.state.c.key == "schema_version")
    ).scalar()
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _addable(column: sa.Column[Any]) -> bool:
    """Whether ``ALTER TABLE ... ADD COLUMN`` can add the column to a table that has rows."""
    return not column.primary_key and (column.nullable or column.server_default is not None)


def _bring_up_to_date(conn: sa.Connection, layout: _Layout) -> str | None:
    if layout.current:
        return None  # another process did it while this one waited for the lock
    preparer = conn.dialect.identifier_preparer
    for name, columns in layout.missing_columns.items():
        table = schema.metadata.tables[name]
        for column in columns:
            ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {ddl}")
    if layout.missing_tables:
        schema.metadata.create_all(conn, tables=layout.missing_tables, checkfirst=False)
    if layout.version is not None:
        for version in range(layout.version + 1, schema.SCHEMA_VERSION + 1):
            if version in MIGRATION_STEPS:
                MIGRATION_STEPS[version](conn)
    upsert(conn, schema.state, [{"key": "schema_version", "value": str(schema.SCHEMA_VERSION)}])
    if layout.version is None:
        return "created" if len(layout.missing_tables) == len(schema.metadata.tables) else "completed"
    if layout.version < schema.SCHEMA_VERSION:
        return f"migrated from version {layout.version}"
    return "completed"


@contextmanager
def migration_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection holding the database's schema lock; what it does is committed at the end (rolled
    back on an error where the database allows: PostgreSQL and SQLite DDL is transactional)."""
    name = engine.dialect.name
    if name == "postgresql":
        with engine.begin() as conn:  # the lock goes with the transaction
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
            yield conn
    elif name in ("mysql", "mariadb"):
        with engine.connect() as conn:  # MySQL DDL commits at once: hold a named lock on this session
            database = conn.exec_driver_sql("SELECT DATABASE()").scalar() or ""
            lock = f"{_MYSQL_LOCK}.{database}"[:64]
            got = conn.execute(
                sa.text("SELECT GET_LOCK(:name, :wait)"), {"name": lock, "wait": _MYSQL_LOCK_WAIT}
            )
            if got.scalar() != 1:
                raise StorageError(
                    f"another process has been setting up the database for {_MYSQL_LOCK_WAIT} s "
                    f"(lock {lock}); try again later"
                )
            try:
                conn.commit()  # a fresh transaction: reads from here see what the lock's last holder did
                yield conn
                conn.commit()
            finally:
                try:
                    conn.rollback()
                    conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": lock})
                    conn.commit()
                except sa.exc.SQLAlchemyError:
                    conn.invalidate()  # a session that cannot release the lock is closed, which does
    else:  # SQLite: the write lock of an immediate transaction; DDL is transactional
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # the driver sends no BEGIN
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
            if conn.exec_driver_sql("PRAGMA journal_mode").scalar() != "wal":
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # a file of ours now (or a new one)


def _create_pg_schema(engine: sa.Engine, name: str) -> None:
    """Create the PostgreSQL schema ``name`` when missing, before ``engine`` first connects (SQLAlchemy
    learns the default schema on its first connection), under the schema lock."""
    probe = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    try:
        with probe.connect() as conn:
            find = sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name")
            if conn.execute(find, {"name": name}).first() is not None:
                return
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
            conn.execute(sa.schema.CreateSchema(name, if_not_exists=True))
            conn.commit()
            log.info("created the PostgreSQL schema %s", name)
    finally:
        probe.dispose()
