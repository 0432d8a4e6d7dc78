"""What the routes of a user's own data answer (``/v1/me`` and ``/v1/me/...``): the token's user's
profile, library, playlists, top items and listening history (:mod:`.users`).

:func:`.webapi.answer` has checked before that the token is a user's (a Client Credentials token
gets 401), that the user is one of the app's (the Development-Mode 403) and that the route's scopes
were granted (403 ``Insufficient client scope``). Messages marked *inferred* in docs/emulator.md
have no recorded Spotify answer behind them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from spotify_catalog.emulator import render
from spotify_catalog.emulator.handlers import Ctx
from spotify_catalog.emulator.ids import is_base62_id
from spotify_catalog.emulator.responses import JSON, ApiFail
from spotify_catalog.emulator.users import TIME_RANGES

PLAYLISTS_MAX_OFFSET = 100_000
"""``GET /me/playlists``: "Maximum offset: 100.000" (2026 OpenAPI definition)."""


def h_me(ctx: Ctx) -> JSON:
    grant = ctx.grant
    return render.private_user(
        ctx.me(), ctx.base, ctx.dev, grant.scopes if grant is not None else frozenset()
    )


def _saved(ctx: Ctx, rows: Sequence[tuple[Any, str]], key: str, draw: Callable[[Any], JSON]) -> JSON:
    """A page of saved items: ``{"added_at": ..., key: object}``, newest first."""
    limit, offset = ctx.limit(20, 50), ctx.offset()
    items = [{"added_at": added, key: draw(item)} for item, added in rows[offset : offset + limit]]
    return render.paging(items, ctx.base, f"/v1/me/{key}s", ctx.other_params(), offset, limit, len(rows))


def h_saved_tracks(ctx: Ctx) -> JSON:
    cat, market = ctx.state.catalog, ctx.market()
    return _saved(
        ctx, ctx.me().library.saved_tracks, "track", lambda t: render.track(cat, t, ctx.base, ctx.dev, market)
    )


def h_saved_albums(ctx: Ctx) -> JSON:
    cat, market = ctx.state.catalog, ctx.market()
    return _saved(
        ctx, ctx.me().library.saved_albums, "album", lambda a: render.album(cat, a, ctx.base, ctx.dev, market)
    )


def h_saved_shows(ctx: Ctx) -> JSON:
    return _saved(
        ctx, ctx.me().library.saved_shows, "show", lambda s: render.simple_show(s, ctx.base, ctx.dev)
    )


def h_saved_episodes(ctx: Ctx) -> JSON:
    cat = ctx.state.catalog

    def draw(episode: Any) -> JSON:
        out = render.episode(cat, episode, ctx.base, ctx.dev)
        out["resume_point"] = {"fully_played": False, "resume_position_ms": 0}
        return out

    return _saved(ctx, ctx.me().library.saved_episodes, "episode", draw)


def h_following(ctx: Ctx) -> JSON:
    """Followed artists, cursor-paged by artist id (``after``: the last id of the previous page)."""
    kind = ctx.params.get("type")
    if not kind:
        raise ApiFail(400, "Missing parameter type")
    if kind != "artist":
        raise ApiFail(400, "Invalid type parameter")  # inferred
    limit = ctx.limit(20, 50)
    artists = ctx.me().library.followed_artists
    after = ctx.params.get("after")
    start = 0
    if after is not None:
        if not is_base62_id(after):
            raise ApiFail(400, "Invalid base62 id")
        ids = [a.id for a in artists]
        start = ids.index(after) + 1 if after in ids else len(ids)
    page = artists[start : start + limit]
    more = start + limit < len(artists)
    others = [(k, v) for k, v in ctx.params.multi_items() if k not in ("after", "limit")]
    next_params = [*others, ("after", page[-1].id), ("limit", str(limit))] if more and page else None
    body = render.cursor_paging(
        [render.artist(a, ctx.base, ctx.dev) for a in page],
        ctx.base,
        "/v1/me/following",
        list(ctx.params.multi_items()),
        limit,
        {"after": page[-1].id if more and page else None},
        next_params,
    )
    body["total"] = len(artists)
    return {"artists": body}


def h_playlists(ctx: Ctx) -> JSON:
    limit, offset = ctx.limit(20, 50), ctx.offset(PLAYLISTS_MAX_OFFSET)
    playlists = ctx.state.users.playlists_of(ctx.me())
    items = [render.simple_playlist(p, ctx.base, ctx.dev) for p in playlists[offset : offset + limit]]
    return render.paging(
        items, ctx.base, "/v1/me/playlists", ctx.other_params(), offset, limit, len(playlists)
    )


def h_top(ctx: Ctx) -> JSON:
    """Top artists or tracks of a time range (``medium_term`` by default); they change as the
    emulator's clock passes days (:data:`.users.RANGE_DAYS`)."""
    kind = ctx.path["type"]
    if kind not in ("artists", "tracks"):
        raise ApiFail(400, "Unsupported type")  # inferred
    time_range = ctx.params.get("time_range", "medium_term")
    if time_range not in TIME_RANGES:
        raise ApiFail(400, "Invalid time range")  # inferred
    limit, offset = ctx.limit(20, 50), ctx.offset()
    user, now, cat, market = ctx.me(), ctx.state.clock(), ctx.state.catalog, ctx.market()
    items: list[JSON]
    if kind == "artists":
        artists = user.top_artists(time_range, now)
        total = len(artists)
        items = [render.artist(a, ctx.base, ctx.dev) for a in artists[offset : offset + limit]]
    else:
        tracks = user.top_tracks(time_range, now)
        total = len(tracks)
        items = [render.track(cat, t, ctx.base, ctx.dev, market) for t in tracks[offset : offset + limit]]
    return render.paging(items, ctx.base, f"/v1/me/top/{kind}", ctx.other_params(), offset, limit, total)


def _cursor(ctx: Ctx, name: str) -> int | None:
    raw = ctx.params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ApiFail(400, f"Invalid {name} parameter")  # inferred
    return int(raw)


def h_recently_played(ctx: Ctx) -> JSON:
    """The last plays, newest first, among the last 50 Spotify keeps: ``after`` (ms) gives the newest
    ones after it, ``before`` the ones before it (spotify/web-api#627, #764, #1405)."""
    limit = ctx.limit(20, 50)
    after, before = _cursor(ctx, "after"), _cursor(ctx, "before")
    if after is not None and before is not None:
        raise ApiFail(400, "Only one of after and before may be given")  # inferred
    plays = ctx.me().recent_plays(ctx.state.clock())
    if after is not None:
        plays = [p for p in plays if p.played_at_ms > after]
    elif before is not None:
        plays = [p for p in plays if p.played_at_ms < before]
    page = plays[:limit]
    cat = ctx.state.catalog
    items = [render.play_history(cat, play, ctx.base, ctx.dev) for play in page]
    cursors = None
    next_params = None
    if page:
        cursors = {"after": str(page[0].played_at_ms), "before": str(page[-1].played_at_ms)}
        others = [(k, v) for k, v in ctx.params.multi_items() if k not in ("after", "before", "limit")]
        next_params = [("before", str(page[-1].played_at_ms)), ("limit", str(limit)), *others]
    path = "/v1/me/player/recently-played"
    return render.cursor_paging(
        items, ctx.base, path, list(ctx.params.multi_items()), limit, cursors, next_params
    )
