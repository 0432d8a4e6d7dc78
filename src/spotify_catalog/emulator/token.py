"""The token endpoint (``POST /api/token`` of accounts.spotify.com): Client Credentials, with
Spotify's error bodies for the other grants and for bad credentials (reference §3)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl

from starlette.responses import Response

from spotify_catalog.emulator.responses import NO_CACHE, Headers, encode, header
from spotify_catalog.emulator.state import EmulatorState

GRANTS = ("client_credentials", "authorization_code", "refresh_token")


def token_error(error: str, description: str | None = None) -> Response:
    body = {"error": error} if description is None else {"error": error, "error_description": description}
    return Response(
        encode(body),
        status_code=400,
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
    if secret != client.client_secret:
        return token_error("invalid_client", "Invalid client secret")
    if grant == "authorization_code":
        return token_error("invalid_grant", "Invalid authorization code")
    if grant == "refresh_token":
        return token_error("invalid_grant", "Invalid refresh token")
    token = state.issue_token(client.account)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": state.config.token_ttl}
    return Response(
        encode(body),
        status_code=200,
        headers={"content-type": "application/json", "cache-control": NO_CACHE},
    )
