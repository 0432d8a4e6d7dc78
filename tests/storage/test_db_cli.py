"""The database checks as the commands see them: another program's database is refused before any
request (not even a token), ``--db-schema`` and ``postgres://`` work for crawl and export."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from emulated import CLIENT_ID, CLIENT_SECRET
from spotify_catalog.cli import main
from spotify_catalog.storage import schema


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("SPOTIFY_CATALOG_MODE", raising=False)


def run(emu: Any, *args: str) -> Result:
    env = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"] if emu else []
    result = CliRunner().invoke(main, [*base, *args], env=env)
    assert "Traceback" not in result.output, result.output
    return result


def small_artist(emu: Any) -> str:
    """An artist with a discography of one or two albums: a crawl of a few requests."""
    catalog = emu.catalog
    return next(a for a in catalog.artist_ids() if 1 <= len(catalog.artist_album_ids(a, ("album",))) <= 2)


def crawl_args(emu: Any, url: str, *more: str) -> list[str]:
    return ["crawl", "--db", url, "--artist", small_artist(emu), "--depth", "albums", "--quiet", *more]


@pytest.mark.parametrize(
    ("ddl", "columns"),
    [
        (
            ["CREATE TABLE artists(id integer, title, country)", "CREATE TABLE _state(k, v)"],
            "id, title, country",
        ),
        (["CREATE TABLE artists(id text, name text)"], "id, name"),
    ],
)
def test_a_foreign_sqlite_file_is_refused_before_any_request(
    emulator: Any, tmp_path: Path, ddl: list[str], columns: str
) -> None:
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as conn:
        for statement in ddl:
            conn.execute(statement)
        conn.execute("INSERT INTO artists(id) VALUES (1)")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    url = f"sqlite:///{path}"
    result = run(emulator, "crawl", "--db", url, "--artist", "BTS")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {url} is not a spotify-catalog database (table artists has columns {columns}); "
        "use another database or schema\n"
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]
    assert emulator.stats()["requests"] == 0  # token requests included


def test_a_foreign_postgresql_database_is_refused_before_any_request(
    emulator: Any, postgres_url: str
) -> None:
    other = sa.create_engine(postgres_url)
    with other.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE artists (id text, name text)")
    result = run(emulator, "crawl", "--db", postgres_url, "--artist", "BTS")
    assert result.exit_code == 2
    assert "is not a spotify-catalog database (table artists has columns id, name)" in result.stderr
    assert result.stderr.count("\n") == 1
    assert sa.inspect(other).get_table_names() == ["artists"]
    other.dispose()
    assert emulator.stats()["requests"] == 0


def exported_artists(lake: Path) -> int:
    return sum(pq.read_table(f).num_rows for f in (lake / "artists").rglob("*.parquet"))


def test_db_schema_crawls_into_that_schema_and_export_reads_it(
    emulator: Any, postgres_url: str, tmp_path: Path
) -> None:
    crawled = run(emulator, *crawl_args(emulator, postgres_url, "--db-schema", "music"))
    assert crawled.exit_code == 0, crawled.output
    plain = sa.create_engine(postgres_url)
    try:
        assert sa.inspect(plain).get_table_names() == []  # nothing in public
        with plain.connect() as conn:
            artists = conn.exec_driver_sql("SELECT count(*) FROM music.artists").scalar()
            command = conn.exec_driver_sql("SELECT command FROM music._runs").scalar()
    finally:
        plain.dispose()
    assert isinstance(artists, int)
    assert artists >= 1
    assert "--db-schema music" in command

    lake = tmp_path / "lake"
    exported = run(None, "export", "--db", postgres_url, "--db-schema", "music", "--to", str(lake))
    assert exported.exit_code == 0, exported.output
    assert exported_artists(lake) == artists

    empty = run(None, "export", "--db", postgres_url, "--to", str(tmp_path / "other"))
    assert empty.exit_code == 2  # public has no tables: the schema really was used
    assert "has no table" in empty.stderr


def test_db_schema_is_refused_for_sqlite_before_any_request(emulator: Any, tmp_path: Path) -> None:
    result = run(emulator, *crawl_args(emulator, f"sqlite:///{tmp_path / 'c.db'}", "--db-schema", "music"))
    assert result.exit_code == 2
    assert result.stderr == "Error: --db-schema is for PostgreSQL; SQLite has no schemas: use another file\n"
    assert emulator.stats()["requests"] == 0


def test_postgres_urls_work_for_crawl_and_export(emulator: Any, postgres_url: str, tmp_path: Path) -> None:
    heroku = "postgres://" + postgres_url.split("://", 1)[1]
    crawled = run(emulator, *crawl_args(emulator, heroku))
    assert crawled.exit_code == 0, crawled.output
    exported = run(None, "export", "--db", heroku, "--to", str(tmp_path / "lake"))
    assert exported.exit_code == 0, exported.output
    assert exported_artists(tmp_path / "lake") >= 1


@pytest.mark.parametrize("command", ["crawl", "demo", "export"])
def test_every_database_command_has_db_schema(command: str) -> None:
    result = run(None, command, "--help")
    assert "--db-schema NAME" in result.output


def _commands(url: str, tmp_path: Path) -> dict[str, list[str]]:
    """Every command that opens a crawl database, on ``url``."""
    return {
        "crawl": ["crawl", "--db", url, "--artist", "BTS", "--quiet"],
        "status": ["status", "--db", url],
        "plan": ["crawl", "--plan", "--db", url, "--artist", "BTS"],
        "report": ["report", "--db", url, "--out", str(tmp_path / "report.html")],
        "export": ["export", "--db", url, "--to", str(tmp_path / "lake")],
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


COMMANDS = ["crawl", "status", "plan", "report", "export"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_newer_schema(emulator: Any, tmp_path: Path, command: str) -> None:
    """The line and exit code of ``crawl`` (``export`` wrote the lake of a schema it does not know)."""
    path = tmp_path / "newer.db"
    url = f"sqlite:///{path}"
    assert run(emulator, *crawl_args(emulator, url)).exit_code == 0
    newer = schema.SCHEMA_VERSION + 1
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE _state SET value = ? WHERE key = 'schema_version'", (str(newer),))
    conn.close()
    before, requests = _digest(path), emulator.stats()["requests"]
    result = run(emulator, *_commands(url, tmp_path)[command])
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: the database has schema version {newer}, newer than this program's "
        f"{schema.SCHEMA_VERSION}: upgrade spotify-catalog\n",
    )
    assert result.stdout == ""
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newer.db"]
    assert emulator.stats()["requests"] == requests


FOREIGN = {
    "artists": (
        ["CREATE TABLE artists (id integer, title text, country text)"],
        "artists",
        "id, title, country",
    ),
    "_runs": (["CREATE TABLE _runs (id integer, what text)"], "_runs", "id, what"),
}


@pytest.mark.parametrize("server", ["sqlite", "postgresql"])
@pytest.mark.parametrize("shape", list(FOREIGN))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_another_programs_database_the_same_way(
    emulator: Any, request: pytest.FixtureRequest, tmp_path: Path, command: str, shape: str, server: str
) -> None:
    """One line and exit 2 from every command (``status`` said "nothing crawled yet", ``crawl --plan``
    gave an estimate, another program's ``_runs`` gave ``no such table: _state``), nothing written,
    no request sent."""
    ddl, table, columns = FOREIGN[shape]
    path = tmp_path / "theirs.db"
    url = f"sqlite:///{path}" if server == "sqlite" else str(request.getfixturevalue("postgres_url"))
    other = sa.create_engine(url)
    with other.begin() as conn:
        for statement in ddl:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"INSERT INTO {table} (id) VALUES (1)")
    tables = sa.inspect(other).get_table_names
    other.dispose()
    result = run(emulator, *_commands(url, tmp_path)[command])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"Error: {url} is not a spotify-catalog database (table {table} has columns {columns}); "
        "use another database or schema\n",
    )
    assert tables() == [table]
    other.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["theirs.db"] if server == "sqlite" else [])
    assert emulator.stats()["requests"] == 0


READERS = ["status", "plan", "report", "export"]


@pytest.mark.parametrize("database", ["sqlite://", "sqlite:///:memory:", "sqlite:///none.db"])
@pytest.mark.parametrize("command", READERS)
def test_every_reading_command_finds_no_database_the_same_way(
    tmp_path: Path, command: str, database: str
) -> None:
    """A SQLite file not created yet and ``:memory:`` are no database: one line and exit 2 (``status``
    said "nothing crawled yet" of ``:memory:``, ``report`` wrote its page, ``export`` had a line of its
    own); ``crawl --plan`` counts the requests of an empty database, as a crawl would create it. Nothing
    is created."""
    url = database.replace("none.db", str(tmp_path / "none.db"))
    result = run(None, *_commands(url, tmp_path)[command])
    if command == "plan":
        assert (result.exit_code, result.stderr) == (0, "")
        assert "requests left: 32 (estimated; depth tracks" in result.stdout  # the constants' artist
        assert "(constants: nothing stored yet)" in result.stdout
    else:
        assert (result.exit_code, result.stdout, result.stderr) == (
            2,
            "",
            f"Error: no database at {url} (nothing crawled there: check --db)\n",
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READERS)
def test_every_reading_command_names_an_unreachable_server_the_same_way(tmp_path: Path, command: str) -> None:
    """One line naming the database, its password hidden, and exit 1 (``status``, ``report`` and
    ``crawl --plan`` said ``database error: ...``)."""
    url = "postgresql+psycopg://user:s3cr3t-pw@127.0.0.1:9/db"
    result = run(None, *_commands(url, tmp_path)[command])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(
        "Error: cannot open the database postgresql+psycopg://user:***@127.0.0.1:9/db: "
    )
    assert result.stderr.count("\n") == 1
    assert "s3cr3t-pw" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READERS)
def test_every_reading_command_finds_no_schema_the_same_way(
    postgres_url: str, tmp_path: Path, command: str
) -> None:
    """A PostgreSQL schema that does not exist (a typo of ``--db-schema``) is no database: one line and
    exit 2 (``status`` said "nothing crawled yet" with exit 0, ``report`` wrote its page); ``crawl
    --plan`` counts the requests of an empty database, as a crawl would create it. Nothing is created."""
    result = run(None, *_commands(postgres_url, tmp_path)[command], "--db-schema", "nosuchschema")
    if command == "plan":
        assert (result.exit_code, result.stderr) == (0, "")
        assert "requests left: 32 (estimated; depth tracks" in result.stdout
    else:
        assert (result.exit_code, result.stdout, result.stderr) == (
            2,
            "",
            f"Error: no schema nosuchschema in {postgres_url} (nothing crawled there: check --db-schema)\n",
        )
    engine = sa.create_engine(postgres_url)
    try:
        assert "nosuchschema" not in sa.inspect(engine).get_schema_names()
    finally:
        engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_a_schema_the_url_names_that_does_not_exist_is_no_database(postgres_url: str, tmp_path: Path) -> None:
    url = f"{postgres_url}?options=-csearch_path%3DMissing"
    result = run(None, "status", "--db", url)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: no schema missing in ")


def test_an_existing_schema_with_nothing_crawled_is_still_an_empty_crawl(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA music")
    engine.dispose()
    result = run(None, "status", "--db", postgres_url, "--db-schema", "music")
    assert (result.exit_code, result.stderr) == (0, "")
    assert "nothing crawled yet" in result.stdout


@pytest.mark.parametrize("command", ["status", "report", "export", "crawl", "demo"])
def test_db_schema_help_says_what_the_command_does_with_the_schema(command: str) -> None:
    """Only ``crawl`` and ``demo`` create the schema (the help of every command said they all did)."""
    help_text = " ".join(run(None, command, "--help").output.split())
    if command in ("crawl", "demo"):
        assert "the schema to crawl into, created if missing" in help_text
    else:
        assert (
            "the schema to read; nothing is created, and a schema that does not exist is an error"
            in help_text
        )
        assert "created if missing" not in help_text


@pytest.mark.parametrize("command", READERS)
def test_db_schema_on_mariadb_is_refused_saying_how_to_name_a_database(
    mysql_url: str, tmp_path: Path, command: str
) -> None:
    result = run(None, *_commands(mysql_url, tmp_path)[command], "--db-schema", "music")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: --db-schema is for PostgreSQL; on MySQL/MariaDB a schema is a database: "
        "name it in the URL (mysql+pymysql://host/NAME)\n"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_url_sqlalchemy_refuses_is_one_clean_line(tmp_path: Path, command: str) -> None:
    """SQLAlchemy's message of several lines (the valid URL forms) is one line of its own words: no
    escaped line breaks (it printed ``...catalog.db\\x0aValid SQLite URL forms are:\\x0a ...``)."""
    result = run(None, *_commands("sqlite://catalog.db", tmp_path)[command])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: unusable database URL sqlite://catalog.db: Invalid SQLite URL: sqlite://catalog.db; "
        "Valid SQLite URL forms are: sqlite:///:memory: (or, sqlite://); sqlite:///relative/path/to/file.db; "
        "sqlite:////absolute/path/to/file.db\n"
    )
    assert list(tmp_path.iterdir()) == []
