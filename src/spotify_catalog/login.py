"""Logging a user in: Authorization Code with PKCE (S256) and a ``state`` check, the redirect received
by a one-shot HTTP server on the loopback address of the redirect URI.

:func:`login` opens (or shows) Spotify's consent page, waits for the browser's redirect to
``http://127.0.0.1:PORT/PATH`` (at most ``timeout`` seconds), exchanges the code, reads the user's
profile (``GET /me``, one Web API request) and only then stores the login
(:class:`~spotify_catalog.users.LoginStore`): a login that fails at any step leaves nothing behind,
and the listening socket is closed whatever happens (Ctrl-C included).

Spotify accepts loopback redirect URIs only as ``http://127.0.0.1:PORT`` or ``http://[::1]:PORT``,
never ``localhost`` (reference §12.1); a redirect URI without a port listens on a free port, which the
app's settings allow when they register the URI without a port.
"""

from __future__ import annotations

import contextlib
import html
import logging
import secrets
import socket
import time
import webbrowser
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

from spotify_catalog import oauth
from spotify_catalog.auth import refusal, token_error
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import (
    APIError,
    ConfigError,
    LoginFailed,
    SpotifyCatalogError,
    UsageError,
    UserNotRegistered,
)
from spotify_catalog.redaction import register_secret
from spotify_catalog.settings import Secret, Settings
from spotify_catalog.users import (
    NOT_REGISTERED_HINT,
    LoginStore,
    StoredLogin,
    check_name,
    not_registered_message,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0
"""Seconds ``auth login`` waits for the browser's redirect."""
POLL = 0.2
"""Seconds between two looks at the clock while waiting."""


def authorize_endpoint(token_url: str) -> str:
    """The consent page of the accounts service whose token endpoint is ``token_url``
    (``https://accounts.spotify.com/api/token`` -> ``https://accounts.spotify.com/authorize``)."""
    parts = urlsplit(token_url)
    if not parts.path.endswith("/api/token"):
        raise ConfigError(
            f"cannot tell the authorize page from the token URL {token_url}: it should end with /api/token"
        )
    path = parts.path.removesuffix("/api/token") + "/authorize"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def check_redirect_uri(uri: str) -> str:
    """``uri`` if ``auth login`` can listen there: an ``http://`` loopback IP literal; a
    :class:`UsageError` otherwise (one line, ``localhost`` named)."""
    problem = oauth.redirect_uri_problem(uri)
    if problem is not None:
        raise UsageError(problem)
    if not oauth.is_loopback_uri(uri):
        raise UsageError(
            f"{uri}: auth login receives the redirect itself, on the loopback address: use "
            "http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH (registered in the app's settings)"
        )
    return uri


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes, without repeats, if Spotify knows them all (:class:`UsageError` otherwise)."""
    wanted = tuple(dict.fromkeys(s for scope in scopes for s in oauth.parse_scopes(scope)))
    unknown = [s for s in wanted if s not in oauth.KNOWN_SCOPES]
    if unknown:
        raise UsageError(
            f"unknown scope {unknown[0]!r} (Spotify's scopes: {', '.join(sorted(oauth.KNOWN_SCOPES))})"
        )
    return wanted


@dataclass(frozen=True)
class Redirect:
    """What the browser brought back: the query of the redirect to the callback path."""

    query: Mapping[str, list[str]]

    def first(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class _Handler(BaseHTTPRequestHandler):
    server: CallbackServer
    timeout = 10  # a connection that sends nothing does not hold the wait past its deadline

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.server.path or self.server.redirect is not None:
            self._answer(404, "Not the login's callback.")
            return
        redirect = Redirect(parse_qs(parts.query, keep_blank_values=True))
        error = redirect.first("error")
        if error is not None:
            self._answer(
                200, f"spotify-catalog: the login did not complete ({error}). You can close this tab."
            )
        else:
            self._answer(
                200, "spotify-catalog: logged in. You can close this tab and go back to the terminal."
            )
        self.server.redirect = redirect

    def _answer(self, status: int, text: str) -> None:
        body = f"<!DOCTYPE html><html><body><p>{html.escape(text)}</p></body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: the request line holds the authorization code."""


class CallbackServer(HTTPServer):
    """A one-shot HTTP server on the loopback address and port of a redirect URI (a free port when the
    URI has none), waiting for the browser's redirect to the URI's path; a context manager that closes
    its socket on the way out, whatever happens."""

    def __init__(self, redirect_uri: str) -> None:
        parts = urlsplit(redirect_uri)
        host = parts.hostname or "127.0.0.1"
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.path = parts.path or "/"
        self.redirect: Redirect | None = None
        self._parts = parts
        try:
            super().__init__((host, parts.port or 0), _Handler)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{parts.port or 0} for the login's redirect: {exc.strerror or exc} "
                "(another login running? pass --redirect-uri with another port registered for the app)"
            ) from None
        self.timeout = POLL

    @property
    def redirect_uri(self) -> str:
        """The redirect URI the login sends: the given one, with the port listened on."""
        host = self._parts.hostname or "127.0.0.1"
        netloc = f"[{host}]" if ":" in host else host
        return urlunsplit(("http", f"{netloc}:{self.server_address[1]}", self.path, self._parts.query, ""))

    def wait(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> Redirect:
        """The browser's redirect, within ``timeout`` seconds of ``clock``; :class:`LoginFailed` after."""
        deadline = clock() + timeout
        while self.redirect is None:
            if clock() >= deadline:
                raise LoginFailed(
                    f"no answer from the browser within {timeout:g} s at {self.redirect_uri}; if Spotify "
                    "showed 'INVALID_CLIENT: Invalid redirect URI', register that redirect URI in the app's "
                    "settings (or pass --redirect-uri with one that is)"
                )
            self.handle_request()
        return self.redirect


class CodeExchange:
    """The grant of a login's first token: the authorization code with its PKCE verifier, then (if
    the client needs another token before the login is stored) the refresh token it brought."""

    def __init__(self, name: str, client_id: str, code: str, redirect_uri: str, verifier: str) -> None:
        self.name = name
        self.client_id = client_id
        self._code = code
        self._redirect_uri = redirect_uri
        self._verifier = verifier
        self.refresh_token: Secret | None = None
        self.scopes: tuple[str, ...] | None = None
        """The scopes granted, as the token answer says (``None``: it did not say)."""

    def __repr__(self) -> str:
        return f"CodeExchange(name={self.name!r})"

    def token_request(self) -> tuple[dict[str, str], httpx.Auth | None]:
        if self.refresh_token is not None:
            token = self.refresh_token.reveal()
            return {"grant_type": "refresh_token", "refresh_token": token, "client_id": self.client_id}, None
        form = {
            "grant_type": "authorization_code",
            "code": self._code,
            "redirect_uri": self._redirect_uri,
            "client_id": self.client_id,
            "code_verifier": self._verifier,
        }
        return form, None

    def accepted(self, answer: Mapping[str, Any]) -> None:
        token = answer.get("refresh_token")
        if isinstance(token, str) and token:
            self.refresh_token = Secret(token)
        if isinstance(answer.get("scope"), str):
            self.scopes = oauth.parse_scopes(answer["scope"])

    def refused(self, response: httpx.Response, url: str) -> SpotifyCatalogError:
        error, description = token_error(response)
        if error == "invalid_grant" and "redirect" in description.lower():
            return LoginFailed(
                f"Spotify refused the redirect URI {self._redirect_uri} at the code exchange ({description})"
            )
        if error in ("invalid_grant", "invalid_request"):
            return LoginFailed(
                f"Spotify refused the authorization code ({description or error}): log in again"
            )
        return refusal(response, url)

    def check(self, path: str) -> None:
        return None

    def forbidden(self, error: APIError, path: str) -> SpotifyCatalogError:
        if NOT_REGISTERED_HINT in error.message:
            return UserNotRegistered(not_registered_message(self.name))
        return error


def authorize_url(
    settings: Settings, client_id: str, redirect_uri: str, scopes: Sequence[str], state: str, verifier: str
) -> str:
    """The consent page's URL for this login."""
    query = oauth.authorize_query(client_id, redirect_uri, scopes, state, verifier)
    return f"{authorize_endpoint(settings.token_url)}?{urlencode(query)}"


def _code_of(redirect: Redirect, state: str) -> str:
    """The authorization code of the redirect, once its ``state`` is the login's."""
    if not secrets.compare_digest(redirect.first("state") or "", state):
        raise LoginFailed(
            "the answer's state does not match this login (a redirect from another login, or a forged "
            "one): nothing was stored; run auth login again"
        )
    error = redirect.first("error")
    if error == "access_denied":
        raise LoginFailed(
            "the authorization was refused on Spotify's page (access_denied): nothing was stored"
        )
    if error is not None:
        raise LoginFailed(f"Spotify did not authorize the login ({error}): nothing was stored")
    code = redirect.first("code")
    if not code:
        raise LoginFailed("the redirect carried no code: nothing was stored; run auth login again")
    register_secret(code)
    return code


def login(
    name: str,
    settings: Settings,
    *,
    scopes: Sequence[str] = oauth.DEFAULT_SCOPES,
    redirect_uri: str = oauth.DEFAULT_REDIRECT_URI,
    timeout: float = DEFAULT_TIMEOUT,
    open_browser: Callable[[str], bool] | None = webbrowser.open,
    show: Callable[[str], None] = log.warning,
    store: LoginStore | None = None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    **client_options: Any,
) -> StoredLogin:
    """Log a user in and store the login as ``name``; the :class:`StoredLogin`.

    ``open_browser(url)`` opens the consent page (``None``: the URL is only shown, ``--no-browser``);
    ``show(text)`` tells the user what to do; ``client_options`` go to the
    :class:`~spotify_catalog.client.SpotifyClient` that exchanges the code and reads ``/me``
    (``budget``, ``transport``, ...)."""
    check_name(name)
    scopes = check_scopes(scopes)
    check_redirect_uri(redirect_uri)
    client_id = settings.client_id
    if not client_id:
        raise ConfigError(
            "missing the app's client id: set SPOTIFY_CLIENT_ID (no secret is needed to log in)"
        )
    authorize_endpoint(settings.token_url)  # a token URL it cannot tell the page from: said before listening
    store = store or LoginStore()
    verifier, state = oauth.new_verifier(), secrets.token_urlsafe(24)
    with CallbackServer(redirect_uri) as server:
        uri = server.redirect_uri
        url = authorize_url(settings, client_id, uri, scopes, state, verifier)
        opened = False
        if open_browser is not None:
            with contextlib.suppress(webbrowser.Error):
                opened = bool(open_browser(url))
        if opened:
            show(f"A browser opened Spotify's consent page; if it did not, open this URL:\n{url}")
        else:
            show(f"Open this URL in a browser to log in:\n{url}")
        show(f"Waiting for the redirect to {uri} (at most {timeout:g} s; Ctrl-C gives up) ...")
        redirect = server.wait(timeout, clock)
    code = _code_of(redirect, state)
    exchange = CodeExchange(name, client_id, code, uri, verifier)
    with SpotifyClient(settings, grant=exchange, **client_options) as client:
        profile = client.get("/me")
    if exchange.refresh_token is None:
        raise LoginFailed("Spotify's token answer carried no refresh token: nothing was stored")
    user_id = profile.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise LoginFailed("Spotify's profile of the user has no id: nothing was stored")
    display_name = profile.get("display_name")
    stored = StoredLogin(
        name=name,
        client_id=client_id,
        user_id=user_id,
        display_name=display_name if isinstance(display_name, str) else None,
        scopes=scopes if exchange.scopes is None else exchange.scopes,
        logged_in=now().replace(microsecond=0),
        refresh_token=exchange.refresh_token,
    )
    store.save(stored)
    log.info("user %s logged in as Spotify user %s", name, user_id)
    return stored
