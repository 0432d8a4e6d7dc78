"""``GET /authorize`` of accounts.spotify.com: a test user's consent, given at once.

The request is checked as Spotify checks it (reference §12.1): an unknown client or a redirect URI
not registered for the app is an error page (``INVALID_CLIENT: Invalid client``, ``INVALID_CLIENT:
Invalid redirect URI``: no redirect, the URI is not trusted), an unknown scope the page ``Illegal
scope`` (spotify/web-api#1262); the other refusals go back to the redirect URI with ``error`` and
``state`` (RFC 6749 §4.1.2.1). Otherwise the user consents and the browser is sent to the redirect
URI with ``code`` and ``state``.

Two query parameters are the emulator's own, for the script that plays the browser: ``user=NAME``
(which test user logs in; the first configured one by default) and ``deny=1`` (the user refuses:
``error=access_denied``).
"""

from __future__ import annotations

import html
from urllib.parse import parse_qsl, urlencode

from starlette.responses import Response

from spotify_catalog import oauth
from spotify_catalog.emulator.responses import NO_CACHE
from spotify_catalog.emulator.state import EmulatorState


def error_page(message: str, status: int = 400) -> Response:
    """An accounts.spotify.com error page: HTML with one line of text."""
    page = "<!DOCTYPE html><html><head><title>Error</title></head><body><p>{}</p></body></html>"
    body = page.format(html.escape(message))
    return Response(
        body.encode(),
        status_code=status,
        headers={"content-type": "text/html; charset=utf-8", "cache-control": NO_CACHE},
    )


def _back(redirect_uri: str, fields: list[tuple[str, str]], state: str | None) -> Response:
    if state is not None:
        fields.append(("state", state))
    joiner = "&" if "?" in redirect_uri else "?"
    location = redirect_uri + joiner + urlencode(fields)
    return Response(b"", status_code=302, headers={"location": location, "cache-control": NO_CACHE})


def authorize_answer(state: EmulatorState, query: str) -> Response:
    """The answer to ``GET /authorize?{query}``: a redirect to the app, or an error page."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, value)
    client = state.client(params.get("client_id", ""))
    if client is None:
        return error_page("INVALID_CLIENT: Invalid client")
    redirect_uri = params.get("redirect_uri", "")
    if not any(oauth.redirect_matches(uri, redirect_uri) for uri in state.config.redirect_uris):
        return error_page("INVALID_CLIENT: Invalid redirect URI")
    given_state = params.get("state")
    if params.get("response_type") != "code":
        return _back(redirect_uri, [("error", "unsupported_response_type")], given_state)
    scopes = oauth.parse_scopes(params.get("scope", ""))
    if any(scope not in oauth.KNOWN_SCOPES for scope in scopes):
        return error_page("Illegal scope")
    method, challenge = params.get("code_challenge_method"), params.get("code_challenge")
    if (method is not None or challenge is not None) and (method != "S256" or not challenge):
        return _back(redirect_uri, [("error", "invalid_request")], given_state)
    names = state.config.users
    if not names:
        return error_page("No test user can log in: start the emulator with --users NAME,...")
    name = params.get("user") or names[0]
    if state.users.get(name) is None:
        return error_page(f"No test user {name!r} (the emulator's users: {', '.join(names)})")
    if params.get("deny"):
        return _back(redirect_uri, [("error", "access_denied")], given_state)
    code = state.new_code(client.client_id, name, redirect_uri, frozenset(scopes), challenge)
    return _back(redirect_uri, [("code", code)], given_state)
