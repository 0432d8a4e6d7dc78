"""A test user logged in through the emulator's own endpoints, as a browser and an app would do it:
``GET /authorize`` (Authorization Code with PKCE), then the code exchange at ``POST /api/token``.
What :meth:`.server.RunningEmulator.login` and the pytest plugin's ``spotify_user`` give."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx

from spotify_catalog import oauth


@dataclass(frozen=True)
class UserLogin:
    """A logged-in test user: the tokens (kept out of ``repr``) and what they allow."""

    user: str
    """The test user's name (``--users``)."""
    user_id: str
    """Their Spotify user id (``GET /me``'s ``id``)."""
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    scopes: tuple[str, ...]
    client_id: str
    redirect_uri: str

    @property
    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}`` for a request of this user."""
        return {"Authorization": f"Bearer {self.access_token}"}


class LoginRefused(RuntimeError):
    """``GET /authorize`` or the code exchange said no; the message is the emulator's answer."""


def usable_redirect_uri(registered: Sequence[str]) -> str:
    """A redirect URI the app has registered (a loopback one without a port, with a port added)."""
    if not registered:
        raise LoginRefused("the emulator has no redirect URI registered")
    uri = registered[0]
    parts = urlsplit(uri)
    if oauth.is_loopback_uri(uri) and parts.port is None:
        uri = parts._replace(netloc=f"{parts.netloc}:8888").geturl()
    return uri


def log_in(
    url: str,
    *,
    client_id: str,
    redirect_uri: str,
    user: str | None = None,
    scopes: Sequence[str] = oauth.DEFAULT_SCOPES,
) -> UserLogin:
    """Log ``user`` (the first test user by default) in at the emulator at ``url`` with PKCE, for
    ``scopes``; the redirect is read, not followed (nothing needs to listen at ``redirect_uri``)."""
    verifier, state = oauth.new_verifier(), secrets.token_urlsafe(16)
    query = oauth.authorize_query(client_id, redirect_uri, scopes, state, verifier)
    if user is not None:
        query["user"] = user
    with httpx.Client(base_url=url, timeout=10) as http:
        consent = http.get("/authorize", params=query)
        if consent.status_code != 302:
            raise LoginRefused(f"GET /authorize answered {consent.status_code}: {consent.text[:200]}")
        answer = parse_qs(urlsplit(consent.headers["location"]).query)
        if answer.get("state") != [state] or "code" not in answer:
            raise LoginRefused(f"GET /authorize sent back {sorted(answer)}")
        form = {
            "grant_type": "authorization_code",
            "code": answer["code"][0],
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        }
        exchange = http.post("/api/token", data=form)
        if exchange.status_code != 200:
            raise LoginRefused(f"POST /api/token answered {exchange.status_code}: {exchange.text[:200]}")
        tokens = exchange.json()
        me = http.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    return UserLogin(
        user=user or "",
        user_id=str(me.json().get("id", "")) if me.status_code == 200 else "",
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_in=int(tokens["expires_in"]),
        scopes=oauth.parse_scopes(tokens.get("scope", "")),
        client_id=client_id,
        redirect_uri=redirect_uri,
    )
