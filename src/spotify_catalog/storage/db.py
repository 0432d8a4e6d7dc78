"""Engine, schema creation/migration and per-dialect upserts.

``upsert`` updates only the columns a row carries, so a simplified object never erases the columns of
a full one; ``raw`` is replaced only by a full object or while the stored row is still simplified, and
``detail`` never goes back from ``full`` to ``simplified``.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

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
_known: set[str] = set()
_known_lock = threading.Lock()


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
    values = {v for v in values if len(v) >= 3}
    with _known_lock:
        _known.update(values)
    for value in values:
        settings.register_secret(value)


def scrub(text: str) -> str:
    """``text`` with every credential :func:`remember_secrets` noted replaced by ``***``."""
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (sqlite, postgresql+psycopg, mysql+pymysql); a bad URL is a usage error."""
    remember_secrets(url)
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UsageError(f"not a database URL: {redact(url)!r} (e.g. sqlite:///catalog.db)") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif parsed.get_backend_name() == "mysql":
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise UsageError(f"unusable database URL {redact(url)}: {scrub(str(exc))}") from None
    except ModuleNotFoundError as exc:
        raise UsageError(f"database driver {exc.name!r} is not installed for {redact(url)}") from None
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_readonly(url: str) -> sa.Engine:
    """An engine that only reads ``url``, for ``export``: nothing is created or migrated. A SQLite file
    is opened without changing its journal mode and with ``query_only``; in a read-only directory,
    where a WAL database's ``-shm`` index cannot be created, it is opened ``mode=ro&immutable=1``
    (safe there: no other process can write to it either)."""
    remember_secrets(url)
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise UsageError(f"not a database URL: {redact(url)!r} (e.g. sqlite:///catalog.db)") from None
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url)
    if parsed.query.get("uri"):
        return _sqlite_uri_engine(parsed)
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

    return sa.create_engine(parsed, creator=connect)


def _sqlite_uri_engine(parsed: sa.URL) -> sa.Engine:
    """A ``sqlite:///file:...?uri=true`` URL as given, read-only unless it names a ``mode``."""
    if "mode" not in parsed.query:
        parsed = parsed.update_query_dict({"mode": "ro"})
    return sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: sa.Engine) -> None:
    """Create the schema, or bring an older one up to :data:`schema.SCHEMA_VERSION`."""
    try:
        with engine.begin() as conn:
            schema.metadata.create_all(conn)
            version = conn.execute(
                sa.select(schema.state.c.value).where(schema.state.c.key == "schema_version")
            ).scalar()
            if version is None:
                conn.execute(
                    schema.state.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION))
                )
            elif int(version) > schema.SCHEMA_VERSION:
                raise StorageError(
                    f"the database has schema version {version}, newer than this program's "
                    f"{schema.SCHEMA_VERSION}: upgrade spotify-catalog"
                )
            # versions below SCHEMA_VERSION would be migrated here, one step at a time
    except sa.exc.SQLAlchemyError as exc:
        where = redact(engine.url)
        raise StorageError(f"cannot set up the database {where}: {describe_error(exc)}") from None


def open_database(url: str) -> sa.Engine:
    """``create_engine`` + ``migrate``."""
    engine = create_engine(url)
    migrate(engine)
    return engine


def describe_error(exc: BaseException) -> str:
    """The first line of a database error, for a one-line message, without the credentials of the
    database URLs opened (see :func:`remember_secrets`)."""
    text = str(getattr(exc, "orig", None) or exc)
    lines = [line for line in text.splitlines() if line.strip()]
    return scrub(lines[0]) if lines else type(exc).__name__


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name in ("mysql", "mariadb"):
        return mysql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StorageError(f"unsupported database dialect {name!r}")


def upsert(conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> int:
    """Insert or update ``rows`` by primary key, touching only the columns each row has.

    Rows with different column sets are written by separate statements. Returns the number of rows.
    """
    groups: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    keys = [c.name for c in table.primary_key.columns]
    count = 0
    for columns, group in groups.items():
        # one row per key within a statement (PostgreSQL refuses duplicates in one ON CONFLICT)
        unique = list({tuple(r[k] for k in keys): r for r in group}.values())
        count += len(unique)
        stmt = _insert(conn, table)
        new = stmt.inserted if conn.dialect.name in ("mysql", "mariadb") else stmt.excluded
        updates = _updates(table, [c for c in columns if c not in keys], new)
        if not updates:
            stmt = _do_nothing(conn, table, stmt)
        elif conn.dialect.name in ("mysql", "mariadb"):
            stmt = stmt.on_duplicate_key_update(updates)  # MySQL applies these in order
        else:
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_=dict(updates))
        conn.execute(stmt, unique)
    return count


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
    conn.execute(table.delete().where(table.c[parent_column].in_(ids)))
    rows = list(rows)
    if rows:
        conn.execute(table.insert(), rows)
    return len(rows)


def insert_missing(conn: sa.Connection, table: sa.Table, rows: Iterable[Row]) -> int:
    """Insert rows whose key is not there yet; existing rows are left alone."""
    rows = list(rows)
    if not rows:
        return 0
    conn.execute(_do_nothing(conn, table, _insert(conn, table)), rows)
    return len(rows)


def _do_nothing(conn: sa.Connection, table: sa.Table, stmt: Any) -> Any:
    keys = [c.name for c in table.primary_key.columns]
    if conn.dialect.name in ("mysql", "mariadb"):
        return stmt.on_duplicate_key_update({keys[0]: table.c[keys[0]]})
    return stmt.on_conflict_do_nothing(index_elements=keys)


def write_rows(conn: sa.Connection, rows: Rows) -> int:
    """Write what :mod:`spotify_catalog.transform` gathered (call inside a transaction); row count."""
    written = 0
    for name, table_rows in rows.upserts.items():
        written += upsert(conn, schema.metadata.tables[name], table_rows)
    for name, parents in rows.children.items():
        table = schema.metadata.tables[name]
        parent_column = table.primary_key.columns.values()[0].name
        children = [row for parent_rows in parents.values() for row in parent_rows]
        written += replace_children(conn, table, parent_column, parents, children)
    return written


def table_contents(
    conn: sa.Connection, table: sa.Table, exclude: Sequence[str] = ("fetched_at",)
) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (without the ``exclude`` columns), sorted by primary key in Python (the
    same order on every backend, whatever its collation): for comparisons."""
    columns = [c for c in table.c if c.name not in exclude]
    keys = [i for i, c in enumerate(columns) if c.primary_key]
    rows = [tuple(r) for r in conn.execute(sa.select(*columns))]
    return sorted(rows, key=lambda r: tuple(r[i] for i in keys))
