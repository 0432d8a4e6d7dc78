"""Secrets: every command, at maximum verbosity, with a known client secret, and every access token
the emulator issued: none of them in any output, log line, database or exported file. The tool keeps
no credentials or token cache on disk; any file it writes that would be one must be mode 0600."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from spotify_catalog.cli import main
from spotify_catalog.emulator import EmulatorState

CLIENT_ID = "known-client-id"
SECRET = "Known-Secret-4f1c9e2b7a"
BTS = "3Nrfpe0tUJi4K4DXYWgMUX"


@pytest.fixture
def issued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access token any in-process emulator issues during the test."""
    tokens: list[str] = []
    original = EmulatorState.issue_token

    def recording(self: EmulatorState, *args: Any) -> str:
        token = original(self, *args)
        tokens.append(token)
        return token

    monkeypatch.setattr(EmulatorState, "issue_token", recording)
    return tokens


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("SPOTIFY_"):
            monkeypatch.delenv(name)
    return tmp_path


def _leaks(text: str | bytes, secrets: list[str]) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in secrets if s.encode() in data]


def test_no_command_shows_the_secret_or_a_token(make_emulator: Any, workdir: Path, issued: list[str]) -> None:
    emu = make_emulator(profile="extended", client_id=CLIENT_ID, client_secret=SECRET, token_ttl=5)
    base = ["-vvv", "--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    env = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": SECRET}
    db_url = f"sqlite:///{workdir / 'catalog.db'}"
    runs: list[tuple[list[str], dict[str, str], int]] = [
        (["auth", "check"], env, 0),
        (["search", "BTS", "--type", "artist,track", "--format", "json"], env, 0),
        (["search", "BTS", "--format", "table"], env, 0),
        (["search", "year:2020", "--type", "album", "--all", "--format", "jsonl"], env, 0),
        (["get", "artist", BTS, "3Nrfpe0tUJi4K4DXYWgMUY"], env, 0),
        (["get", "show", BTS], env, 1),  # a 404 on the way
        (["crawl", "--db", db_url, "--artist", "BTS", "--artist", BTS, "--depth", "track-details"], env, 0),
        (["crawl", "--db", db_url, "--artist", "BTS", "--refresh-after", "0"], env, 0),
        (
            ["crawl", "--db", db_url, "--artist", "BTS", "--refresh-after", "0", "--max-requests", "2"],
            env,
            75,
        ),
        (
            ["export", "--db", db_url, "--to", str(workdir / "jsonl"), "--format", "jsonl", "--with-raw"],
            env,
            0,
        ),
        (["export", "--db", db_url, "--to", str(workdir / "csv"), "--format", "csv", "--with-raw"], env, 0),
        (
            ["export", "--db", db_url, "--to", str(workdir / "pq"), "--compression", "none", "--with-raw"],
            env,
            0,
        ),
        (["export", "--db", db_url, "--print-ddl", "duckdb", "--to", str(workdir / "lake")], env, 0),
        (["auth", "check"], {**env, "SPOTIFY_CLIENT_SECRET": SECRET + "-wrong"}, 1),
        (["search", "BTS"], {**env, "SPOTIFY_CLIENT_SECRET": SECRET + "-wrong"}, 1),
        (["demo", "--db", f"sqlite:///{workdir / 'demo.db'}", "--depth", "albums"], {}, 0),
    ]
    outputs: list[Result] = []
    for number, (args, environment, code) in enumerate(runs):
        if number == 7:
            emu.advance(10)  # the tokens of earlier commands expired: 401s, renewals
        result = CliRunner().invoke(main, [*base, *args], env=environment)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output
        outputs.append(result)

    secrets = [SECRET, SECRET + "-wrong", "emulator-client-secret", *issued]
    assert len(issued) >= 5  # tokens were issued (and renewed) along the way
    for args, result in zip(runs, outputs, strict=True):
        assert not _leaks(result.output, secrets), args[0]
    assert any("access token obtained" in r.output for r in outputs)  # the logs were on

    written = [p for p in workdir.rglob("*") if p.is_file()]
    assert {".jsonl", ".csv", ".parquet"} <= {p.suffix for p in written}
    assert any(p.name.startswith("catalog.db") for p in written)
    for path in written:  # no file the commands wrote (databases, lake, caches) holds a secret
        assert not _leaks(path.read_bytes(), secrets), path


def test_the_emulator_command_logs_no_secret_or_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    command = [
        sys.executable,
        "-m",
        "spotify_catalog",
        "-vvv",
        "emulator",
        "--artists",
        "50",
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        SECRET,
    ]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:")
        token = httpx.post(
            url + "/api/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, SECRET)
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url + f"/v1/artists/{BTS}", headers=headers).status_code == 200
        assert httpx.get(url + "/v1/artists/nope", headers=headers).status_code == 400
        assert (
            httpx.post(
                url + "/api/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, SECRET + "x")
            ).status_code
            == 400
        )
        config = httpx.get(url + "/_emulator/config").text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    log = err.decode()
    assert "/v1/artists/" in log  # requests were logged
    assert not _leaks(log + out.decode() + config, [SECRET, token])


# --------------------------------------------------------------------------- database credentials
DB_SECRET = "S3cretXYZ"


@pytest.fixture
def mysql_user_url(mysql_url: str) -> Iterator[str]:
    """The test database reached as a user of its own whose password is ``DB_SECRET`` (not in the URL)."""
    import sqlalchemy as sa

    url = sa.engine.make_url(mysql_url)
    user = f"sc_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mysql_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{DB_SECRET}'"))
        conn.execute(sa.text(f"GRANT ALL ON {url.database}.* TO '{user}'@'%'"))
    try:
        yield url.set(username=user, password=None).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        admin.dispose()


@pytest.fixture(params=["postgresql", "mysql"])
def db_with_password(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(the URL to read the database with, the URL with ``?password=DB_SECRET`` a user would give)."""
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))  # trust authentication: the password is unused
        admin = url
    else:
        url = str(request.getfixturevalue("mysql_user_url"))  # the password is needed
        admin = str(request.getfixturevalue("mysql_url"))
    return admin, f"{url}?password={DB_SECRET}"


def _unreachable(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).set(port=1).render_as_string(hide_password=False)


def test_a_database_password_in_the_url_shows_nowhere(
    make_emulator: Any, db_with_password: tuple[str, str], tmp_path: Path
) -> None:
    """``?password=`` in --db: not in crawl/export output or logs (-vv), not in ``_runs.command``, not in
    exported files, not in the one-line error of a connection that fails."""
    import sqlalchemy as sa

    admin_url, url = db_with_password
    emu = make_emulator()
    base = ["-vv", "--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    env = {"SPOTIFY_CLIENT_ID": "emulator-client-id", "SPOTIFY_CLIENT_SECRET": "emulator-client-secret"}
    lake = tmp_path / "lake"
    runs = [
        (["crawl", "--db", url, "--artist", "BTS", "--depth", "albums"], 0),
        (["export", "--db", url, "--to", str(lake), "--format", "jsonl", "--tables", "artists,_runs"], 0),
        (["crawl", "--db", _unreachable(url), "--artist", "BTS"], 1),
        (["export", "--db", _unreachable(url), "--to", str(tmp_path / "lake2")], 1),
        # the account's ledger in the same database, then unreachable
        (["--ledger", url, "crawl", "--db", url, "--artist", "BTS", "--depth", "albums"], 0),
        (["--ledger", url, "status", "--db", url, "--format", "json"], 0),
        (["--ledger", url, "get", "artist", BTS], 0),
        (["--ledger", _unreachable(url), "crawl", "--db", url, "--artist", "BTS", "--depth", "albums"], 1),
        (["--ledger", _unreachable(url), "get", "artist", BTS], 1),
    ]
    for args, code in runs:
        result = CliRunner().invoke(main, [*base, *args], env=env)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output
        assert DB_SECRET not in result.output, args
        if code:
            error = result.output.strip().splitlines()[-1]
            assert error.startswith("Error: cannot "), error
            assert "password=***" in error, error  # the URL is still shown, without the secret

    engine = sa.create_engine(admin_url)
    try:
        with engine.connect() as conn:
            commands = conn.execute(sa.text("SELECT command FROM _runs")).scalars().all()
    finally:
        engine.dispose()
    assert len(commands) == 2
    for command in commands:
        assert DB_SECRET not in command
        assert "password=***" in command

    exported = [p for p in lake.rglob("*") if p.is_file()]
    assert any("_runs" in p.parts for p in exported)
    for path in exported:
        assert DB_SECRET.encode() not in path.read_bytes(), path
