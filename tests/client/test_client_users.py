"""A user's login in the library, against the emulator over HTTP: the login flow (PKCE, state, the
one-shot loopback server), the stored file (0600, atomic, never the token in a repr or a log), the
refresh (before expiry, once on a 401, rotated tokens stored), and each refusal as one error."""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from emulated import emulator_settings, stored_login
from spotify_catalog import oauth
from spotify_catalog.emulator import EmulatorConfig, serve_in_thread
from spotify_catalog.errors import LoginFailed, LoginRequired, ScopeMissing, UsageError, UserNotRegistered
from spotify_catalog.login import CallbackServer, login
from spotify_catalog.settings import Secret
from spotify_catalog.users import LoginStore, StoredLogin, user_client

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
REDIRECT = "http://127.0.0.1/callback"  # registered without a port: any port (Spotify's redirect URI page)


class Clock:
    """A monotonic clock the test moves (``clock.now += 30``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emu_clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(emu_clock: Clock) -> Iterator[Any]:
    emu_clock.now = 1_800_000_000.0
    config = EmulatorConfig(artists=60, users=USERS, redirect_uris=(REDIRECT,))
    with serve_in_thread(config, clock=emu_clock) as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> LoginStore:
    return LoginStore(tmp_path / "config")


def _browser(
    change: Callable[[str], str] = lambda url: url, answers: list[httpx.Response] | None = None
) -> Callable[[str], bool]:
    """An ``open_browser`` that follows the consent page to the redirect, in a thread (as a browser
    would, while the login waits); ``change`` edits the URL first (``&user=bob``)."""

    def open_(url: str) -> bool:
        def visit() -> None:
            answer = httpx.get(change(url), follow_redirects=True, timeout=10)
            if answers is not None:
                answers.append(answer)

        threading.Thread(target=visit, daemon=True).start()
        return True

    return open_


def _login(emu: Any, store: LoginStore, name: str = "alice", **options: Any) -> StoredLogin:
    options.setdefault("open_browser", _browser())
    options.setdefault("timeout", 30)
    options.setdefault("redirect_uri", REDIRECT)
    return login(name, emulator_settings(emu), store=store, show=lambda text: None, **options)


def _stored(emu: Any, store: LoginStore, user: str = "alice", scopes: Any = None) -> StoredLogin:
    return stored_login(emu, store, user, scopes)


def _port_closed(uri: str) -> bool:
    parts = urlsplit(uri)
    with socket.socket() as probe:
        return probe.connect_ex((parts.hostname or "127.0.0.1", parts.port or 0)) != 0


def test_login_stores_the_users_refresh_token_in_a_0600_file(
    emu: Any, store: LoginStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[httpx.Response] = []
    stored = _login(emu, store, "bob", open_browser=_browser(lambda url: url + "&user=bob", answers))
    assert stored.user_id == emu.users.get("bob").id
    assert set(stored.scopes) == set(oauth.DEFAULT_SCOPES)
    path = store.path("bob")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert store.load("bob") == stored
    token = stored.refresh_token.reveal()
    assert token in path.read_text()
    shown = repr(stored) + repr(store) + str(stored) + caplog.text + repr(emu.requests())
    assert token not in shown
    assert [a.status_code for a in answers] == [200]  # the loopback server's page
    assert _port_closed(str(answers[0].url))


def test_the_file_is_never_readable_by_others_even_with_umask_0(
    store: LoginStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created 0600 (not chmod-ed afterwards) and renamed into place: the mode is checked at the
    moment of the rename, with a umask that would leave a plain ``open`` world-readable."""
    modes: list[int] = []
    rename = os.replace

    def watching(source: Any, target: Any) -> None:
        modes.append(stat.S_IMODE(os.stat(source).st_mode))
        rename(source, target)

    monkeypatch.setattr(os, "replace", watching)
    old = os.umask(0)
    try:
        login = StoredLogin(
            "x", "client", "user", None, (), datetime(2026, 1, 31, tzinfo=UTC), Secret("token-1")
        )
        store.save(login)
        store.replace_refresh_token("x", "token-2")
    finally:
        os.umask(old)
    assert modes == [0o600, 0o600]
    assert store.load("x").refresh_token.reveal() == "token-2"
    assert store.load("x").refresh_expires.isoformat() == "2026-07-31T00:00:00+00:00"
    assert [p.name for p in store.directory.iterdir()] == ["x.json"]  # no temporary file left


def test_a_state_that_does_not_match_stores_nothing(emu: Any, store: LoginStore) -> None:
    """The ``state`` check (RFC 6749 §10.12): a redirect of another login is refused."""
    forged = _browser(lambda url: url.replace("state=", "state=forged"))
    with pytest.raises(LoginFailed, match="state does not match"):
        _login(emu, store, open_browser=forged)
    assert store.names() == []


def test_a_refused_authorization_stores_nothing(emu: Any, store: LoginStore) -> None:
    with pytest.raises(LoginFailed, match="access_denied"):
        _login(emu, store, open_browser=_browser(lambda url: url + "&deny=1"))
    assert store.names() == []


def test_no_answer_in_time_closes_the_socket_and_stores_nothing(store: LoginStore, emu: Any) -> None:
    """The wait is bounded on the injected clock: no real wait."""
    clock = Clock()
    seen: list[str] = []

    def nobody(url: str) -> bool:
        seen.append(url)
        return False

    def ticking() -> float:
        clock.now += 100
        return clock.now

    with pytest.raises(LoginFailed, match=r"within 300 s .*INVALID_CLIENT: Invalid redirect URI"):
        _login(emu, store, open_browser=nobody, timeout=300, clock=ticking)
    redirect = dict(httpx.URL(seen[0]).params)["redirect_uri"]
    assert _port_closed(redirect)
    assert store.names() == []


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://localhost:8888/callback", "does not allow localhost"),
        ("http://example.com/callback", "loopback"),
        ("https://example.com/callback", "auth login receives the redirect itself"),
    ],
)
def test_redirect_uris_it_cannot_listen_at_are_refused_before_anything(
    emu: Any, store: LoginStore, uri: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        _login(emu, store, redirect_uri=uri, open_browser=lambda url: pytest.fail("opened"))


def test_a_busy_port_is_one_usage_error() -> None:
    with CallbackServer("http://127.0.0.1/cb") as busy, pytest.raises(UsageError, match="cannot listen"):
        CallbackServer(busy.redirect_uri)


def test_a_user_the_app_does_not_have_is_told_what_to_do_and_nothing_is_stored(
    emu: Any, store: LoginStore
) -> None:
    """Development Mode: five users; the sixth logs in but every call answers 403 (reference §12.1)."""
    with pytest.raises(UserNotRegistered, match="User Management"):
        _login(emu, store, "frank", open_browser=_browser(lambda url: url + "&user=frank"))
    assert store.names() == []


def test_the_user_client_refreshes_and_stores_the_rotated_token(emu: Any, store: LoginStore) -> None:
    first = _stored(emu, store)
    with user_client("alice", emulator_settings(emu), store=store) as client:
        assert client.get("/me")["id"] == first.user_id
    second = store.load("alice")
    assert second.refresh_token != first.refresh_token  # the emulator rotates a PKCE login's
    assert replace(second, refresh_token=first.refresh_token) == first
    with user_client("alice", emulator_settings(emu), store=store) as client:
        client.get("/me/player/recently-played")
    assert store.load("alice").refresh_token not in (first.refresh_token, second.refresh_token)


def test_tokens_are_renewed_before_expiry_and_once_on_a_401(
    emu: Any, store: LoginStore, emu_clock: Clock
) -> None:
    _stored(emu, store)
    clock = Clock()
    with user_client("alice", emulator_settings(emu), store=store, clock=clock) as client:
        client.get("/me")
        clock.now += 3600 - 30  # inside the renewal margin: a new token before the old one expires
        emu_clock.now += 3600 - 30
        emu.reset()
        client.get("/me")
        assert [(r.method, r.path, r.status) for r in emu.requests()] == [
            ("POST", "/api/token", 200),
            ("GET", "/v1/me", 200),
        ]
        emu_clock.now += 3600  # the server's clock only: the token dies while the client trusts it
        emu.reset()
        client.get("/me")
        assert [(r.path, r.status) for r in emu.requests()] == [
            ("/v1/me", 401),
            ("/api/token", 200),
            ("/v1/me", 200),
        ]


def test_an_expired_login_says_log_in_again_and_leaves_the_file(
    emu: Any, store: LoginStore, emu_clock: Clock
) -> None:
    """Refresh tokens expire six months after login: ``invalid_grant`` (reference §1.8)."""
    _stored(emu, store)
    before = store.path("alice").read_bytes()
    emu_clock.now += 200 * 86_400
    with (
        user_client("alice", emulator_settings(emu), store=store) as client,
        pytest.raises(LoginRequired) as caught,
    ):
        client.get("/me")
    assert "log in again with spotify-catalog auth login --user alice" in str(caught.value)
    assert caught.value.exit_code == 2
    assert store.path("alice").read_bytes() == before


def test_a_scope_not_granted_is_refused_before_sending(emu: Any, store: LoginStore) -> None:
    _stored(emu, store, scopes=["user-read-private", "user-library-read"])
    with user_client("alice", emulator_settings(emu), store=store) as client:
        client.get("/me/tracks")
        emu.reset()
        with pytest.raises(
            ScopeMissing, match=r"did not grant user-top-read, needed for GET /me/top/artists"
        ) as caught:
            client.get("/me/top/artists", {"limit": 5})
        assert "--scope" not in str(caught.value)  # user-top-read is a default scope: login asks for it
        assert emu.requests() == []
        assert caught.value.scopes == ("user-top-read",)


def test_spotifys_scope_403_is_the_same_one_line(emu: Any, store: LoginStore) -> None:
    """A stored scope list that says more than Spotify granted: Spotify's ``403 Insufficient client
    scope`` becomes the same error."""
    stored = _stored(emu, store, scopes=["user-read-private"])
    store.save(replace(stored, scopes=oauth.DEFAULT_SCOPES))
    with (
        user_client("alice", emulator_settings(emu), store=store) as client,
        pytest.raises(ScopeMissing, match="lacks a scope"),
    ):
        client.get("/me/player/recently-played")


def test_user_client_without_a_login_or_with_several(emu: Any, store: LoginStore) -> None:
    with pytest.raises(LoginRequired, match="no user logged in"):
        user_client(None, emulator_settings(emu), store=store)
    _stored(emu, store, "alice")
    with user_client(None, emulator_settings(emu), store=store) as client:
        assert client.get("/me")["id"] == emu.users.get("alice").id
    _stored(emu, store, "bob")
    with pytest.raises(UsageError, match="several users"):
        user_client(None, emulator_settings(emu), store=store)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_the_callback_server_takes_only_its_path(host: str) -> None:
    """Other paths (a favicon, a probe) get 404 and do not end the wait; the redirect to the path does."""
    try:
        server = CallbackServer(f"http://{host}/callback")
    except UsageError as exc:  # a machine without IPv6 loopback
        pytest.skip(str(exc))
    with server:
        base = server.redirect_uri.removesuffix("/callback")
        answers: list[int] = []

        def browse() -> None:
            answers.append(httpx.get(f"{base}/favicon.ico").status_code)
            answers.append(httpx.get(f"{server.redirect_uri}?code=c&state=s").status_code)

        browser = threading.Thread(target=browse, daemon=True)
        browser.start()
        redirect = server.wait(10)
        browser.join(10)
    assert answers == [404, 200]
    assert (redirect.first("code"), redirect.first("state")) == ("c", "s")
