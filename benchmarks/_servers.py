"""The database servers benchmarks use (not a benchmark: ``python -m benchmarks`` skips it): their URLs
from the tests' environment variables, whether they can be reached, and a fresh database on one."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from spotify_catalog.redaction import redact_url

SERVERS = {
    "postgresql": ("SPOTIFY_CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": ("SPOTIFY_CATALOG_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}


def server_url(backend: str) -> str:
    variable, default = SERVERS[backend]
    return os.environ.get(variable, default)


def unreachable(backend: str) -> str | None:
    """Why ``backend``'s server cannot be used, or ``None``."""
    server = server_url(backend)
    engine = sa.create_engine(server)
    try:
        with engine.connect():
            return None
    except sa.exc.SQLAlchemyError as exc:
        return f"{redact_url(server)}: {str(getattr(exc, 'orig', exc)).splitlines()[0]}"
    finally:
        engine.dispose()


@contextmanager
def fresh_database(backend: str, prefix: str = "sc_bench") -> Iterator[str]:
    """The URL of a new empty database on ``backend``'s server, dropped at the end."""
    server = server_url(backend)
    name = f"{prefix}_{time.monotonic_ns()}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        yield sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()
