"""Engines: one for a database URL (the installed driver, the PostgreSQL schema in use, the tuning of
each backend), how messages name its database, and a database error as one line without secrets."""

from __future__ import annotations

import re
from typing import Any

import orjson
import sqlalchemy as sa

from spotify_catalog import extras
from spotify_catalog.errors import UsageError, joined_lines
from spotify_catalog.redaction import MASK, redact_url, register_url_secrets, scrub

# a bare dialect name picks the driver this project installs (SQLAlchemy's defaults, psycopg2 and
# mysqlclient, are not); ``postgres://`` (Heroku style) is PostgreSQL
_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SCHEMA_OPTION = "spotify_catalog_schema"  # engine execution option: the PostgreSQL schema in use
_WHERE_OPTION = "spotify_catalog_where"  # engine execution option: the database as messages name it
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
    parsed = _with_driver(parse_url(url))
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
        message = joined_lines(scrub(str(exc), MASK))
        raise UsageError(f"unusable database URL {redact_url(url)}: {message}") from None
    except ModuleNotFoundError as exc:
        raise extras.missing(redact_url(url), exc) from None
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    if target is not None:
        engine.update_execution_options(**{_SCHEMA_OPTION: target})
    name_engine(engine, url)
    return engine


def parse_url(url: str) -> sa.URL:
    """``url`` parsed, its credentials registered (:mod:`spotify_catalog.redaction`); a usage error
    when SQLAlchemy cannot parse it."""
    register_url_secrets(url)
    try:
        return sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UsageError(f"not a database URL: {redact_url(url)!r} (e.g. sqlite:///catalog.db)") from None


def name_engine(engine: sa.Engine, url: str) -> None:
    """Record how messages name ``engine``'s database: ``url`` as it was given (:func:`name_of`)."""
    engine.update_execution_options(**{_WHERE_OPTION: _with_schema(engine, redact_url(url))})


def name_of(engine: sa.Engine) -> str:
    """The database as messages name it: its URL as it was given, password hidden, and the PostgreSQL
    schema in use (an engine not made here: its own URL)."""
    named = engine.get_execution_options().get(_WHERE_OPTION)
    return str(named) if named else _with_schema(engine, redact_url(engine.url))


def schema_in_use(engine: sa.Engine) -> str | None:
    """The PostgreSQL schema ``engine``'s connections use (``--db-schema`` or the URL's
    ``search_path``); ``None``: the server's default."""
    target = engine.get_execution_options().get(_SCHEMA_OPTION)
    return str(target) if target else None


def _with_schema(engine: sa.Engine, where: str) -> str:
    target = schema_in_use(engine)
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


def describe_error(exc: BaseException) -> str:
    """The first line of a database error, for a one-line message, without the credentials of the
    database URLs opened (see :func:`~spotify_catalog.redaction.register_url_secrets`)."""
    text = str(getattr(exc, "orig", None) or exc)
    lines = [line for line in text.splitlines() if line.strip()]
    return scrub(lines[0], MASK) if lines else type(exc).__name__
