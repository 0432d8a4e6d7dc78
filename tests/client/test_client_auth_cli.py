"""``auth login``, ``auth status``, ``auth logout`` and ``auth check --user`` as a user runs them,
against the emulator over HTTP: ``auth login --no-browser`` in a subprocess, the printed URL opened
by the test as a browser would; one line and the documented exit code for each refusal; the refresh
token in no output, log, request log or ledger; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner, Result

from spotify_catalog import oauth
from spotify_catalog.cli import main
from spotify_catalog.emulator import EmulatorConfig, serve_in_thread
from spotify_catalog.settings import CONFIG_ENV, ENV_NAMES, Secret
from spotify_catalog.users import LoginStore, StoredLogin

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
REDIRECT = "http://127.0.0.1/callback"


@dataclass
class Emulated:
    emu: Any
    home: Path
    env: dict[str, str]

    @property
    def store(self) -> LoginStore:
        return LoginStore(self.home / "config" / "spotify-catalog")

    def secrets(self) -> list[str]:
        """Every refresh token stored now."""
        return [self.store.load(n).refresh_token.reveal() for n in self.store.names()]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulated]:
    config = EmulatorConfig(artists=60, users=USERS, redirect_uris=(REDIRECT,))
    with serve_in_thread(config) as emu:
        env = {k: v for k, v in os.environ.items() if k not in (*ENV_NAMES.values(), CONFIG_ENV)}
        env.update(
            XDG_CONFIG_HOME=str(tmp_path / "config"),
            XDG_DATA_HOME=str(tmp_path / "data"),
            XDG_CACHE_HOME=str(tmp_path / "cache"),
            SPOTIFY_CLIENT_ID=emu.config.client_id,
            SPOTIFY_API_URL=emu.url + "/v1",
            SPOTIFY_TOKEN_URL=emu.url + "/api/token",
        )
        monkeypatch.chdir(tmp_path)
        for name in (*ENV_NAMES.values(), CONFIG_ENV):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            if name.startswith(("XDG_", "SPOTIFY_")):
                monkeypatch.setenv(name, value)
        yield Emulated(emu, tmp_path, env)


@dataclass
class Login:
    returncode: int
    stdout: str
    stderr: str
    page: httpx.Response
    redirect_uri: str


def _spawn(world: Emulated, *args: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    """``auth login --no-browser ARGS`` started; the consent URL it printed, and its stderr so far."""
    command = [sys.executable, "-m", "spotify_catalog", "auth", "login", "--no-browser", *args]
    proc = subprocess.Popen(
        command, env=world.env, cwd=world.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("http") and "/authorize?" in line:
            return proc, line.strip(), seen
    raise AssertionError("".join(seen))


def _login(world: Emulated, *args: str, browser_adds: str = "") -> Login:
    """``auth login --no-browser`` in a subprocess (with ``-vv``: every log line on stderr); the URL it
    prints is opened as a browser would (``browser_adds``: more query, ``&user=bob``)."""
    proc, url, seen = _spawn(world, "-vv", "--redirect-uri", REDIRECT, "--timeout", "60", *args)
    redirect_uri = dict(httpx.URL(url).params)["redirect_uri"]
    page = httpx.get(url + browser_adds, follow_redirects=True, timeout=30)
    out, err = proc.communicate(timeout=60)
    return Login(proc.returncode, out, "".join(seen) + err, page, redirect_uri)


def _error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _refused(code: int, stderr: str, exit_code: int, *phrases: str) -> None:
    """Exit ``exit_code`` with one ``Error:`` line that says each of ``phrases``."""
    assert code == exit_code, stderr
    line = _error_line(stderr)
    assert [p for p in phrases if p not in line] == [], line


def _closed(uri: str) -> bool:
    parts = urlsplit(uri)
    with socket.socket() as probe:
        return probe.connect_ex((parts.hostname or "127.0.0.1", parts.port or 0)) != 0


def _files(world: Emulated) -> dict[str, bytes]:
    directory = world.store.directory
    return {p.name: p.read_bytes() for p in directory.iterdir()} if directory.exists() else {}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _stored(world: Emulated, user: str, scopes: Any = None) -> StoredLogin:
    tokens = world.emu.login(user, scopes)
    stored = StoredLogin(
        user, tokens.client_id, tokens.user_id, None, tokens.scopes, datetime.now(UTC).replace(microsecond=0),
        Secret(tokens.refresh_token),
    )  # fmt: skip
    world.store.save(stored)
    return stored


def test_login_no_browser_stores_a_0600_token_that_shows_nowhere(world: Emulated) -> None:
    done = _login(world)
    assert done.returncode == 0, done.stderr
    assert done.page.status_code == 200
    assert "logged in" in done.page.text
    assert done.stdout.startswith("logged in: me: Spotify user " + world.emu.users.get("alice").id)
    path = world.store.path("me")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = world.store.load("me").refresh_token.reveal()
    assert token in path.read_text()
    ledger = b"".join(p.read_bytes() for p in (world.home / "data").rglob("*") if p.is_file())
    assert ledger  # the profile request was counted in the account's ledger ...
    wherever = [done.stdout, done.stderr, repr(world.emu.requests()), ledger.decode("latin-1")]
    assert not [text for text in wherever if token in text]  # ... which holds no token
    assert "DEBUG" in done.stderr  # -vv: the logs were there to be searched
    assert _closed(done.redirect_uri)
    status = run("auth", "status")
    assert status.exit_code == 0
    assert "me: Spotify user" in status.stdout
    assert token not in status.stdout
    rows = json.loads(run("auth", "status", "--format", "json").stdout)["users"]
    assert [(r["name"], r["expired"], sorted(r["scopes"])) for r in rows] == [
        ("me", False, sorted(oauth.DEFAULT_SCOPES))
    ]


def test_ctrl_c_while_waiting_leaves_no_file_and_no_listening_socket(world: Emulated) -> None:
    proc, url, _ = _spawn(world, "--user", "bob", "--redirect-uri", REDIRECT)
    redirect_uri = dict(httpx.URL(url).params)["redirect_uri"]
    assert not _closed(redirect_uri)  # it listens while it waits
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "Interrupted by Ctrl-C."
    assert "Traceback" not in err
    assert _closed(redirect_uri)
    assert _files(world) == {}


def test_an_unregistered_user_gets_one_line_and_the_stored_logins_stay(world: Emulated) -> None:
    _stored(world, "alice")
    before = _files(world)
    done = _login(world, "--user", "frank", browser_adds="&user=frank")
    _refused(done.returncode, done.stderr, 2, "not one of this app's users", "User Management")
    assert _files(world) == before


def test_a_redirect_uri_spotify_does_not_know_gives_one_line_after_the_wait(world: Emulated) -> None:
    """Spotify shows ``INVALID_CLIENT: Invalid redirect URI`` and never redirects; the login says so
    when its wait ends (here half a second)."""
    proc, url, _ = _spawn(world, "--timeout", "0.5", "--redirect-uri", "http://127.0.0.1/not-registered")
    page = httpx.get(url, follow_redirects=True)
    assert (page.status_code, "INVALID_CLIENT: Invalid redirect URI" in page.text) == (400, True)
    _, err = proc.communicate(timeout=30)
    _refused(proc.returncode, err, 1, "INVALID_CLIENT: Invalid redirect URI")
    assert _files(world) == {}
    localhost = run("auth", "login", "--no-browser", "--redirect-uri", "http://localhost:8888/callback")
    _refused(localhost.exit_code, localhost.stderr, 2, "does not allow localhost")


def test_an_expired_login_gets_one_line_exit_2_and_its_file_stays(world: Emulated) -> None:
    _stored(world, "alice")
    before = _files(world)
    world.emu.advance(200 * 86_400)
    result = run("auth", "check", "--user", "alice")
    _refused(
        result.exit_code,
        result.stderr,
        2,
        "Refresh token expired",
        "log in again with spotify-catalog auth login --user alice",
    )
    assert _files(world) == before


def test_a_missing_scope_gets_one_line_exit_2_and_sends_nothing(world: Emulated) -> None:
    _stored(world, "alice", scopes=["user-read-private", "user-library-read"])
    before = _files(world)
    world.emu.reset()
    result = run("auth", "check", "--user", "alice")
    _refused(
        result.exit_code,
        result.stderr,
        2,
        "did not grant user-read-playback-position",
        "needed for crawl --me",
        "spotify-catalog auth login --user alice",
    )
    assert world.emu.requests() == []
    assert _files(world) == before


def test_check_refreshes_and_stores_each_rotated_token(world: Emulated) -> None:
    first = _stored(world, "alice").refresh_token.reveal()
    tokens = [first]
    for _ in range(2):
        result = run("auth", "check", "--user", "alice")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.startswith("ok: alice: Spotify user")
        tokens.append(world.secrets()[0])
        assert tokens[-1] not in result.stdout + result.stderr
    assert len(set(tokens)) == 3


def test_logout_removes_one_user(world: Emulated) -> None:
    _stored(world, "alice")
    _stored(world, "bob")
    result = run("auth", "logout", "--user", "alice")
    assert result.exit_code == 0
    assert world.store.names() == ["bob"]
    again = run("auth", "logout", "--user", "alice")
    _refused(again.exit_code, again.stderr, 2, "no user logged in as 'alice'")
    assert run("auth", "logout").exit_code == 0  # the only one left
    assert "no user logged in" in run("auth", "status").stdout
