"""Spotify's user authorization as far as both sides need it: the scopes (what each is for, which routes
need which), the redirect URIs Spotify accepts, the PKCE code challenge, the refresh token's lifetime.

Pure and without dependencies, like :mod:`spotify_catalog.buckets`: the library's login and client
read it, and the emulator answers by it (it imports this module, never the other way round).
Sources: the reference's §12.1 and §1.8, Spotify's scopes page and the 2026 OpenAPI definitions.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from spotify_catalog.buckets import route

SCOPES: Mapping[str, str] = {
    "user-read-private": "the profile's country and subscription (GET /me, Extended Quota Mode)",
    "user-library-read": "saved tracks, albums, shows and episodes (GET /me/tracks, /me/albums, ...)",
    "user-read-playback-position": "saved episodes with where playback stopped (GET /me/episodes)",
    "user-follow-read": "followed artists (GET /me/following)",
    "playlist-read-private": "the user's playlists, private ones included (GET /me/playlists, items)",
    "playlist-read-collaborative": "the items of collaborative playlists",
    "user-top-read": "top artists and tracks per time range (GET /me/top/{type})",
    "user-read-recently-played": "the last 50 plays, the listening history (GET /me/player/recently-played)",
}
"""The scopes the collection of a user's data asks for, and what each one is for: the default of
``auth login``. Nothing here lets the tool change anything in the user's account."""

DEFAULT_SCOPES: tuple[str, ...] = tuple(SCOPES)

KNOWN_SCOPES: frozenset[str] = frozenset(
    {
        *SCOPES,
        "ugc-image-upload",
        "user-read-playback-state",
        "user-modify-playback-state",
        "user-read-currently-playing",
        "app-remote-control",
        "streaming",
        "playlist-modify-private",
        "playlist-modify-public",
        "user-follow-modify",
        "user-library-modify",
        "user-read-email",
        "user-soa-link",
        "user-soa-unlink",
        "soa-manage-entitlements",
        "soa-manage-partner",
        "soa-create-partner",
    }
)
"""Every scope Spotify knows (its scopes page); ``/authorize`` with another one shows "Illegal scope"."""

ROUTE_SCOPES: Mapping[str, tuple[str, ...]] = {
    "/me": (),
    "/me/tracks": ("user-library-read",),
    "/me/albums": ("user-library-read",),
    "/me/shows": ("user-library-read",),
    "/me/episodes": ("user-library-read", "user-read-playback-position"),
    "/me/following": ("user-follow-read",),
    "/me/playlists": ("playlist-read-private",),
    "/me/top/{type}": ("user-top-read",),
    "/me/player/recently-played": ("user-read-recently-played",),
}
"""The scopes a user route needs (the routes as :func:`spotify_catalog.buckets.route` names them;
the 2026 OpenAPI definitions' ``security``, except ``GET /me``, which answers without a scope).
Playlist items need ``playlist-read-private`` for a private playlist and
``playlist-read-collaborative`` for a collaborative one: see :func:`playlist_scope`."""

USER_ROUTES = frozenset(ROUTE_SCOPES)
"""The routes that exist only for a user's token (a Client Credentials token gets 401)."""


def required_scopes(path: str) -> tuple[str, ...]:
    """The scopes a Web API path needs (``/me/top/artists?limit=5`` -> ``("user-top-read",)``)."""
    return ROUTE_SCOPES.get(route(path), ())


def is_user_route(path: str) -> bool:
    """Whether the path is one of a user's own routes (``/me``, ``/me/...``)."""
    return route(path) in USER_ROUTES


def playlist_scope(*, collaborative: bool, public: bool) -> str | None:
    """The scope the items of a playlist the user may read need (``None``: a public one of theirs)."""
    if collaborative:
        return "playlist-read-collaborative"
    return None if public else "playlist-read-private"


def missing_scopes(granted: Iterable[str], needed: Iterable[str]) -> list[str]:
    """The scopes of ``needed`` not in ``granted``, in ``needed``'s order."""
    have = set(granted)
    return [scope for scope in dict.fromkeys(needed) if scope not in have]


def parse_scopes(text: str) -> tuple[str, ...]:
    """Scopes as Spotify writes them (``"a b"``) or as a user lists them (``"a,b"``), without repeats."""
    return tuple(dict.fromkeys(part for part in text.replace(",", " ").split() if part))


# ----------------------------------------------------------------------------- redirect URIs

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8888/callback"
"""The redirect URI ``auth login`` uses unless told otherwise (register it in the app's settings)."""

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_problem(uri: str) -> str | None:
    """Why Spotify refuses ``uri`` as a redirect URI (since 2025: HTTPS, or HTTP on a loopback IP
    literal, ``http://127.0.0.1:PORT`` or ``http://[::1]:PORT``; never ``localhost``), or ``None``."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"{uri} is not a valid URI"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{uri} is not an http(s) URI with a host"
    if parts.fragment:
        return f"{uri} has a fragment (#...)"
    if parts.hostname == "localhost" or parts.hostname.endswith(".localhost"):
        return (
            f"{uri}: Spotify does not allow localhost as a redirect URI; use the loopback address "
            "http://127.0.0.1:PORT/... or http://[::1]:PORT/..."
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return f"{uri}: Spotify allows http only on the loopback address (127.0.0.1 or [::1]); use https"
    return None


def is_loopback_uri(uri: str) -> bool:
    """Whether ``uri`` is an ``http://`` URI on a loopback IP literal (a login can listen there)."""
    parts = urlsplit(uri)
    return parts.scheme == "http" and _loopback(parts.hostname)


def _without_port(uri: str) -> str:
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redirect_matches(registered: str, requested: str) -> bool:
    """Whether ``requested`` is the redirect URI ``registered`` in the app's settings: the same string,
    or, for a loopback IP literal registered without a port, the same with any port (Spotify's
    redirect URI page: "loopback IP literals, which can dynamically be assigned ports")."""
    if requested == registered:
        return True
    if not is_loopback_uri(registered) or urlsplit(registered).port is not None:
        return False
    try:
        port = urlsplit(requested).port
    except ValueError:
        return False
    return port is not None and is_loopback_uri(requested) and _without_port(requested) == registered


# ----------------------------------------------------------------------------- PKCE


def new_verifier() -> str:
    """A PKCE code verifier: 64 characters of the unreserved set (RFC 7636 §4.1 allows 43 to 128)."""
    return secrets.token_urlsafe(48)


def code_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier: base64url of its SHA-256, without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_query(
    client_id: str, redirect_uri: str, scopes: Iterable[str], state: str, verifier: str
) -> dict[str, str]:
    """The query of ``GET /authorize`` for a login with PKCE (S256) (reference §12.1)."""
    return {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "state": state,
        "scope": " ".join(scopes),
        "code_challenge_method": "S256",
        "code_challenge": code_challenge(verifier),
    }


# ----------------------------------------------------------------------------- refresh tokens

REFRESH_TOKEN_MONTHS = 6
"""Refresh tokens expire six months after the login that issued them; refreshing does not extend
them (Spotify, 2026-06-18, in force from 2026-07-20 for every app)."""


def refresh_token_expiry(logged_in: datetime) -> datetime:
    """When a refresh token issued at ``logged_in`` expires: six calendar months later (the 31st of a
    month becomes the last day of a shorter one)."""
    month = logged_in.month - 1 + REFRESH_TOKEN_MONTHS
    year, month = logged_in.year + month // 12, month % 12 + 1
    day = min(logged_in.day, calendar.monthrange(year, month)[1])
    return logged_in.replace(year=year, month=month, day=day)
