"""The users logged in with ``auth login``, and a client that acts for one of them.

Each login is one JSON file, ``$XDG_CONFIG_HOME/spotify-catalog/users/NAME.json``
(``~/.config/...`` by default), in a directory of mode 0700: the login's name, the client id it was
made with, the Spotify user id, the scopes granted, when it was made, when its refresh token expires
(six months after the login) and the refresh token. A file is written atomically (a temporary file
created with mode 0600, then renamed over the old one), so it is never readable by others, not even
for a moment, and a rotated refresh token replaces the old one whole or not at all. The refresh token
is registered as a secret (never in a log line or a message) and never in a ``repr``.

:func:`user_client` is the one call that gives a :class:`~spotify_catalog.client.SpotifyClient`
acting for a user: its tokens come from :class:`UserGrant` (the refresh token, renewed before expiry
and once on a 401, rotated ones stored), it refuses a request whose scope the user did not grant
before sending it, and it turns Spotify's Development-Mode 403 into one line saying what to do.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from spotify_catalog import oauth
from spotify_catalog.auth import refusal, token_error
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import (
    APIError,
    ConfigError,
    LoginRequired,
    ScopeMissing,
    SpotifyCatalogError,
    UsageError,
    UserNotRegistered,
    format_time,
    shown,
)
from spotify_catalog.redaction import register_secret
from spotify_catalog.settings import Secret, Settings

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A login's name: a file name on every system."""
DEFAULT_NAME = "me"
NOT_REGISTERED_HINT = "may not be registered"
"""In the 403 of a user a Development-Mode app does not have (emulator.webapi.NOT_REGISTERED)."""


def check_name(name: str) -> str:
    """``name`` if it can name a login, else a :class:`UsageError`."""
    if not NAME.fullmatch(name):
        raise UsageError(
            f"bad user name {shown(name)}: letters, digits, '_' and '-', 64 at most, starting with a "
            "letter or digit"
        )
    return name


def login_command(name: str, scopes: tuple[str, ...] = ()) -> str:
    """The command that logs ``name`` in (again), with ``scopes`` when not the default ones."""
    command = "spotify-catalog auth login" + ("" if name == DEFAULT_NAME else f" --user {name}")
    extra = [s for s in scopes if s not in oauth.DEFAULT_SCOPES]
    return command + "".join(f" --scope {s}" for s in extra)


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/spotify-catalog``, ``~/.config/spotify-catalog`` by default."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "spotify-catalog"


@dataclass(frozen=True)
class StoredLogin:
    """One user's login as stored; ``refresh_token`` never shows itself (a :class:`Secret`)."""

    name: str
    client_id: str
    user_id: str
    display_name: str | None
    scopes: tuple[str, ...]
    logged_in: datetime
    refresh_token: Secret = field(repr=False)

    @property
    def refresh_expires(self) -> datetime:
        """When the refresh token stops working: six months after the login (rotations do not extend it)."""
        return oauth.refresh_token_expiry(self.logged_in)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "client_id": self.client_id,
            "user_id": self.user_id,
            "display_name": self.display_name,
            "scopes": list(self.scopes),
            "logged_in": self.logged_in.isoformat(timespec="seconds"),
            "refresh_expires": self.refresh_expires.isoformat(timespec="seconds"),
            "refresh_token": self.refresh_token.reveal(),
        }

    @classmethod
    def from_json(cls, data: Any) -> StoredLogin:
        """The login of a file's JSON; ``ValueError`` when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            logged_in = datetime.fromisoformat(str(data["logged_in"]))
            scopes = data["scopes"]
            token = data["refresh_token"]
            if not isinstance(scopes, list) or not isinstance(token, str) or not token:
                raise ValueError("scopes or refresh_token missing")
            return cls(
                name=str(data["name"]),
                client_id=str(data["client_id"]),
                user_id=str(data["user_id"]),
                display_name=None if data.get("display_name") is None else str(data["display_name"]),
                scopes=tuple(str(s) for s in scopes),
                logged_in=logged_in if logged_in.tzinfo else logged_in.replace(tzinfo=UTC),
                refresh_token=Secret(token),
            )
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]}") from None


class LoginStore:
    """The stored logins, one file a user in ``directory/users`` (:func:`config_dir` by default)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or config_dir()) / "users"
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LoginStore({str(self.directory)!r})"

    def path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        """The names of the stored logins, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json") if NAME.fullmatch(p.stem))

    def load(self, name: str) -> StoredLogin:
        """The login stored as ``name``: :class:`LoginRequired` when there is none, :class:`ConfigError`
        when its file cannot be read."""
        path = self.path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LoginRequired(f"no user logged in as {name!r}: run {login_command(name)}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            login = StoredLogin.from_json(json.loads(text))
        except ValueError as exc:
            raise ConfigError(f"{path} is not a stored login ({exc}): run {login_command(name)}") from None
        if login.name != name:
            raise ConfigError(f"{path} holds the login {login.name!r}: run {login_command(name)}")
        return login

    def save(self, login: StoredLogin) -> Path:
        """Write ``login`` atomically: a temporary file created with mode 0600 in the same directory,
        synced, then renamed over the old one; the directory is created with mode 0700."""
        path = self.path(login.name)
        with self._lock:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = self.directory / f".{login.name}.{os.getpid()}.{threading.get_ident()}.tmp"
            data = json.dumps(login.to_json(), indent=1).encode()
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
        return path

    def replace_refresh_token(self, name: str, token: str) -> None:
        """Store a rotated refresh token in place of the old one (the rest of the login unchanged)."""
        self.save(replace(self.load(name), refresh_token=Secret(token)))

    def remove(self, name: str) -> bool:
        """Forget the login stored as ``name``; whether there was one."""
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def resolve(self, name: str | None) -> str:
        """``name``, or when ``None`` the only stored login (:class:`LoginRequired` when there is none,
        :class:`UsageError` when there are several)."""
        if name is not None:
            return check_name(name)
        names = self.names()
        if not names:
            raise LoginRequired(f"no user logged in: run {login_command(DEFAULT_NAME)}")
        if len(names) > 1:
            raise UsageError(f"several users are logged in ({', '.join(names)}): say which with --user NAME")
        return names[0]


class UserGrant:
    """A stored login as the grant of a :class:`~spotify_catalog.auth.TokenManager`: access tokens from
    its refresh token (``grant_type=refresh_token`` with the client id alone, as a PKCE login's), a
    rotated refresh token stored at once (``store`` ``None``: kept in memory only); the scopes it
    granted checked before each request."""

    def __init__(self, login: StoredLogin, store: LoginStore | None = None) -> None:
        self.login = login
        self._store = store
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"UserGrant(name={self.login.name!r}, user_id={self.login.user_id!r})"

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.login.scopes

    def token_request(self) -> tuple[dict[str, str], httpx.Auth | None]:
        with self._lock:
            token = self.login.refresh_token.reveal()
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": self.login.client_id}
        return form, None

    def accepted(self, answer: Mapping[str, Any]) -> None:
        rotated = answer.get("refresh_token")
        if not isinstance(rotated, str) or not rotated:
            return
        with self._lock:
            if rotated == self.login.refresh_token.reveal():
                return
            register_secret(rotated)
            self.login = replace(self.login, refresh_token=Secret(rotated))
            if self._store is not None:
                self._store.replace_refresh_token(self.login.name, rotated)
        log.info("user %s: refresh token rotated and stored", self.login.name)

    def refused(self, response: httpx.Response, url: str) -> SpotifyCatalogError:
        error, description = token_error(response)
        if error == "invalid_grant":
            name = self.login.name
            why = description or "invalid_grant"
            return LoginRequired(
                f"Spotify refused the login of {name!r} ({why}; a login lasts six months): "
                f"log in again with {login_command(name, self.login.scopes)}"
            )
        return refusal(response, url)

    def require(self, *scopes: str, what: str = "this request") -> None:
        """:class:`ScopeMissing` unless the login granted every scope of ``scopes``."""
        missing = tuple(oauth.missing_scopes(self.login.scopes, scopes))
        if missing:
            name = self.login.name
            raise ScopeMissing(
                f"the login of {name!r} did not grant {', '.join(missing)}, needed for {what}: log in "
                f"again with {login_command(name, (*self.login.scopes, *missing))}",
                scopes=missing,
            )

    def check(self, path: str) -> None:
        self.require(*oauth.required_scopes(path), what=f"GET {path.split('?', 1)[0]}")

    def forbidden(self, error: APIError, path: str) -> SpotifyCatalogError:
        name = self.login.name
        if NOT_REGISTERED_HINT in error.message:
            return UserNotRegistered(not_registered_message(name, self.login.display_name))
        if error.message == "Insufficient client scope":
            needed = oauth.required_scopes(path)
            return ScopeMissing(
                f"Spotify says the login of {name!r} lacks a scope for GET {path.split('?', 1)[0]} "
                f"({', '.join(needed) or 'see docs/user-data.md'}): log in again with "
                f"{login_command(name, (*self.login.scopes, *needed))}",
                scopes=needed,
            )
        return error


def not_registered_message(name: str, display_name: str | None = None) -> str:
    """What to do about Spotify's 403 for a user a Development-Mode app does not have."""
    who = f"{display_name}, logged in as {name!r}," if display_name else f"logged in as {name!r}"
    return (
        f"the Spotify user {who} is not one of this app's users: a Development-Mode app has at most "
        "five, added by its owner at developer.spotify.com/dashboard (the app's Settings, User "
        "Management: Users and Access); add the user's name and e-mail there, then try again"
    )


def describe(login: StoredLogin) -> dict[str, Any]:
    """What ``auth status`` shows of a login (never the refresh token)."""
    return {
        "name": login.name,
        "user_id": login.user_id,
        "display_name": login.display_name,
        "client_id": login.client_id,
        "scopes": list(login.scopes),
        "logged_in": format_time(login.logged_in),
        "refresh_token_expires": format_time(login.refresh_expires),
    }


def user_client(
    name: str | None = None,
    settings: Settings | None = None,
    *,
    store: LoginStore | None = None,
    **client_options: Any,
) -> SpotifyClient:
    """A :class:`~spotify_catalog.client.SpotifyClient` acting for the user logged in as ``name`` (the
    only login when ``None``): the settings' API and token URLs (:meth:`Settings.load` by default),
    the login's client id; ``client_options`` as :class:`SpotifyClient` takes them (``budget``,
    ``transport``, ``clock``, ...). Its ``tokens.grant`` is the :class:`UserGrant` (``.require()``,
    ``.scopes``, ``.login``). :class:`LoginRequired` when nobody is logged in under that name."""
    store = store or LoginStore()
    login = store.load(store.resolve(name))
    settings = settings or Settings.load()
    if settings.client_id and settings.client_id != login.client_id:
        log.warning(
            "user %s logged in with client id %s, not %s: refreshing with the login's",
            login.name,
            login.client_id,
            settings.client_id,
        )
    settings = replace(settings, client_id=login.client_id)
    return SpotifyClient(settings, grant=UserGrant(login, store), **client_options)
