"""A Web API request answered: the routes (:data:`SPECS`) and, for a ``GET``, what every route does
around its handler: authentication, the owner's Premium, the app's users (Development Mode), quota,
rate limit, faults, profile restriction, a user's token and its scopes, then ETag/304."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response

from spotify_catalog import buckets, oauth
from spotify_catalog.emulator import faults
from spotify_catalog.emulator.config import BODY_FAULTS, RAW_FAULTS
from spotify_catalog.emulator.handlers import (
    Ctx,
    h_album,
    h_album_tracks,
    h_albums,
    h_artist,
    h_artist_albums,
    h_artists,
    h_audiobook,
    h_audiobook_chapters,
    h_audiobooks,
    h_categories,
    h_chapter,
    h_chapters,
    h_episode,
    h_episodes,
    h_markets,
    h_new_releases,
    h_playlist,
    h_playlist_items,
    h_recommendations,
    h_removed,
    h_search,
    h_show,
    h_show_episodes,
    h_shows,
    h_top_tracks,
    h_track,
    h_tracks,
    h_user,
    h_user_playlists,
    query_params,
)
from spotify_catalog.emulator.me import (
    h_following,
    h_me,
    h_playlists,
    h_recently_played,
    h_saved_albums,
    h_saved_episodes,
    h_saved_shows,
    h_saved_tracks,
    h_top,
)
from spotify_catalog.emulator.responses import (
    CATALOG_CACHE,
    CORS_RAW,
    JSON,
    JSON_TYPE,
    ORIGIN_RAW,
    PLAYLIST_CACHE,
    PRIVATE_CACHE,
    SHOW_CACHE,
    ApiFail,
    CatalogResponse,
    Headers,
    encode_catalog,
    error_response,
    etag_of,
    header,
    method_not_allowed,
    preflight,
    premium_required,
    success_headers,
)
from spotify_catalog.emulator.state import EmulatorState, Grant

UNAUTHORIZED_MESSAGE = "Missing/invalid/expired access token"
NOT_REGISTERED = "Check settings on developer.spotify.com/dashboard, the user may not be registered."
"""The 403 of every call with the token of a user the Development-Mode app does not have (reference
§4; aome510/spotify-player#913 on /me/playlists, Nezreka/SoulSync#158 on /me, 2026)."""
WEB_API_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
"""The methods a Web API path answers: ``GET``/``HEAD``, a preflight, and 405 for the others."""


@dataclass(frozen=True)
class Spec:
    """A Web API route: handler, Cache-Control, ETag support, allowed in Development Mode."""

    template: str
    handler: Callable[[Ctx], JSON]
    cache: str = CATALOG_CACHE
    etag: bool = False
    development: bool = True
    removed: bool = False

    @functools.cached_property
    def route(self) -> str:
        """How ``/_emulator/stats`` names a ``GET`` of this route."""
        return f"GET {self.template}"

    @functools.cached_property
    def bucket(self) -> str:
        """The quota bucket the route's requests count in (the collector's grouping)."""
        return buckets.bucket_of(self.template)

    @functools.cached_property
    def user(self) -> bool:
        """A route of a user's own data: a Client Credentials token gets 401."""
        return oauth.is_user_route(self.template)

    @functools.cached_property
    def scopes(self) -> tuple[str, ...]:
        """The scopes a user's token needs on this route (:data:`spotify_catalog.oauth.ROUTE_SCOPES`)."""
        return oauth.required_scopes(self.template)


SPECS = (
    Spec("/v1/search", h_search),
    Spec("/v1/artists", h_artists, development=False),
    Spec("/v1/artists/{id}", h_artist),
    Spec("/v1/artists/{id}/albums", h_artist_albums),
    Spec("/v1/artists/{id}/top-tracks", h_top_tracks, development=False),
    Spec("/v1/albums", h_albums, development=False),
    Spec("/v1/albums/{id}", h_album),
    Spec("/v1/albums/{id}/tracks", h_album_tracks),
    Spec("/v1/tracks", h_tracks, development=False),
    Spec("/v1/tracks/{id}", h_track),
    Spec("/v1/shows", h_shows, SHOW_CACHE, development=False),
    Spec("/v1/shows/{id}", h_show, SHOW_CACHE, etag=True),
    Spec("/v1/shows/{id}/episodes", h_show_episodes, SHOW_CACHE, etag=True),
    Spec("/v1/episodes", h_episodes, SHOW_CACHE, development=False),
    Spec("/v1/episodes/{id}", h_episode, SHOW_CACHE, etag=True),
    Spec("/v1/audiobooks", h_audiobooks, development=False),
    Spec("/v1/audiobooks/{id}", h_audiobook),
    Spec("/v1/audiobooks/{id}/chapters", h_audiobook_chapters),
    Spec("/v1/chapters", h_chapters, development=False),
    Spec("/v1/chapters/{id}", h_chapter),
    Spec("/v1/playlists/{id}", h_playlist, PLAYLIST_CACHE, etag=True),
    Spec("/v1/playlists/{id}/tracks", h_playlist_items, PLAYLIST_CACHE, etag=True, development=False),
    Spec("/v1/playlists/{id}/items", h_playlist_items, PLAYLIST_CACHE, etag=True),
    Spec("/v1/browse/new-releases", h_new_releases, PRIVATE_CACHE, development=False),
    Spec("/v1/markets", h_markets, PRIVATE_CACHE, development=False),
    Spec("/v1/browse/categories", h_categories, PRIVATE_CACHE, development=False),
    Spec("/v1/users/{id}", h_user, development=False),
    Spec("/v1/users/{id}/playlists", h_user_playlists, PLAYLIST_CACHE, development=False),
    Spec("/v1/me", h_me, PRIVATE_CACHE),
    Spec("/v1/me/tracks", h_saved_tracks, PRIVATE_CACHE),
    Spec("/v1/me/albums", h_saved_albums, PRIVATE_CACHE),
    Spec("/v1/me/shows", h_saved_shows, PRIVATE_CACHE),
    Spec("/v1/me/episodes", h_saved_episodes, PRIVATE_CACHE),
    Spec("/v1/me/following", h_following, PRIVATE_CACHE),
    Spec("/v1/me/playlists", h_playlists, PRIVATE_CACHE),
    Spec("/v1/me/top/{type}", h_top, PRIVATE_CACHE),
    Spec("/v1/me/player/recently-played", h_recently_played, PRIVATE_CACHE),
    Spec("/v1/recommendations", h_recommendations, removed=True),
    Spec("/v1/artists/{id}/related-artists", h_removed, removed=True),
    Spec("/v1/audio-features", h_removed, removed=True),
    Spec("/v1/audio-features/{id}", h_removed, removed=True),
    Spec("/v1/audio-analysis/{id}", h_removed, removed=True),
)


def other_method(method: str) -> Response:
    """A Web API path asked with another method than ``GET``/``HEAD``: a preflight, or a 405; answered
    at once, never limited."""
    return preflight() if method == "OPTIONS" else method_not_allowed()


def _challenge(error: str, description: str) -> str:
    return f'Bearer realm="spotify", error="{error}", error_description="{description}"'


def _authenticate(state: EmulatorState, authorization: str | None) -> Grant:
    """What the request's token stands for; an :class:`ApiFail` when the token is not valid."""
    if authorization is None:
        raise ApiFail(
            401,
            UNAUTHORIZED_MESSAGE,
            {"www-authenticate": _challenge("missing_token", "No token provided")},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiFail(400, "Only valid bearer authentication supported")
    status, grant = state.token_status(token.strip())
    if status != "valid" or grant is None or (grant.user is not None and state.users.get(grant.user) is None):
        description = "The access token expired" if status == "expired" else "Invalid access token"
        raise ApiFail(
            401,
            UNAUTHORIZED_MESSAGE,
            {"www-authenticate": _challenge("invalid_token", description)},
        )
    return grant


def _user_allowed(spec: Spec, grant: Grant) -> None:
    """A user route needs a user's token (a Client Credentials token has no user: 401 without
    ``WWW-Authenticate``, spotify-web-api-php#222, spotify/web-api#806) with the route's scopes."""
    if not spec.user:
        return
    if grant.user is None:
        raise ApiFail(401, "Unauthorized.")
    if oauth.missing_scopes(grant.scopes, spec.scopes):
        raise ApiFail(403, "Insufficient client scope")


def _limit(state: EmulatorState, bucket: str, account: str) -> None:
    refusal = state.admit(bucket, account)
    if refusal is None:
        return
    if refusal.quota:
        raise ApiFail(429, "Too many requests", {"retry-after": str(refusal.retry_after)}, "QUOTA_EXCEEDED")
    mode = state.config.retry_after
    headers = {} if mode == "omit" else {"retry-after": "0" if mode == "zero" else str(refusal.retry_after)}
    raise ApiFail(429, "API rate limit exceeded", headers)


def settle(response: Response) -> str:
    """The status to count and log (``drop``: a connection closed on purpose); the CORS headers of an
    answer whose headers were not prepared whole (:class:`CatalogResponse`)."""
    if isinstance(response, faults.DroppedResponse):
        return "drop"
    if not isinstance(response, CatalogResponse):
        response.raw_headers.extend(ORIGIN_RAW if response.status_code < 400 else CORS_RAW)
    return str(response.status_code)


def answer(
    spec: Spec,
    state: EmulatorState,
    headers: Headers,
    query_string: bytes,
    where: Callable[[], tuple[dict[str, str], str]],
) -> Response:
    """The answer to a Web API ``GET`` (or ``HEAD``). ``where()`` gives the path parameters (with
    ``tail``, the last segment) and the base URL; it is called only for a request that is admitted."""
    fault: str | None = None
    try:
        grant = _authenticate(state, header(headers, b"authorization"))
        if not state.config.owner_premium:
            return premium_required()
        if grant.user is not None and grant.user not in state.config.app_users():
            raise ApiFail(403, NOT_REGISTERED)
        _limit(state, spec.bucket, grant.account)
        fault = state.fault()
        if fault in faults.STATUS_BODIES:
            raise ApiFail(*faults.STATUS_BODIES[fault])
        if fault == "drop":
            return faults.DroppedResponse()
        if fault in RAW_FAULTS:
            return faults.raw_answer(fault, {"cache-control": PRIVATE_CACHE})
        dev = state.config.profile == "development"
        if dev and not spec.development and not spec.removed:
            raise ApiFail(403, "Forbidden")
        _user_allowed(spec, grant)
        path, base = where()
        ctx = Ctx(state, query_params(query_string), path, base, dev, headers, grant)
        body = encode_catalog(spec.handler(ctx))
    except ApiFail as fail:
        response = error_response(fail)
        if fault in BODY_FAULTS:
            return faults.mangle(
                fault, bytes(response.body), response.status_code, {"content-type": JSON_TYPE}
            )
        return response
    if spec.etag:
        tag = etag_of(body)
        if tag in (header(headers, b"if-none-match") or ""):
            return Response(b"", status_code=304, headers={"cache-control": spec.cache, "etag": tag})
        out = {"content-type": JSON_TYPE, "cache-control": spec.cache, "etag": tag}
        if fault in BODY_FAULTS:
            return faults.mangle(fault, body, 200, out)
        return Response(body, status_code=200, headers=out)
    if fault in BODY_FAULTS:
        return faults.mangle(fault, body, 200, {"content-type": JSON_TYPE, "cache-control": spec.cache})
    return CatalogResponse(body, success_headers(spec.cache))
