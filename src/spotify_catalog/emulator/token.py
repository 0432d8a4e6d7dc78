"""The token endpoint (``POST /api/token`` of accounts.spotify.com): Client Credentials, the
Authorization Code exchange (with PKCE) and the refresh of a user's login, with Spotify's error bodies
(reference §3 and §12.1)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl

from starlette.responses import Response

from spotify_catalog import oauth
from spotify_catalog.emulator.config import Client
from spotify_catalog.emulator.responses import NO_CACHE, Headers, encode, header
from spotify_catalog.emulator.state import EmulatorState, Grant

GRANTS = ("client_credentials", "authorization_code", "refresh_token")


def token_error(error: str, description: str | None = None) -> Response:
    body = {"error": error} if description is None else {"error": error, "error_description": description}
    return Response(
        encode(body),
        status_code=400,
        headers={"content-type": "application/json", "cache-control": NO_CACHE},
    )


def _token_body(state: EmulatorState, token: str, **more: str) -> Response:
    body = {"access_token": token, "token_type": "Bearer", "expires_in": state.config.token_ttl, **more}
    return Response(
        encode(body),
        status_code=200,
        headers={"content-type": "application/json", "cache-control": NO_CACHE},
    )


def token_answer(state: EmulatorState, headers: Headers, raw: bytes) -> Response:
    """The answer to a token request with these headers and body: a token, or a 400."""
    form: dict[str, str] = {}
    if (header(headers, b"content-type") or "").startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    grant = form.get("grant_type")
    if not grant:
        return token_error("unsupported_grant_type", "grant_type parameter is missing")
    if grant not in GRANTS:
        return token_error(
            "unsupported_grant_type",
            "grant_type must be client_credentials, authorization_code or refresh_token",
        )
    client_id, secret = form.get("client_id"), form.get("client_secret")
    authorization = header(headers, b"authorization")
    if authorization is not None:
        scheme, _, encoded = authorization.partition(" ")
        try:
            client_id, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if scheme.lower() != "basic" or not sep:
            return token_error("invalid_client", "Invalid client")
    if not client_id:
        return token_error("invalid_client")
    client = state.client(client_id)
    if client is None:
        return token_error("invalid_client", "Invalid client")
    # a PKCE login's client sends its id alone (no secret) at the code exchange and at each refresh
    if (secret is not None or grant == "client_credentials") and secret != client.client_secret:
        return token_error("invalid_client", "Invalid client secret")
    if grant == "authorization_code":
        return _exchange(state, client, form, secret is None)
    if grant == "refresh_token":
        return _refresh(state, client, form, secret is None)
    return _token_body(state, state.issue_token(client.account))


def _exchange(state: EmulatorState, client: Client, form: dict[str, str], public: bool) -> Response:
    """``grant_type=authorization_code``: the code, its redirect URI and the PKCE verifier checked."""
    code = form.get("code")
    if not code:
        return token_error("invalid_request", "code must be supplied")
    pending = state.take_code(code)
    if pending is None or pending.client_id != client.client_id:
        return token_error("invalid_grant", "Invalid authorization code")
    if form.get("redirect_uri") != pending.redirect_uri:
        return token_error("invalid_grant", "Invalid redirect URI")
    if pending.challenge is not None:
        verifier = form.get("code_verifier")
        if not verifier:
            return token_error("invalid_request", "code_verifier required")
        if oauth.code_challenge(verifier) != pending.challenge:
            return token_error("invalid_grant", "code_verifier was incorrect")
    elif public:  # without PKCE, only the secret proves the client
        return token_error("invalid_client", "Invalid client secret")
    scopes = pending.scopes
    grant = Grant(client.account, client.client_id, pending.user, scopes)
    refresh = state.new_refresh_token(client.client_id, pending.user, scopes, public=public)
    return _token_body(
        state, state.issue_token(client.account, grant), refresh_token=refresh, scope=_scope(scopes)
    )


def _refresh(state: EmulatorState, client: Client, form: dict[str, str], public: bool) -> Response:
    """``grant_type=refresh_token``: a new access token; a PKCE login's refresh token is rotated (the
    answer carries the new one, the old one is gone), the others are kept (no ``refresh_token``)."""
    token = form.get("refresh_token")
    if not token:
        return token_error("invalid_request", "refresh_token must be supplied")
    status, login = state.refresh_status(token)
    if login is None or login.client_id != client.client_id:
        return token_error("invalid_grant", "Invalid refresh token")
    if status == "expired":
        return token_error("invalid_grant", "Refresh token expired")
    if public and not login.public:
        return token_error("invalid_client", "Invalid client secret")
    grant = Grant(client.account, client.client_id, login.user, login.scopes)
    access = state.issue_token(client.account, grant)
    if not login.public:
        return _token_body(state, access, scope=_scope(login.scopes))
    rotated = state.new_refresh_token(
        client.client_id, login.user, login.scopes, public=True, logged_in=login.logged_in
    )
    state.drop_refresh_token(token)
    return _token_body(state, access, refresh_token=rotated, scope=_scope(login.scopes))


def _scope(scopes: frozenset[str]) -> str:
    """The ``scope`` of a token answer: the granted scopes, space-separated."""
    return " ".join(sorted(scopes))
