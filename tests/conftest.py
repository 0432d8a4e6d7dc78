"""Fixtures shared by the whole suite.

Database servers: ``SPOTIFY_CATALOG_TEST_POSTGRES_URL`` / ``SPOTIFY_CATALOG_TEST_MYSQL_URL`` name a server
and a database the tests may use; each test that asks for ``postgres_url`` / ``mysql_url`` gets a fresh
database of its own on that server, dropped afterwards. Without the variable such tests skip, unless
``SPOTIFY_CATALOG_REQUIRE_SERVERS=1`` (set by ``.ci/run``), when they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from required import unavailable


@pytest.fixture(autouse=True)
def _own_cache_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test has a cache directory of its own (the API mode one-off commands remember) and a data
    directory of its own (the accounts' ledger); neither the ledger nor the account is taken from the
    environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))
    for variable in ("SPOTIFY_CATALOG_LEDGER", "SPOTIFY_CATALOG_ACCOUNT"):
        monkeypatch.delenv(variable, raising=False)


def _server_url(variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        unavailable(f"{variable} is not set")
    return url


def _fresh_database(server_url: str, isolation: str) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"sc_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level=isolation, pool_pre_ping=True)  # survives restarts
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable(f"database server at {server_url} is not reachable: {exc}")
    try:
        yield sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of an empty PostgreSQL database of this test's own."""
    yield from _fresh_database(_server_url("SPOTIFY_CATALOG_TEST_POSTGRES_URL"), "AUTOCOMMIT")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A SQLAlchemy URL of an empty MySQL/MariaDB database of this test's own."""
    yield from _fresh_database(_server_url("SPOTIFY_CATALOG_TEST_MYSQL_URL"), "AUTOCOMMIT")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on the three backends: a file SQLite database, PostgreSQL, MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    fixture = "postgres_url" if request.param == "postgresql" else "mysql_url"
    return str(request.getfixturevalue(fixture))


# --------------------------------------------------------------------------- emulator
@pytest.fixture
def make_emulator() -> Iterator[Any]:
    """Factory: ``make_emulator(**config_overrides)`` starts an emulator (development profile,
    200 artists unless overridden) on a free port in a thread; every one is stopped at test end."""
    from contextlib import ExitStack

    from spotify_catalog.emulator import EmulatorConfig, serve_in_thread

    with ExitStack() as stack:

        def start(**overrides: Any) -> Any:
            clock = overrides.pop("clock", None)
            settings: dict[str, Any] = {"artists": 200, **overrides}
            kwargs = {"clock": clock} if clock is not None else {}
            return stack.enter_context(serve_in_thread(EmulatorConfig(**settings), **kwargs))

        yield start


@pytest.fixture
def emulator(make_emulator: Any) -> Any:
    """A running emulator: development profile, seed 42, 200 artists."""
    return make_emulator()
