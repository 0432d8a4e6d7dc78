"""What each Web API route answers: the request as a handler sees it (:class:`Ctx`: parameters,
catalog, profile) and one handler per route, which returns the JSON body or raises :class:`ApiFail`."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.datastructures import QueryParams

from spotify_catalog import oauth
from spotify_catalog.emulator import render
from spotify_catalog.emulator.catalog import ALBUM_GROUPS
from spotify_catalog.emulator.entities import (
    Album,
    Artist,
    Audiobook,
    Chapter,
    Episode,
    Playlist,
    Show,
    Track,
)
from spotify_catalog.emulator.ids import is_base62_id
from spotify_catalog.emulator.responses import JSON, ApiFail, Headers, header
from spotify_catalog.emulator.search import TYPES
from spotify_catalog.emulator.state import EmulatorState, Grant
from spotify_catalog.emulator.users import EmulatedUser, UserPlaylist
from spotify_catalog.emulator.words import CATEGORIES, COUNTRY_CODES, MARKETS, UNLAUNCHED_MARKETS

DEFAULT_GROUPS = "album,single,compilation,appears_on"

T = TypeVar("T")


@functools.lru_cache(maxsize=1024)
def query_params(query_string: bytes) -> QueryParams:
    """The parsed query string (immutable, so the same object serves every request that sends it)."""
    return QueryParams(query_string)


@dataclass(slots=True)
class Ctx:
    """What a Web API handler sees."""

    state: EmulatorState
    params: QueryParams
    path: dict[str, str]
    base: str
    dev: bool
    headers: Headers = ()
    grant: Grant | None = None

    @property
    def user(self) -> EmulatedUser | None:
        """The test user of the request's token (``None`` for a Client Credentials token)."""
        name = self.grant.user if self.grant is not None else None
        return self.state.users.get(name) if name is not None else None

    def me(self) -> EmulatedUser:
        """The token's user, for the routes only a user's token reaches (:func:`.webapi.answer`
        checked there is one)."""
        user = self.user
        assert user is not None
        return user

    def country(self) -> str | None:
        """The market that decides what is available: ``market``, else the user's country (a user's
        token carries one; a Client Credentials token none)."""
        market = self.market()
        if market is None and self.user is not None:
            return self.user.country
        return market

    def locale(self) -> str | None:
        """The request's ``Accept-Language`` (search links carry it as ``locale=``)."""
        return header(self.headers, b"accept-language")

    def market(self) -> str | None:
        value = self.params.get("market")
        if value is None:
            return None
        if value == "from_token":  # a Client Credentials token has no user, so no country
            if self.user is not None:
                return self.user.country
            raise ApiFail(403, "Insufficient client scope")
        if value not in COUNTRY_CODES:
            raise ApiFail(400, "Invalid market code")
        if value in UNLAUNCHED_MARKETS:
            raise ApiFail(400, "Unlaunched market")
        return value

    def limit(self, default: int, maximum: int) -> int:
        raw = self.params.get("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise ApiFail(400, "Invalid limit")
        return int(raw)

    def offset(self, maximum: int | None = None) -> int:
        raw = self.params.get("offset", "0")
        if not raw.isdigit() or (maximum is not None and int(raw) > maximum):
            raise ApiFail(400, "Invalid offset")
        return int(raw)

    def other_params(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.params.multi_items() if k not in ("offset", "limit")]

    def entity(self, kind: type[Any], entity_id: str | None = None) -> Any:
        entity_id = self.path["id"] if entity_id is None else entity_id
        if not is_base62_id(entity_id):
            raise ApiFail(400, "Invalid base62 id")
        found: Any = self.state.catalog.lookup(entity_id)
        if found is None and kind is Playlist:
            found = self.state.users.playlist(entity_id)
        if not isinstance(found, kind):
            raise ApiFail(404, "Resource not found")
        return found

    def ids(self, maximum: int) -> list[str]:
        raw = self.params.get("ids")
        if not raw:
            raise ApiFail(400, "Missing parameter ids")
        ids = raw.split(",")
        if len(ids) > maximum:
            raise ApiFail(400, "too many ids requested")
        if not all(is_base62_id(i) for i in ids):
            raise ApiFail(400, "Invalid base62 id")
        return ids

    def batch(self, kind: type[Any], maximum: int) -> list[Any]:
        return [x if isinstance(x := self.state.catalog.lookup(i), kind) else None for i in self.ids(maximum)]


def h_search(ctx: Ctx) -> JSON:
    q = ctx.params.get("q") or ctx.params.get("query")  # paging links say query=, as Spotify's do
    if not q or not q.strip():
        raise ApiFail(400, "No search query")
    raw_types = ctx.params.get("type")
    if not raw_types:
        raise ApiFail(400, "Missing parameter type")
    types = list(dict.fromkeys(t.strip() for t in raw_types.split(",")))
    for t in types:
        if t not in TYPES:
            raise ApiFail(400, f"Bad search type field {t}")
    limit = ctx.limit(*((5, 10) if ctx.dev else (20, 50)))
    offset = ctx.offset(1000)
    if offset == 1000:  # where the last `next` below the cap points (spotipy#868)
        raise ApiFail(400, "Bad request.")
    if offset + limit > 1000:
        raise ApiFail(400, "Invalid offset")
    market = ctx.market()
    extra = [(k, ctx.params[k]) for k in ("market", "include_external") if k in ctx.params]
    locale = ctx.locale()
    if locale:
        extra.append(("locale", locale))
    cat, base, dev = ctx.state.catalog, ctx.base, ctx.dev
    out: JSON = {}
    for t in types:
        results = ctx.state.searcher.search(q, t, market)
        page: tuple[Any, ...] = results[offset : offset + limit]
        items: list[Any]
        if t == "artist":
            items = [render.artist(x, base, dev) for x in page]
        elif t == "album":
            items = [render.simple_album(cat, x, base, dev, market=market) for x in page]
        elif t == "track":
            items = [render.track(cat, x, base, dev, market) for x in page]
        elif t == "playlist":
            items = [None if x.null_in_search else render.simple_playlist(x, base, dev) for x in page]
        elif t == "show":
            items = [render.simple_show(x, base, dev) for x in page]
        elif t == "episode":
            items = [render.simple_episode(cat, x, base) for x in page]
        else:
            items = [render.simple_audiobook(x, base, dev) for x in page]
        params = [("query", q), ("type", t), *extra]
        out[f"{t}s"] = render.paging(items, base, "/v1/search", params, offset, limit, len(results), 1000)
    return out


def h_artist(ctx: Ctx) -> JSON:
    return render.artist(ctx.entity(Artist), ctx.base, ctx.dev)


def h_artists(ctx: Ctx) -> JSON:
    return {"artists": [render.artist(a, ctx.base, ctx.dev) if a else None for a in ctx.batch(Artist, 50)]}


def h_artist_albums(ctx: Ctx) -> JSON:
    artist: Artist = ctx.entity(Artist)
    raw = ctx.params.get("include_groups")
    groups = ALBUM_GROUPS if raw is None else tuple(g.strip() for g in raw.split(",") if g.strip())
    if not groups or any(g not in ALBUM_GROUPS for g in groups):
        raise ApiFail(400, "Invalid include_groups parameter")
    limit = ctx.limit(*((5, 10) if ctx.dev else (20, 50)))
    offset = ctx.offset()
    market = ctx.market()
    albums = ctx.state.catalog.artist_albums(artist.index, groups, market)
    items = [
        render.simple_album(ctx.state.catalog, al, ctx.base, ctx.dev, group, market)
        for al, group in albums[offset : offset + limit]
    ]
    params = ctx.other_params()
    if raw is None:  # links always say which groups
        params.append(("include_groups", DEFAULT_GROUPS))
    path = f"/v1/artists/{artist.id}/albums"
    return render.paging(items, ctx.base, path, params, offset, limit, len(albums))


def h_top_tracks(ctx: Ctx) -> JSON:
    artist: Artist = ctx.entity(Artist)
    cat = ctx.state.catalog
    albums = sorted(cat.discography(artist.index), key=lambda al: -al.popularity)[:10]
    tracks = sorted(
        (t for al in albums for t in cat.tracks_of(al.artist, al.number)), key=lambda t: (-t.popularity, t.id)
    )[:10]
    return {"tracks": [render.track(cat, t, ctx.base, ctx.dev, ctx.market()) for t in tracks]}


def h_album(ctx: Ctx) -> JSON:
    return render.album(ctx.state.catalog, ctx.entity(Album), ctx.base, ctx.dev, ctx.market())


def h_albums(ctx: Ctx) -> JSON:
    market = ctx.market()
    return {
        "albums": [
            render.album(ctx.state.catalog, a, ctx.base, ctx.dev, market) if a else None
            for a in ctx.batch(Album, 20)
        ]
    }


def h_album_tracks(ctx: Ctx) -> JSON:
    album: Album = ctx.entity(Album)
    limit, offset, market = ctx.limit(20, 50), ctx.offset(), ctx.market()
    cat = ctx.state.catalog
    tracks = cat.tracks_of(album.artist, album.number)
    items = [render.simple_track(cat, t, ctx.base, ctx.dev, market) for t in tracks[offset : offset + limit]]
    return render.paging(
        items, ctx.base, f"/v1/albums/{album.id}/tracks", ctx.other_params(), offset, limit, len(tracks)
    )


def h_track(ctx: Ctx) -> JSON:
    return render.track(ctx.state.catalog, ctx.entity(Track), ctx.base, ctx.dev, ctx.market())


def h_tracks(ctx: Ctx) -> JSON:
    market = ctx.market()
    return {
        "tracks": [
            render.track(ctx.state.catalog, t, ctx.base, ctx.dev, market) if t else None
            for t in ctx.batch(Track, 50)
        ]
    }


def _in_market(markets: tuple[str, ...], market: str | None) -> bool:
    return market is not None and market in markets


def _in_market_batch(
    ctx: Ctx, key: str, kind: type[T], markets: Callable[[T], tuple[str, ...]], draw: Callable[[T], JSON]
) -> JSON:
    """A batch of shows, episodes, audiobooks or chapters: ``null`` for an id not found or not in the market
    (these kinds exist only in their markets)."""
    market = ctx.market()
    return {key: [draw(x) if x and _in_market(markets(x), market) else None for x in ctx.batch(kind, 50)]}


def _parts_page(ctx: Ctx, path: str, parts: Sequence[T], draw: Callable[[T], JSON]) -> JSON:
    """A page of a show's episodes or an audiobook's chapters."""
    limit, offset = ctx.limit(20, 50), ctx.offset()
    items = [draw(part) for part in parts[offset : offset + limit]]
    return render.paging(items, ctx.base, path, ctx.other_params(), offset, limit, len(parts))


def _show(ctx: Ctx, entity: Show | None = None) -> Show:
    show = entity or ctx.entity(Show)
    if not _in_market(show.markets, ctx.country()):
        raise ApiFail(404, "non existing id")
    return show


def h_show(ctx: Ctx) -> JSON:
    show = _show(ctx)
    return render.show(ctx.state.catalog, show, ctx.base, ctx.dev, ctx.market() or "")


def h_shows(ctx: Ctx) -> JSON:
    return _in_market_batch(
        ctx, "shows", Show, lambda s: s.markets, lambda s: render.simple_show(s, ctx.base, ctx.dev)
    )


def h_show_episodes(ctx: Ctx) -> JSON:
    show, cat = _show(ctx), ctx.state.catalog
    return _parts_page(
        ctx,
        f"/v1/shows/{show.id}/episodes",
        cat.episodes_of(show.index),
        lambda e: render.simple_episode(cat, e, ctx.base),
    )


def h_episode(ctx: Ctx) -> JSON:
    episode: Episode = ctx.entity(Episode)
    cat = ctx.state.catalog
    _show(ctx, cat.shows[episode.show])
    return render.episode(cat, episode, ctx.base, ctx.dev)


def h_episodes(ctx: Ctx) -> JSON:
    cat = ctx.state.catalog
    return _in_market_batch(
        ctx,
        "episodes",
        Episode,
        lambda e: cat.shows[e.show].markets,
        lambda e: render.episode(cat, e, ctx.base, ctx.dev),
    )


def _audiobook(ctx: Ctx, entity: Audiobook | None = None) -> Audiobook:
    book = entity or ctx.entity(Audiobook)
    if not _in_market(book.markets, ctx.country()):
        raise ApiFail(404, "non existing id")
    return book


def h_audiobook(ctx: Ctx) -> JSON:
    book = _audiobook(ctx)
    return render.audiobook(ctx.state.catalog, book, ctx.base, ctx.dev, ctx.market() or "")


def h_audiobooks(ctx: Ctx) -> JSON:
    cat, market = ctx.state.catalog, ctx.market() or ""
    return _in_market_batch(
        ctx,
        "audiobooks",
        Audiobook,
        lambda b: b.markets,
        lambda b: render.audiobook(cat, b, ctx.base, ctx.dev, market),
    )


def h_audiobook_chapters(ctx: Ctx) -> JSON:
    book, cat = _audiobook(ctx), ctx.state.catalog
    return _parts_page(
        ctx,
        f"/v1/audiobooks/{book.id}/chapters",
        cat.chapters_of(book.index),
        lambda c: render.simple_chapter(cat, c, ctx.base, ctx.dev),
    )


def h_chapter(ctx: Ctx) -> JSON:
    chapter: Chapter = ctx.entity(Chapter)
    cat = ctx.state.catalog
    _audiobook(ctx, cat.audiobooks[chapter.audiobook])
    return render.chapter(cat, chapter, ctx.base, ctx.dev)


def h_chapters(ctx: Ctx) -> JSON:
    cat = ctx.state.catalog
    return _in_market_batch(
        ctx,
        "chapters",
        Chapter,
        lambda c: cat.audiobooks[c.audiobook].markets,
        lambda c: render.chapter(cat, c, ctx.base, ctx.dev),
    )


def _added_by(ctx: Ctx, playlist: Playlist) -> list[JSON]:
    """Who added a playlist's rows: its owner, and for a collaborative one its collaborators too."""
    if not isinstance(playlist, UserPlaylist):
        return []
    users = ctx.state.users
    owner = users.get(playlist.owner)
    people = [owner] if owner is not None else []
    people += users.collaborators(playlist)
    return [render.user_ref(user.id, ctx.base) for user in people]


def _readable(ctx: Ctx, playlist: Playlist) -> bool:
    """Whether the token's user owns or collaborates on the playlist."""
    user = ctx.user
    return user is not None and ctx.state.users.may_read_items(user, playlist)


def _scope_granted(ctx: Ctx, playlist: Playlist) -> bool:
    """Whether the token's user granted the scope the items of their playlist need (a private one:
    ``playlist-read-private``; a collaborative one: ``playlist-read-collaborative``)."""
    if not isinstance(playlist, UserPlaylist) or ctx.grant is None:
        return True
    scope = oauth.playlist_scope(collaborative=playlist.collaborative, public=playlist.public)
    return scope is None or scope in ctx.grant.scopes


def h_playlist(ctx: Ctx) -> JSON:
    """Development Mode: the items only for a playlist the token's user owns or collaborates on
    (February 2026 changelog: "Will only return an items object for the user's playlist")."""
    playlist: Playlist = ctx.entity(Playlist)
    with_items = ctx.dev and _readable(ctx, playlist) and _scope_granted(ctx, playlist)
    added_by = _added_by(ctx, playlist)
    return render.playlist(ctx.state.catalog, playlist, ctx.base, ctx.dev, ctx.market(), with_items, added_by)


def h_playlist_items(ctx: Ctx) -> JSON:
    """Development Mode: ``/items`` only for a playlist the token's user owns or collaborates on,
    ``403 Forbidden`` otherwise (2026 OpenAPI definition; stiefenm/spoton#119); ``403 Insufficient
    client scope`` without the scope its items need."""
    if ctx.dev and ctx.user is None:
        raise ApiFail(403, "Forbidden")
    playlist: Playlist = ctx.entity(Playlist)
    if ctx.dev and not _readable(ctx, playlist):
        raise ApiFail(403, "Forbidden")
    if ctx.dev and not _scope_granted(ctx, playlist):
        raise ApiFail(403, "Insufficient client scope")
    limit, offset = ctx.limit(20, 50), ctx.offset()
    tail = ctx.path["tail"]
    return render.playlist_items(
        ctx.state.catalog,
        playlist,
        ctx.base,
        ctx.market(),
        offset,
        limit,
        f"/v1/playlists/{playlist.id}/{tail}",
        ctx.other_params(),
        ctx.dev,
        _added_by(ctx, playlist),
    )


def h_new_releases(ctx: Ctx) -> JSON:
    limit, offset = ctx.limit(20, 50), ctx.offset()
    albums = ctx.state.catalog.new_releases
    items = [
        render.simple_album(ctx.state.catalog, al, ctx.base, ctx.dev)
        for al in albums[offset : offset + limit]
    ]
    return {
        "albums": render.paging(
            items, ctx.base, "/v1/browse/new-releases", ctx.other_params(), offset, limit, len(albums)
        )
    }


def h_markets(ctx: Ctx) -> JSON:
    return {"markets": list(MARKETS)}


_USER_ID = re.compile(r"[a-z-]+([0-9]{1,9})")


def _owned_playlist(ctx: Ctx) -> Playlist | None:
    """The playlist the user ``{id}`` owns (user ``dj7`` owns playlist 7), if that user exists."""
    match = _USER_ID.fullmatch(ctx.path["id"])
    playlists = ctx.state.catalog.playlists
    if match is None or int(match[1]) >= len(playlists):
        return None
    playlist = playlists[int(match[1])]
    return playlist if playlist.owner_id == ctx.path["id"] else None


def h_user(ctx: Ctx) -> JSON:
    """A user's public profile, as before 2026 (Development Mode refuses it)."""
    playlist = _owned_playlist(ctx)
    if playlist is None:
        raise ApiFail(404, "Resource not found")
    return render.user(playlist, ctx.base)


def h_user_playlists(ctx: Ctx) -> JSON:
    """A user's public playlists, as before 2026 (Development Mode refuses it); an unknown user has
    none: an empty page, not a 404 (spotify/web-api#1077)."""
    limit, offset = ctx.limit(20, 50), ctx.offset()
    playlist = _owned_playlist(ctx)
    owned = [playlist] if playlist else []
    items = [render.simple_playlist(p, ctx.base, ctx.dev) for p in owned[offset : offset + limit]]
    path = f"/v1/users/{quote(ctx.path['id'], safe='')}/playlists"
    return render.paging(items, ctx.base, path, ctx.other_params(), offset, limit, len(owned))


def h_categories(ctx: Ctx) -> JSON:
    """The browse categories, as before 2026 (Development Mode refuses them)."""
    limit, offset = ctx.limit(20, 50), ctx.offset()
    items = [render.category(i, name, ctx.base) for i, name in CATEGORIES[offset : offset + limit]]
    return {
        "categories": render.paging(
            items, ctx.base, "/v1/browse/categories", ctx.other_params(), offset, limit, len(CATEGORIES)
        )
    }


def h_removed(ctx: Ctx) -> JSON:
    """Endpoints removed in November 2024: 403 without a message, whatever the app's mode."""
    raise ApiFail(403, "")


def h_recommendations(ctx: Ctx) -> JSON:
    """Recommendations, removed in November 2024: 404 without a message, whatever the app's mode
    (spotipy#1181: "returned 404 due to None"; LargeModGames/spotatui#28, 2026)."""
    raise ApiFail(404, "")
