"""Catalog entities as Web API JSON, per profile (pure functions).

``dev=True`` renders the Development-Mode shapes of 2026: the fields Spotify removed in February
2026 are absent (artist ``followers``/``popularity``; album ``album_group``, ``available_markets``,
``label``, ``popularity``; track ``available_markets``, ``linked_from``, ``popularity``; show and
audiobook ``available_markets``/``publisher``; chapter ``available_markets``; playlist contents).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from spotify_catalog.emulator.catalog import Catalog
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
from spotify_catalog.emulator.users import EmulatedUser, Play, UserPlaylist

JSON = dict[str, Any]
Params = Sequence[tuple[str, str]]
API = "/v1"


def query_string(params: Params) -> str:
    """Spotify's encoding: ``:`` as ``%3A`` (``query=artist%3ABTS``), commas and ``;`` kept."""
    return urlencode(list(params), quote_via=quote, safe=",;")


def paging(
    items: list[Any],
    base: str,
    path: str,
    params: Params,
    offset: int,
    limit: int,
    total: int,
    max_end: int | None = None,
) -> JSON:
    """A paging object; ``href``/``next``/``previous`` keep the request's other query parameters.

    ``max_end`` (search: 1000): ``next`` is given while its offset is at most ``max_end``, so the last
    one points at offset 1000, which is refused (``400 Bad request.``), as Spotify's does."""

    rest = query_string(params)  # encoded once for the three links
    rest = f"&{rest}" if rest else ""

    def link(at: int) -> str:
        return f"{base}{path}?offset={at}&limit={limit}{rest}"

    has_next = offset + limit < total and (max_end is None or offset + limit <= max_end)
    return {
        "href": link(offset),
        "items": items,
        "limit": limit,
        "next": link(offset + limit) if has_next else None,
        "offset": offset,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
        "total": total,
    }


def _images(key: str | None, sizes: Sequence[int], prefix: str) -> list[JSON]:
    if key is None:
        return []
    return [
        {"url": f"https://i.scdn.co/image/{prefix}{key}{size:04d}", "height": size, "width": size}
        for size in sizes
    ]


def _links(base: str, kind: str, entity_id: str) -> JSON:
    return {
        "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{entity_id}"},
        "href": f"{base}{API}/{kind}s/{entity_id}",
        "id": entity_id,
    }


def simple_artist(artist: Artist, base: str) -> JSON:
    return {
        **_links(base, "artist", artist.id),
        "name": artist.name,
        "type": "artist",
        "uri": f"spotify:artist:{artist.id}",
    }


def artist(artist: Artist, base: str, dev: bool) -> JSON:
    out: JSON = {**_links(base, "artist", artist.id)}
    if not dev:
        out["followers"] = {"href": None, "total": artist.followers}
    if not dev:  # Development Mode: no genres key at all (2026; spotDL#2615)
        out["genres"] = list(artist.genres)
    out["images"] = _images(artist.image_key, (640, 320, 160), "ab6761610000")
    out["name"] = artist.name
    if not dev:
        out["popularity"] = artist.popularity
    out["type"] = "artist"
    out["uri"] = f"spotify:artist:{artist.id}"
    return out


def simple_album(
    cat: Catalog,
    album: Album,
    base: str,
    dev: bool,
    group: str | None = None,
    market: str | None = None,
) -> JSON:
    """With a ``market``: ``is_playable`` there, and no ``available_markets`` (as Spotify answers)."""
    out: JSON = {"album_type": album.album_type, "total_tracks": album.total_tracks}
    if not dev and not market:
        out["available_markets"] = list(album.markets)
    out.update(_links(base, "album", album.id))
    out["images"] = _images(album.image_key, (640, 300, 64), "ab67616d0000")
    out["name"] = album.name
    out["release_date"] = album.release_date
    out["release_date_precision"] = album.release_date_precision
    out["type"] = "album"
    out["uri"] = f"spotify:album:{album.id}"
    out["artists"] = [simple_artist(cat.artist(album.artist), base)]
    if group is not None and not dev:
        out["album_group"] = group
    if market:
        out["is_playable"] = market in album.markets
    return out


def album(cat: Catalog, album_: Album, base: str, dev: bool, market: str | None) -> JSON:
    out = simple_album(cat, album_, base, dev, market=market)
    tracks = cat.tracks_of(album_.artist, album_.number)
    params = [("market", market)] if market else []
    page = [simple_track(cat, t, base, dev, market) for t in tracks[:50]]
    out["tracks"] = paging(page, base, f"{API}/albums/{album_.id}/tracks", params, 0, 50, len(tracks))
    year = album_.release_date[:4]
    out["copyrights"] = [
        {"text": f"© {year} {album_.label}", "type": "C"},
        {"text": f"℗ {year} {album_.label}", "type": "P"},
    ]
    out["external_ids"] = {"upc": album_.upc}
    if not dev:  # Development Mode: no genres key at all
        out["genres"] = []
        out["label"] = album_.label
        out["popularity"] = album_.popularity
    return out


def simple_track(cat: Catalog, track_: Track, base: str, dev: bool, market: str | None) -> JSON:
    album_ = cat.album_of(track_)
    out: JSON = {"artists": [simple_artist(cat.artist(a), base) for a in track_.artists]}
    if not dev and not market:
        out["available_markets"] = list(album_.markets)
    out["disc_number"] = track_.disc_number
    out["duration_ms"] = track_.duration_ms
    out["explicit"] = track_.explicit
    # Development Mode lost `linked_from` in February 2026: no relinking shown there
    relinked = cat.relinked_id(track_, market) if market and not dev else None
    out.update(_links(base, "track", relinked or track_.id))
    if market:
        playable = market in album_.markets
        out["is_playable"] = playable
        if not playable:
            out["restrictions"] = {"reason": "market"}
    if relinked:  # Spotify's track relinking: the playable track's id, the requested one in linked_from
        out["linked_from"] = {
            **_links(base, "track", track_.id),
            "type": "track",
            "uri": f"spotify:track:{track_.id}",
        }
    out["name"] = track_.name
    out["preview_url"] = None
    out["track_number"] = track_.track_number
    out["type"] = "track"
    out["uri"] = f"spotify:track:{relinked or track_.id}"
    out["is_local"] = False
    return out


def track(cat: Catalog, track_: Track, base: str, dev: bool, market: str | None) -> JSON:
    out: JSON = {"album": simple_album(cat, cat.album_of(track_), base, dev, market=market)}
    out.update(simple_track(cat, track_, base, dev, market))
    out["external_ids"] = {"isrc": track_.isrc}
    if not dev:
        out["popularity"] = track_.popularity
    return out


def simple_show(show: Show, base: str, dev: bool) -> JSON:
    out: JSON = {}
    if not dev:
        out["available_markets"] = list(show.markets)
    out["copyrights"] = []
    out["description"] = show.description
    out["html_description"] = f"<p>{show.description}</p>"
    out["explicit"] = show.explicit
    out.update(_links(base, "show", show.id))
    out["images"] = _images(show.image_key, (640, 300, 64), "ab6765630000")
    out["is_externally_hosted"] = False
    out["languages"] = list(show.languages)
    out["media_type"] = "audio"
    out["name"] = show.name
    if not dev:
        out["publisher"] = show.publisher
    out["type"] = "show"
    out["uri"] = f"spotify:show:{show.id}"
    out["total_episodes"] = show.total_episodes
    return out


def show(cat: Catalog, show_: Show, base: str, dev: bool, market: str) -> JSON:
    out = simple_show(show_, base, dev)
    episodes = cat.episodes_of(show_.index)
    items = [simple_episode(cat, e, base) for e in episodes[:50]]
    out["episodes"] = paging(
        items, base, f"{API}/shows/{show_.id}/episodes", [("market", market)], 0, 50, len(episodes)
    )
    return out


def simple_episode(cat: Catalog, episode_: Episode, base: str) -> JSON:
    show_ = cat.shows[episode_.show]
    out: JSON = {
        "audio_preview_url": None,
        "description": episode_.description,
        "html_description": f"<p>{episode_.description}</p>",
        "duration_ms": episode_.duration_ms,
        "explicit": episode_.explicit,
    }
    out.update(_links(base, "episode", episode_.id))
    out["images"] = _images(show_.image_key, (640, 300, 64), "ab6765630000")
    out["is_externally_hosted"] = False
    out["is_playable"] = True
    out["language"] = episode_.language
    out["languages"] = [episode_.language]
    out["name"] = episode_.name
    out["release_date"] = episode_.release_date
    out["release_date_precision"] = episode_.release_date_precision
    out["type"] = "episode"
    out["uri"] = f"spotify:episode:{episode_.id}"
    return out


def episode(cat: Catalog, episode_: Episode, base: str, dev: bool) -> JSON:
    out = simple_episode(cat, episode_, base)
    out["show"] = simple_show(cat.shows[episode_.show], base, dev)
    return out


def simple_audiobook(book: Audiobook, base: str, dev: bool) -> JSON:
    out: JSON = {"authors": [{"name": a} for a in book.authors]}
    if not dev:
        out["available_markets"] = list(book.markets)
    out["copyrights"] = []
    out["description"] = book.description
    out["html_description"] = f"<p>{book.description}</p>"
    out["edition"] = book.edition
    out["explicit"] = book.explicit
    out.update(_links(base, "audiobook", book.id))
    out["images"] = _images(book.image_key, (640, 300, 64), "ab6766630000")
    out["languages"] = list(book.languages)
    out["media_type"] = "audio"
    out["name"] = book.name
    out["narrators"] = [{"name": n} for n in book.narrators]
    if not dev:
        out["publisher"] = book.publisher
    out["type"] = "audiobook"
    out["uri"] = f"spotify:audiobook:{book.id}"
    out["total_chapters"] = book.total_chapters
    return out


def audiobook(cat: Catalog, book: Audiobook, base: str, dev: bool, market: str) -> JSON:
    out = simple_audiobook(book, base, dev)
    chapters = cat.chapters_of(book.index)
    items = [simple_chapter(cat, c, base, dev) for c in chapters[:50]]
    out["chapters"] = paging(
        items, base, f"{API}/audiobooks/{book.id}/chapters", [("market", market)], 0, 50, len(chapters)
    )
    return out


def simple_chapter(cat: Catalog, chapter_: Chapter, base: str, dev: bool) -> JSON:
    book = cat.audiobooks[chapter_.audiobook]
    out: JSON = {"audio_preview_url": None}
    if not dev:
        out["available_markets"] = list(book.markets)
    out["chapter_number"] = chapter_.number
    out["description"] = chapter_.description
    out["html_description"] = f"<p>{chapter_.description}</p>"
    out["duration_ms"] = chapter_.duration_ms
    out["explicit"] = book.explicit
    out.update(_links(base, "chapter", chapter_.id))
    out["images"] = _images(book.image_key, (640, 300, 64), "ab6766630000")
    out["is_playable"] = True
    out["languages"] = list(book.languages)
    out["name"] = chapter_.name
    out["release_date"] = chapter_.release_date
    out["release_date_precision"] = "day"
    out["type"] = "episode"  # Spotify types chapters as "episode"
    out["uri"] = f"spotify:episode:{chapter_.id}"
    return out


def chapter(cat: Catalog, chapter_: Chapter, base: str, dev: bool) -> JSON:
    out = simple_chapter(cat, chapter_, base, dev)
    out["audiobook"] = simple_audiobook(cat.audiobooks[chapter_.audiobook], base, dev)
    return out


def user_ref(user_id: str, base: str) -> JSON:
    """A user as playlist owners and ``added_by`` show them."""
    return {
        "external_urls": {"spotify": f"https://open.spotify.com/user/{user_id}"},
        "href": f"{base}{API}/users/{user_id}",
        "id": user_id,
        "type": "user",
        "uri": f"spotify:user:{user_id}",
    }


def _owner(playlist_: Playlist, base: str) -> JSON:
    return {**user_ref(playlist_.owner_id, base), "display_name": playlist_.owner_name}


def user(playlist_: Playlist, base: str) -> JSON:
    """The public profile of a playlist's owner (``GET /users/{id}``, Extended Quota Mode)."""
    owner = _owner(playlist_, base)
    return {
        "display_name": owner["display_name"],
        "external_urls": owner["external_urls"],
        "followers": {"href": None, "total": playlist_.followers // 10},
        "href": owner["href"],
        "id": owner["id"],
        "images": [],
        "type": "user",
        "uri": owner["uri"],
    }


def category(category_id: str, name: str, base: str) -> JSON:
    """A browse category (``GET /browse/categories``, Extended Quota Mode)."""
    key = hashlib.blake2b(category_id.encode(), digest_size=20).hexdigest()
    return {
        "href": f"{base}{API}/browse/categories/{category_id}",
        "icons": [{"url": f"https://t.scdn.co/images/{key}.jpeg", "height": 274, "width": 274}],
        "id": category_id,
        "name": name,
    }


def simple_playlist(playlist_: Playlist, base: str, dev: bool) -> JSON:
    """Development Mode: the reference to the items is ``items``, without the older ``tracks``
    (Marinara-Engine PR #681, 2026); Extended: ``tracks``, as before 2026."""
    out: JSON = {
        "collaborative": isinstance(playlist_, UserPlaylist) and playlist_.collaborative,
        "description": playlist_.description,
    }
    out.update(_links(base, "playlist", playlist_.id))
    if playlist_.uploaded_cover:  # a cover the owner uploaded: no dimensions
        url = f"https://image-cdn-ak.spotifycdn.com/image/ab67706c0000da84{playlist_.image_key}"
        out["images"] = [{"url": url, "height": None, "width": None}]
    else:
        out["images"] = _images(playlist_.image_key, (640,), "ab67706c0000")
    out["name"] = playlist_.name
    out["owner"] = _owner(playlist_, base)
    out["primary_color"] = None
    out["public"] = playlist_.public if isinstance(playlist_, UserPlaylist) else True
    out["snapshot_id"] = playlist_.snapshot_id
    key = "items" if dev else "tracks"
    out[key] = {"href": f"{base}{API}/playlists/{playlist_.id}/{key}", "total": playlist_.total_items}
    out["type"] = "playlist"
    out["uri"] = f"spotify:playlist:{playlist_.id}"
    return out


def playlist_tracks(cat: Catalog, playlist_: Playlist) -> tuple[Track, ...]:
    """The tracks of a playlist, in order."""
    if isinstance(playlist_, UserPlaylist):
        return playlist_.tracks
    return cat.playlist_items(playlist_.index)


def playlist_items(
    cat: Catalog,
    playlist_: Playlist,
    base: str,
    market: str | None,
    offset: int,
    limit: int,
    path: str,
    params: Params,
    dev: bool = False,
    added_by: Sequence[JSON] = (),
) -> JSON:
    """A page of a playlist's items. Each row holds its track as ``item``, and in Extended Quota Mode
    also as the older ``track``; Development Mode rows have ``item`` only (stiefenm/spoton#119).
    ``added_by``: who added the rows, in turn (the owner when not given)."""
    tracks = playlist_tracks(cat, playlist_)
    adders = list(added_by) or [user_ref(playlist_.owner_id, base)]
    items = []
    for n, t in enumerate(tracks[offset : offset + limit], start=offset):
        rendered = track(cat, t, base, False, market)
        row: JSON = {
            "added_at": f"2025-{n % 12 + 1:02d}-{n % 28 + 1:02d}T12:00:00Z",
            "added_by": adders[n % len(adders)],
            "is_local": False,
            "primary_color": None,
            "item": rendered,
        }
        if not dev:
            row["track"] = rendered
        row["video_thumbnail"] = {"url": None}
        items.append(row)
    return paging(items, base, path, params, offset, limit, len(tracks))


def playlist(
    cat: Catalog,
    playlist_: Playlist,
    base: str,
    dev: bool,
    market: str | None,
    with_items: bool = False,
    added_by: Sequence[JSON] = (),
) -> JSON:
    """Development Mode: metadata only, unless ``with_items`` (the token's user owns or collaborates
    on the playlist)."""
    out = simple_playlist(playlist_, base, dev)
    out["followers"] = {"href": None, "total": playlist_.followers}
    if not dev or with_items:
        params = [("market", market)] if market else []
        key = "items" if dev else "tracks"
        page = playlist_items(
            cat,
            playlist_,
            base,
            market,
            0,
            100,
            f"{API}/playlists/{playlist_.id}/{key}",
            params,
            dev,
            added_by,
        )
        if not dev:
            out["tracks"] = page
        out["items"] = page
    else:
        del out["items"]
    return out


def private_user(user_: EmulatedUser, base: str, dev: bool, scopes: frozenset[str]) -> JSON:
    """``GET /me``: ``account_id`` (May 2026); Development Mode lost ``country``, ``email``,
    ``explicit_content``, ``followers`` and ``product`` in February 2026; in Extended Quota Mode
    ``country``, ``explicit_content`` and ``product`` need ``user-read-private``, ``email``
    ``user-read-email``."""
    out: JSON = {"account_id": user_.account_id}
    private = not dev and "user-read-private" in scopes
    if private:
        out["country"] = user_.country
    out["display_name"] = user_.display_name
    if not dev and "user-read-email" in scopes:
        out["email"] = user_.email
    if private:
        out["explicit_content"] = {"filter_enabled": False, "filter_locked": False}
    out["external_urls"] = {"spotify": f"https://open.spotify.com/user/{user_.id}"}
    if not dev:
        out["followers"] = {"href": None, "total": user_.followers}
    out["href"] = f"{base}{API}/users/{user_.id}"
    out["id"] = user_.id
    out["images"] = []
    if private:
        out["product"] = "premium"
    out["type"] = "user"
    out["uri"] = f"spotify:user:{user_.id}"
    return out


def context(cat: Catalog, source: Album | UserPlaylist | None, base: str) -> JSON | None:
    """What a play was played from: an album, a playlist, or nothing (``null``)."""
    if source is None:
        return None
    kind = "album" if isinstance(source, Album) else "playlist"
    return {
        "type": kind,
        "href": f"{base}{API}/{kind}s/{source.id}",
        "external_urls": {"spotify": f"https://open.spotify.com/{kind}/{source.id}"},
        "uri": f"spotify:{kind}:{source.id}",
    }


def play_history(cat: Catalog, play: Play, base: str, dev: bool) -> JSON:
    return {
        "track": track(cat, play.track, base, dev, None),
        "played_at": play.played_at,
        "context": context(cat, play.context, base),
    }


def cursor_paging(
    items: list[Any],
    base: str,
    path: str,
    params: Params,
    limit: int,
    cursors: JSON | None,
    next_params: Params | None,
) -> JSON:
    """A cursor paging object (``/me/following``, ``/me/player/recently-played``): ``href`` is the
    request, ``next`` the same with the cursor of the next page (``None``: no next page)."""
    href = f"{base}{path}?{query_string(params)}" if params else f"{base}{path}"
    return {
        "href": href,
        "limit": limit,
        "next": f"{base}{path}?{query_string(next_params)}" if next_params is not None else None,
        "cursors": cursors,
        "items": items,
    }
