"""Engine, schema creation/migration and per-dialect upserts.

``upsert`` updates only the columns a row carries, so a simplified object never erases the columns of
a full one; ``raw`` is replaced only by a full object or while the stored row is still simplified, and
``detail`` never goes back from ``full`` to ``simplified``.
"""

from __future__ import annotations

import logging
import operator
import os
import random
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, unquote_plus

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from spotify_catalog import settings
from spotify_catalog.errors import StorageError, UsageError
from spotify_catalog.storage import schema
from spotify_catalog.transform import Rows

log = logging.getLogger(__name__)

Row = Mapping[str, Any]

__all__ = [
    "Rows",
    "create_engine",
    "migrate",
    "open_database",
    "open_readonly",
    "redact",
    "upsert",
    "write_rows",
]


MASK = "***"
# query parameters whose value is a credential (names compared in lower case without "_", "-", spaces)
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "pass",
        "pwd",
        "passwd",
        "secret",
        "token",
        "sslpassword",
        "sslkey",
        "privatekey",
        "awssecretaccesskey",
        "passfile",
        "service",
    }
)
_SECRET_WORDS = ("password", "passwd", "secret", "token", "privatekey")  # e.g. client_secret, auth_token
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_PARAMETER = re.compile(r"([^=&]*)=([^&]*)")


def is_secret_parameter(name: str) -> bool:
    """Whether a URL query parameter of that name carries a credential."""
    key = re.sub(r"[^0-9a-z]", "", unquote_plus(name).lower())
    return key in SECRET_PARAMETERS or any(word in key for word in _SECRET_WORDS)


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` (a URL) holds credentials: the userinfo password as SQLAlchemy reads it (up to the
    next ``@``) and as RFC 3986 reads it (up to the last ``@`` of the authority), and the value of every
    secret query parameter after any ``?``, ``&`` or ``;``. Generous on purpose: masking too much is safe."""
    spans: list[tuple[int, int]] = []
    for scheme in _SCHEME.finditer(text):
        start = scheme.end()
        sa_user = re.match(r"[^:/]*:", text[start:])
        if sa_user is not None:
            colon = start + sa_user.end()
            at = text.find("@", colon)
            if at >= 0:
                spans.append((colon, at))
        authority = re.match(r"[^/?#]*", text[start:])
        userinfo, at_sign, _ = (authority.group() if authority else "").rpartition("@")
        if at_sign and ":" in userinfo:
            spans.append((start + userinfo.index(":") + 1, start + len(userinfo)))
    for index, char in enumerate(text):
        if char in "?&;":
            parameter = _PARAMETER.match(text, index + 1)
            if parameter is not None and is_secret_parameter(parameter.group(1)):
                spans.append(parameter.span(2))
    return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def redact(url: str | sa.URL) -> str:
    """The URL with every credential it can carry replaced by ``***``: the userinfo password and the
    values of the secret query parameters (``password``, ``pwd``, ``sslkey``, ``passfile``, ``service``
    ... in any case). For messages, ``_runs`` and logs; works on URLs SQLAlchemy cannot parse too."""
    text = url.render_as_string(hide_password=False) if isinstance(url, sa.URL) else str(url)
    pieces: list[str] = []
    last = 0
    for start, end in _merged(_secret_spans(text)):
        pieces += [text[last:start], MASK]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def remember_secrets(url: str | sa.URL) -> None:
    """Note the credentials of a database URL, so that :func:`describe_error` (and the log filter of
    :mod:`spotify_catalog.settings`) hide them should a driver's message repeat one (a key file's path,
    a service name, a password)."""
    text = url.render_as_string(hide_password=False) if isinstance(url, sa.URL) else str(url)
    values: set[str] = set()
    for start, end in _merged(_secret_spans(text)):
        raw = text[start:end]
        values |= {raw, unquote(raw), unquote_plus(raw)}
    if isinstance(url, sa.URL) and url.password:
        values.add(str(url.password))
    for value in values:
        settings.register_secret(value)


def scrub(text: str) -> str:
    """``text`` with every secret the program knows (credentials :func:`remember_secrets` noted, the
    client secret, tokens) replaced by ``***``."""
    return settings.redact(text, MASK)


# a bare dialect name picks the driver this project installs (SQLAlchemy's defaults, psycopg2 and
# mysqlclient, are not); ``postgres://`` (Heroku style) is PostgreSQL
_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SCHEMA_OPTION = "spotify_catalog_schema"  # engine execution option: the PostgreSQL schema in use
_WHERE_OPTION = "spotify_catalog_where"  # engine execution option: the database as messages name it
_PG_LOCK = int.from_bytes(b"spcatmig", "big")  # pg_advisory_xact_lock key of schema set-up
_MYSQL_LOCK = "spotify_catalog_migrate"  # GET_LOCK name (server-wide: the database name is added)
_MYSQL_LOCK_WAIT = 60  # seconds
# Each pymysql session reads backslashes in string literals as themselves: pymysql then quotes a value by
# doubling its quotes (one str.replace) instead of escaping it a character at a time (str.translate),
# which would be a quarter of a crawl's CPU on MariaDB (the raw JSON of every object)
_MYSQL_INIT = "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_BACKSLASH_ESCAPES')"
_SQLITE_CACHE_KIB = 65536  # page cache of a SQLite connection (default 2 MiB): a crawl rereads its B-trees
# WAL pages before a checkpoint copies them into the file (default 1,000): a page a crawl writes again
# and again is copied once per checkpoint, so fewer checkpoints copy less (one crawl's answers: 1.5 GB
# written, 2.1 GB with the default)
_SQLITE_CHECKPOINT_PAGES = 10_000


def create_engine(url: str, *, schema: str | None = None) -> sa.Engine:
    """An engine for ``url`` (sqlite, postgresql+psycopg, mysql+pymysql); a bad URL is a usage error.

    ``postgres://`` and a URL without a driver get the installed one (``postgresql+psycopg``,
    ``mysql+pymysql``). ``schema`` (``--db-schema``) is PostgreSQL's: every connection's
    ``search_path``; the URL's own ``options=-csearch_path=NAME`` works the same way. Other backends
    refuse it. Nothing connects here.
    """
    remember_secrets(url)
    try:
        parsed = _with_driver(sa.engine.make_url(url))
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UsageError(f"not a database URL: {redact(url)!r} (e.g. sqlite:///catalog.db)") from None
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"json_serializer": json_text}
    if schema is not None:
        schema = _schema_name(schema, backend)
    target = None
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif backend in ("mysql", "mariadb"):
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs["pool_pre_ping"] = True
        if parsed.get_driver_name() == "pymysql" and "init_command" not in parsed.query:
            kwargs["connect_args"] = {"init_command": _MYSQL_INIT}  # a URL's own init_command is kept
    elif backend == "postgresql":
        given = parsed.query.get("options")
        options = " ".join([given] if isinstance(given, str) else list(given or ()))
        target = _search_path_schema(options)
        if schema is not None:  # after the URL's options: the last -c wins
            kwargs["connect_args"] = {"options": f"{options} -csearch_path={schema}".strip()}
            target = schema
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise UsageError(f"unusable database URL {redact(url)}: {scrub(str(exc))}") from None
    except ModuleNotFoundError as exc:
        raise UsageError(f"database driver {exc.name!r} is not installed for {redact(url)}") from None
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    if target is not None:
        engine.update_execution_options(**{_SCHEMA_OPTION: target})
    _name(engine, url)
    return engine


def _name(engine: sa.Engine, url: str) -> None:
    """Record how messages name ``engine``'s database: ``url`` as it was given (:func:`name_of`)."""
    engine.update_execution_options(**{_WHERE_OPTION: _with_schema(engine, redact(url))})


def name_of(engine: sa.Engine) -> str:
    """The database as messages name it: its URL as it was given, password hidden, and the PostgreSQL
    schema in use (an engine not made here: its own URL)."""
    named = engine.get_execution_options().get(_WHERE_OPTION)
    return str(named) if named else _with_schema(engine, redact(engine.url))


def _with_schema(engine: sa.Engine, where: str) -> str:
    target = engine.get_execution_options().get(_SCHEMA_OPTION)
    return where + (f" (schema {target})" if target else "")


def json_text(value: Any) -> str:
    """How JSON columns are written: orjson, compact, UTF-8 (several times faster than ``json.dumps``)."""
    return orjson.dumps(value).decode()


def _with_driver(url: sa.engine.URL) -> sa.engine.URL:
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    driver = driver or _DRIVERS.get(backend, "")
    return url.set(drivername=f"{backend}+{driver}" if driver else backend)


def _schema_name(name: str, backend: str) -> str:
    if backend == "sqlite":
        raise UsageError("--db-schema is for PostgreSQL; SQLite has no schemas: use another file")
    if backend in ("mysql", "mariadb"):
        raise UsageError(
            "--db-schema is for PostgreSQL; on MySQL/MariaDB a schema is a database: "
            "name it in the URL (mysql+pymysql://host/NAME)"
        )
    if backend != "postgresql":
        raise UsageError(f"--db-schema is for PostgreSQL, not {backend}")
    if not _SCHEMA_NAME.fullmatch(name):
        raise UsageError(f"--db-schema {name!r}: a schema name is letters, digits and _ (at most 63)")
    return name.lower()  # as PostgreSQL folds an unquoted name


def _search_path_schema(options: str) -> str | None:
    """The first schema of a ``-c search_path=...`` in libpq ``options``, as PostgreSQL reads it."""
    found = re.findall(r"(?:-c\s*|--)search_path\s*=\s*((?:\\.|[^\s])+)", options)
    if not found:
        return None
    first = found[-1].replace("\\", "").split(",")[0].strip()
    if first.startswith('"') and first.endswith('"') and len(first) > 1:
        return first[1:-1] or None
    return None if first in ("", "$user") else first.lower()


def open_readonly(url: str, *, schema: str | None = None) -> sa.Engine:
    """An engine that only reads ``url``, for ``export``: nothing is created or migrated. A SQLite file
    is opened without changing its journal mode and with ``query_only``; in a read-only directory,
    where a WAL database's ``-shm`` index cannot be created, it is opened ``mode=ro&immutable=1``
    (safe there: no other process can write to it either)."""
    remember_secrets(url)
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise UsageError(f"not a database URL: {redact(url)!r} (e.g. sqlite:///catalog.db)") from None
    if parsed.get_backend_name() != "sqlite" or schema is not None:
        return create_engine(url, schema=schema)
    if parsed.query.get("uri"):
        engine = _sqlite_uri_engine(parsed)
        _name(engine, url)
        return engine
    path = Path(parsed.database or "").absolute()
    uri = f"file:{quote(str(path))}"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header: opens the WAL index
        except sqlite3.OperationalError:
            conn.close()
            if os.access(path.parent, os.W_OK):
                raise
            conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        return conn

    engine = sa.create_engine(parsed, creator=connect)
    _name(engine, url)
    return engine


def _sqlite_uri_engine(parsed: sa.URL) -> sa.Engine:
    """A ``sqlite:///file:...?uri=true`` URL as given, read-only unless it names a ``mode``."""
    if "mode" not in parsed.query:
        parsed = parsed.update_query_dict({"mode": "ro"})
    return sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL for a new file (``migrate`` sets it on files it adopts); never a write to a file that holds
    tables: it may belong to another program."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={_SQLITE_CHECKPOINT_PAGES}")
    if (
        cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
        and cursor.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    ):
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


# ----------------------------------------------------------------------------------- migration


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
# lock, after the generic step.
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
    messages (default: :func:`where`). Returns what was done (``created``, ``migrated from version N``,
    ``completed``), None when nothing was.
    """
    target = engine.get_execution_options().get(_SCHEMA_OPTION)
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


def describe_error(exc: BaseException) -> str:
    """The first line of a database error, for a one-line message, without the credentials of the
    database URLs opened (see :func:`remember_secrets`)."""
    text = str(getattr(exc, "orig", None) or exc)
    lines = [line for line in text.splitlines() if line.strip()]
    return scrub(lines[0]) if lines else type(exc).__name__


def _insert_for(name: str, table: sa.Table) -> Any:
    if name == "postgresql":
        return postgresql.insert(table)
    if name in ("mysql", "mariadb"):
        return mysql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StorageError(f"unsupported database dialect {name!r}")


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled once for a dialect: its SQL, how to take a row's parameters (a tuple in
    parameter order for a positional paramstyle, else the row's dict) and the bind processors of the
    parameters that need one."""

    sql: str
    positional: bool
    values: Callable[[Row], tuple[Any, ...]]  # a row's values in parameter order (positional)
    convert: tuple[tuple[int, str, Callable[[Any], Any]], ...]  # (position, key, processor)


_prepared: dict[tuple[Any, ...], _Prepared | None] = {}


def execute_many(conn: sa.Connection, stmt: Any, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """``conn.execute(stmt, rows)`` for rows that all have ``columns``, without SQLAlchemy's per-row
    work: the statement is compiled once per (statement, dialect, columns) and the rows go to the
    driver's ``executemany`` as tuples or dicts, each value through its type's bind processor (the
    same conversions SQLAlchemy makes). A statement whose parameters are not plain column values
    goes through ``conn.execute``. Meant for statements built once (the cache holds them)."""
    dialect = conn.dialect
    key = (stmt, type(dialect), dialect.server_version_info, dialect.paramstyle, tuple(columns))
    if key not in _prepared:
        _prepared[key] = _prepare(dialect, stmt, columns)
    prepared = _prepared[key]
    if prepared is None:
        conn.execute(stmt, list(rows))
        return
    try:
        params = _parameters(prepared, rows)
    except Exception as exc:  # a bind processor refused a value: as SQLAlchemy reports it
        raise sa.exc.StatementError(str(exc), prepared.sql, None, exc) from exc
    conn.exec_driver_sql(prepared.sql, params)


def _parameters(prepared: _Prepared, rows: Sequence[Row]) -> list[Any]:
    """The driver's parameters of ``rows``: tuples in parameter order (positional paramstyles) or
    dicts, converted a column at a time."""
    convert = prepared.convert
    if not prepared.positional:
        if not convert:
            return list(rows)
        params = [dict(row) for row in rows]
        for _, name, process in convert:
            for named in params:
                named[name] = process(named[name])
        return params
    values = list(map(prepared.values, rows))
    if not convert or not values:
        return values
    columns: list[Any] = list(zip(*values, strict=True))
    for position, _, process in convert:
        columns[position] = list(map(process, columns[position]))
    return list(zip(*columns, strict=True))


def _prepare(dialect: sa.Dialect, stmt: Any, columns: Sequence[str]) -> _Prepared | None:
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    binds = compiled.binds
    names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(binds)
    escaped = getattr(compiled, "escaped_bind_names", None) or {}
    wanted = set(columns)
    if escaped or any(binds[n].key != n or n not in wanted for n in names) or len(set(names)) != len(names):
        return None  # renamed, literal or repeated parameters: leave them to SQLAlchemy
    if not compiled.positional and set(names) != wanted:
        return None
    convert = []
    for position, name in enumerate(names):
        kind = binds[name].type
        process = kind.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            if isinstance(kind, sa.DateTime | sa.Date | schema.UtcDateTime):
                process = _last_value_cached(process)
            convert.append((position, name, process))
    if len(names) == 1:
        (only,) = names
        values: Callable[[Row], tuple[Any, ...]] = lambda row: (row[only],)  # noqa: E731
    else:
        values = operator.itemgetter(*names)
    return _Prepared(compiled.string, bool(compiled.positional), values, tuple(convert))


def _last_value_cached(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``process`` (of a date or time) that remembers its last argument and result: the rows of one
    answer share their ``fetched_at`` (one object), converted once instead of once a row. Thread-safe:
    one tuple swapped."""
    last: tuple[Any, Any] = (object(), None)

    def cached(value: Any) -> Any:
        nonlocal last
        seen, result = last
        if value is seen and value is not None:
            return result
        result = process(value)
        last = (value, result)
        return result

    return cached


def upsert(conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> int:
    """Insert or update ``rows`` by primary key, touching only the columns each row has.

    Rows with different column sets are written by separate statements. Returns the number of rows.
    """
    by_order: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        by_order[tuple(row)].append(row)
    groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for order, same in by_order.items():
        groups[tuple(sorted(order))].extend(same)
    keys = [c.name for c in table.primary_key.columns]
    count = 0
    for columns, group in groups.items():
        # one row per key within a statement (PostgreSQL refuses duplicates in one ON CONFLICT), in key
        # order: concurrent writers lock rows in the same order
        by_key = {tuple(r[k] for k in keys): r for r in group}
        try:
            ordered = sorted(by_key)
        except TypeError:  # a NULL in a key
            ordered = sorted(by_key, key=_sort_key)
        unique = [by_key[k] for k in ordered]
        count += len(unique)
        execute_many(conn, _upsert_statement(conn.dialect.name, table, columns), columns, unique)
    return count


_statements: dict[tuple[str, str, tuple[str, ...], bool], Any] = {}


def _upsert_statement(dialect: str, table: sa.Table, columns: tuple[str, ...], *, update: bool = True) -> Any:
    """The upsert of ``table`` for rows with ``columns`` (``update=False``: an insert of missing keys
    that leaves existing rows alone), built once per (dialect, table, columns): the same statement
    object again lets SQLAlchemy skip building its cache key, and :func:`execute_many` compiling it."""
    key = (dialect, table.name, columns, update)
    stmt = _statements.get(key)
    if stmt is not None and stmt.table is table:
        return stmt
    stmt = _insert_for(dialect, table)
    keys = [c.name for c in table.primary_key.columns]
    new = stmt.inserted if dialect in ("mysql", "mariadb") else stmt.excluded
    updates = _updates(table, [c for c in columns if c not in keys], new) if update else []
    if not updates:
        stmt = _do_nothing_for(dialect, table, stmt)
    elif dialect in ("mysql", "mariadb"):
        stmt = stmt.on_duplicate_key_update(updates)  # MySQL applies these in order
    else:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=dict(updates))
    _statements[key] = stmt
    return stmt


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    return tuple((v is None, v if v is not None else 0) for v in key)


def _updates(table: sa.Table, columns: Sequence[str], new: Any) -> list[tuple[str, Any]]:
    """SET clauses; ``raw`` before ``detail`` because MySQL evaluates them left to right."""
    updates: list[tuple[str, Any]] = []
    has_detail = "detail" in table.c and "detail" in columns
    for name in columns:
        if name in ("raw", "detail") and has_detail:
            continue
        updates.append((name, new[name]))
    if has_detail:
        # literal SQL, not bound parameters: pymysql's executemany cannot bind inside ON DUPLICATE KEY
        full: sa.ColumnElement[str] = sa.literal_column("'full'")
        if "raw" in columns:
            keep = sa.and_(table.c.detail == full, new["detail"] != full)
            updates.append(("raw", sa.case((keep, table.c.raw), else_=new["raw"])))
        updates.append(("detail", sa.case((table.c.detail == full, full), else_=new["detail"])))
    return updates


def replace_children(
    conn: sa.Connection, table: sa.Table, parent_column: str, parent_ids: Iterable[str], rows: Iterable[Row]
) -> int:
    """Replace the child rows (e.g. ``album_artists``) of the given parents with ``rows``."""
    ids = sorted(set(parent_ids))
    if not ids:
        return 0
    delete, insert = _child_statements(table, parent_column)
    conn.execute(delete, {"parents": ids})
    rows = list(rows)
    if rows:
        execute_many(conn, insert, tuple(rows[0]), rows)
    return len(rows)


_child_cache: dict[tuple[str, str], tuple[sa.Delete, sa.Insert, sa.Table]] = {}


def _child_statements(table: sa.Table, parent_column: str) -> tuple[sa.Delete, sa.Insert]:
    """The delete (of the children of the bound ``parents``) and the insert of a child table, built once."""
    cached = _child_cache.get((table.name, parent_column))
    if cached is None or cached[2] is not table:
        parents: sa.BindParameter[str] = sa.bindparam("parents", expanding=True)
        cached = (table.delete().where(table.c[parent_column].in_(parents)), table.insert(), table)
        _child_cache[(table.name, parent_column)] = cached
    return cached[0], cached[1]


def insert_missing(conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> int:
    """Insert rows whose key is not there yet; existing rows are left alone."""
    rows = list(rows)
    if not rows:
        return 0
    columns = tuple(rows[0])
    execute_many(conn, _upsert_statement(conn.dialect.name, table, columns, update=False), columns, rows)
    return len(rows)


def _do_nothing_for(dialect: str, table: sa.Table, stmt: Any) -> Any:
    keys = [c.name for c in table.primary_key.columns]
    if dialect in ("mysql", "mariadb"):
        return stmt.on_duplicate_key_update({keys[0]: table.c[keys[0]]})
    return stmt.on_conflict_do_nothing(index_elements=keys)


def write_rows(conn: sa.Connection, rows: Rows) -> int:
    """Write what :mod:`spotify_catalog.transform` gathered (call inside a transaction); row count."""
    written = 0
    for name, table_rows in sorted(rows.upserts.items()):  # tables in a fixed order: see upsert
        written += upsert(conn, schema.metadata.tables[name], table_rows)
    for name, parents in sorted(rows.children.items()):
        table = schema.metadata.tables[name]
        parent_column = table.primary_key.columns.values()[0].name
        children = [row for parent_rows in parents.values() for row in parent_rows]
        written += replace_children(conn, table, parent_column, parents, children)
    return written


T = TypeVar("T")

# transient conflicts between concurrent writers: the transaction is run again
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # PostgreSQL serialization failure, deadlock detected
_RETRY_MYSQL_CODES = frozenset({1213, 1205})  # MySQL/MariaDB deadlock, lock wait timeout


def is_conflict(exc: sa.exc.DBAPIError) -> bool:
    """Whether a database error is a deadlock or serialization failure worth running again."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    code = next(iter(getattr(orig, "args", ())), None)
    return code in _RETRY_MYSQL_CODES


def in_transaction(
    engine: sa.Engine,
    work: Callable[[sa.Connection], T],
    *,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work`` in a transaction of its own, run again (up to ``attempts`` times, with a short random
    pause) when the database aborts it for a deadlock or a serialization failure: concurrent crawls
    writing the same rows."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            if attempt == attempts or not is_conflict(exc):
                raise
            log.info("transaction aborted by a concurrent writer (%s); again", describe_error(exc))
            sleep(random.uniform(0.01, 0.05) * attempt)  # jitter
    raise AssertionError("unreachable")


def table_contents(
    conn: sa.Connection, table: sa.Table, exclude: Sequence[str] = ("fetched_at",)
) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (without the ``exclude`` columns), sorted by primary key in Python (the
    same order on every backend, whatever its collation): for comparisons."""
    columns = [c for c in table.c if c.name not in exclude]
    keys = [i for i, c in enumerate(columns) if c.primary_key]
    rows = [tuple(r) for r in conn.execute(sa.select(*columns))]
    return sorted(rows, key=lambda r: tuple(r[i] for i in keys))
