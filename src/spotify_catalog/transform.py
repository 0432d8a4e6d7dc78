"""Pure functions: Web API JSON -> rows for :mod:`spotify_catalog.storage.schema` (no I/O).

A row carries only the columns its object had (a Development-Mode artist has no ``popularity`` key,
so its row has no ``popularity`` column and the upsert leaves the stored value alone). ``gone_at`` is
cleared (set to ``None``) by an entity's own object and by its listing in its parent's list (an album on
a discography page, a track in its album's track list), not by a simplified copy inside other objects
(an album's artists, a track's album). Everything one
response yields is gathered in a :class:`Rows`, written by :func:`spotify_catalog.storage.write.write_rows`
in one transaction.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

JSON = Mapping[str, Any]

FULL = "full"
SIMPLIFIED = "simplified"


@dataclass
class Rows:
    """Rows to upsert per table, and child lists to replace (parent id -> its rows)."""

    upserts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    children: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.upserts.setdefault(table, []).append(row)

    def replace(self, table: str, parent_id: str, rows: list[dict[str, Any]]) -> None:
        self.children.setdefault(table, {})[parent_id] = rows

    def count(self) -> int:
        """How many rows this would write."""
        return sum(map(len, self.upserts.values())) + sum(
            len(rows) for parents in self.children.values() for rows in parents.values()
        )


def is_copy(row: Mapping[str, Any]) -> bool:
    """Whether ``row`` is a simplified copy of an entity inside another object (a track's album, an
    album's artists): such a row never clears ``gone_at``, its own object and its listings do."""
    return row.get("detail") == SIMPLIFIED and "gone_at" not in row and "id" in row


# ------------------------------------------------------------------------------------------ helpers


def normalize_name(name: str) -> str:
    """How names are compared: NFKC (full-width -> ASCII ...), case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def best_match(name: str, candidates: Iterable[JSON]) -> tuple[JSON | None, bool]:
    """The candidate whose name equals ``name`` (see :func:`normalize_name`), else the first one;
    and whether the match was exact."""
    items = [c for c in candidates if c]
    wanted = normalize_name(name)
    for item in items:
        if normalize_name(str(item.get("name") or "")) == wanted:
            return item, True
    return (items[0], False) if items else (None, False)


def _largest_image(images: Any) -> str | None:
    if not isinstance(images, list) or not images:
        return None
    best, area = None, -1
    for image in images:  # the first of the largest
        size = (image.get("width") or 0) * (image.get("height") or 0)
        if size > area:
            best, area = image, size
    url = best.get("url") if best else None
    return str(url) if url else None


def _common(obj: JSON, detail: str, fetched_at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {"id": obj["id"], "detail": detail, "raw": dict(obj), "fetched_at": fetched_at}
    if "name" in obj:
        row["name"] = obj["name"]
    if "uri" in obj:
        row["uri"] = obj["uri"]
    if "href" in obj:
        row["href"] = obj["href"]
    if "external_urls" in obj:
        row["spotify_url"] = (obj["external_urls"] or {}).get("spotify")
    if "images" in obj:
        row["image_url"] = _largest_image(obj["images"])
    if "restrictions" in obj:
        row["restriction"] = (obj["restrictions"] or {}).get("reason")
    return row


def _external_ids(obj: JSON, row: dict[str, Any], names: Iterable[str]) -> None:
    if "external_ids" in obj:
        ids = obj["external_ids"] or {}
        for name in names:
            row[name] = ids.get(name)


def _artist_links(
    rows: Rows, table: str, parent_column: str, parent_id: str, artists: Any, when: datetime
) -> None:
    links = []
    for position, artist in enumerate(a for a in artists or [] if a and a.get("id")):
        links.append({parent_column: parent_id, "position": position, "artist_id": artist["id"]})
        add_artist(rows, artist, SIMPLIFIED, when)
    rows.replace(table, parent_id, links)


# ------------------------------------------------------------------------------------------ objects


def add_artist(rows: Rows, artist: JSON, detail: str, fetched_at: datetime) -> None:
    """An artist (full from ``/artists``/search, simplified inside albums and tracks)."""
    row = _common(artist, detail, fetched_at)
    if detail == SIMPLIFIED:
        row.pop("image_url", None)
        rows.add("artists", row)
        return
    snapshot: dict[str, Any] = {}
    if "popularity" in artist:
        row["popularity"] = snapshot["popularity"] = artist["popularity"]
    if "followers" in artist:
        row["followers"] = snapshot["followers"] = (artist["followers"] or {}).get("total")
    row["gone_at"] = None  # its own object: not gone (any more)
    rows.add("artists", row)
    if "genres" in artist:
        genres = sorted({g for g in artist["genres"] or [] if g})
        rows.replace("artist_genres", artist["id"], [{"artist_id": artist["id"], "genre": g} for g in genres])
    if snapshot:
        rows.add(
            "artist_snapshots", {"artist_id": artist["id"], "snapshot_date": _day(fetched_at), **snapshot}
        )


def add_album(rows: Rows, album: JSON, detail: str, fetched_at: datetime, *, listed: bool = False) -> None:
    """An album: full (``/albums``, with its first page of tracks) or simplified (discography, tracks).

    ``album_group`` (which belongs to one artist's discography) is left out of ``raw``. A full album,
    or one ``listed`` on a discography page, is not gone.
    """
    raw = {k: v for k, v in album.items() if k != "album_group"}
    row = _common(raw, detail, fetched_at)
    for key in ("album_type", "total_tracks", "release_date", "release_date_precision", "available_markets"):
        if key in album:
            row[key] = album[key]
    if detail == FULL:
        for key in ("label", "popularity"):
            if key in album:
                row[key] = album[key]
        _external_ids(album, row, ("upc", "ean"))
        if "copyrights" in album:
            row["copyrights"] = [c.get("text") for c in album["copyrights"] or [] if c]
    if detail == FULL or listed:
        row["gone_at"] = None
    rows.add("albums", row)
    _artist_links(rows, "album_artists", "album_id", album["id"], album.get("artists"), fetched_at)
    if detail == FULL:
        page = album.get("tracks") or {}
        for track in page.get("items") or []:
            if track and track.get("id"):
                add_track(rows, track, SIMPLIFIED, fetched_at, album_id=album["id"])


def add_track(
    rows: Rows, track: JSON, detail: str, fetched_at: datetime, *, album_id: str | None = None
) -> None:
    """A track: full (``/tracks``, with its simplified album) or simplified (an album's track list, which
    gives ``album_id``). Either is not gone."""
    row = _common(track, detail, fetched_at)
    album = track.get("album")
    if album and album.get("id"):
        album_id = album["id"]
        add_album(rows, album, SIMPLIFIED, fetched_at)
    if album_id is not None:
        row["album_id"] = album_id
    for key in ("disc_number", "track_number", "duration_ms", "explicit", "is_local", "is_playable"):
        if key in track:
            row[key] = track[key]
    for key in ("preview_url", "available_markets", "popularity"):
        if key in track:
            row[key] = track[key]
    if "linked_from" in track:
        row["linked_from_id"] = (track["linked_from"] or {}).get("id")
    _external_ids(track, row, ("isrc", "ean", "upc"))
    row["gone_at"] = None
    rows.add("tracks", row)
    _artist_links(rows, "track_artists", "track_id", track["id"], track.get("artists"), fetched_at)
    if detail == FULL and "popularity" in track:
        rows.add(
            "track_snapshots",
            {"track_id": track["id"], "snapshot_date": _day(fetched_at), "popularity": track["popularity"]},
        )


def add_artist_albums_page(
    rows: Rows,
    artist_id: str,
    page: JSON,
    fetched_at: datetime,
    default_group: str | None = None,
    *,
    groups: Sequence[str] = (),
) -> None:
    """One page of ``/artists/{id}/albums`` (asked for ``groups``): simplified albums and the artist's
    discography links.

    Development Mode strips ``album_group``: then it is ``default_group`` (the one group asked for),
    else ``appears_on`` when the artist is not among the album's artists, else the ``album_type``;
    always one of ``groups`` (see :func:`album_group`).
    """
    for album in page.get("items") or []:
        if not album or not album.get("id"):
            continue
        add_album(rows, album, SIMPLIFIED, fetched_at, listed=True)
        rows.add(
            "artist_albums",
            {
                "artist_id": artist_id,
                "album_id": album["id"],
                "album_group": album_group(artist_id, album, default_group, groups),
            },
        )


def album_group(
    artist_id: str, album: JSON, default_group: str | None = None, groups: Sequence[str] = ()
) -> str | None:
    """The group of an album in an artist's discography (see :func:`add_artist_albums_page`).

    A guess outside ``groups`` (the groups the page was asked for; Spotify listed it under one of
    them) becomes the first of them that is the artist's own (not ``appears_on``), so that every link a
    discography listing writes is in its groups: a later listing replaces exactly those links."""
    if album.get("album_group"):
        return str(album["album_group"])
    if default_group:
        return default_group
    guess: str | None
    if artist_id not in {a.get("id") for a in album.get("artists") or [] if a}:
        guess = "appears_on"
    else:
        guess = str(album["album_type"]) if album.get("album_type") else None
    if groups and guess not in groups:
        own = [g for g in groups if g != "appears_on"]
        guess = own[0] if own else groups[0]
    return guess


def add_album_tracks_page(rows: Rows, album_id: str, page: JSON, fetched_at: datetime) -> None:
    """One page of ``/albums/{id}/tracks``."""
    for track in page.get("items") or []:
        if track and track.get("id"):
            add_track(rows, track, SIMPLIFIED, fetched_at, album_id=album_id)


def add_resolution(rows: Rows, query: str, candidates: list[JSON], fetched_at: datetime) -> str | None:
    """A name's search result: the chosen artist (complete, stored in full) and the alternatives.

    Returns the chosen artist id (``None``: nothing found).
    """
    items = [c for c in candidates if c and c.get("id")]
    chosen, exact = best_match(query, items)
    alternatives = []
    for item in items:
        alt = {"id": item["id"], "name": item.get("name")}
        for key in ("popularity", "followers"):
            if key in item:
                alt[key] = item[key]["total"] if key == "followers" and item[key] else item[key]
        alternatives.append(alt)
    if chosen is not None:
        add_artist(rows, chosen, FULL, fetched_at)
    rows.add(
        "artist_resolutions",
        {
            "input": query,
            "artist_id": chosen["id"] if chosen else None,
            "artist_name": chosen.get("name") if chosen else None,
            "exact": exact,
            "alternatives": alternatives,
            "resolved_at": fetched_at,
        },
    )
    return chosen["id"] if chosen else None


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


# ------------------------------------------------------------------------------------------ the rest
# top tracks, playlists, shows and episodes, audiobooks and chapters


def add_top_tracks(rows: Rows, artist_id: str, market: str, tracks: Any, fetched_at: datetime) -> list[str]:
    """``/artists/{id}/top-tracks``: the full tracks and the day's list; returns the tracks' ids."""
    ids: list[str] = []
    for track in tracks or []:
        if track and track.get("id"):
            add_track(rows, track, FULL, fetched_at)
            rows.add(
                "artist_top_tracks",
                {
                    "artist_id": artist_id,
                    "market": market,
                    "snapshot_date": _day(fetched_at),
                    "position": len(ids),
                    "track_id": track["id"],
                },
            )
            ids.append(track["id"])
    return ids


_SHOW_KEYS = (
    "publisher",
    "description",
    "explicit",
    "languages",
    "media_type",
    "total_episodes",
    "is_externally_hosted",
    "available_markets",
)
_EPISODE_KEYS = (
    "description",
    "release_date",
    "release_date_precision",
    "duration_ms",
    "language",
    "languages",
    "explicit",
    "is_externally_hosted",
    "is_playable",
)
_AUDIOBOOK_KEYS = (
    "publisher",
    "description",
    "edition",
    "explicit",
    "languages",
    "media_type",
    "total_chapters",
    "available_markets",
)
_CHAPTER_KEYS = (
    "chapter_number",
    "description",
    "release_date",
    "release_date_precision",
    "duration_ms",
    "explicit",
    "languages",
    "is_playable",
    "available_markets",
)


def _copy(obj: JSON, row: dict[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        if key in obj:
            row[key] = obj[key]


def _names(objects: Any) -> list[str]:
    return [str(o.get("name")) for o in objects or [] if o and o.get("name")]


def _timestamp(text: Any) -> datetime | None:
    """An ISO 8601 time as Spotify gives it (``2025-01-02T12:00:00Z``); ``None`` if missing or odd."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


parse_time = _timestamp
largest_image = _largest_image


def page_items(obj: JSON, key: str) -> JSON | None:
    """The page ``obj[key]`` when it carries items (a full album's ``tracks``, a full playlist's
    ``items``/``tracks``, a full show's ``episodes``), else ``None`` (Development Mode: a playlist's
    metadata only)."""
    page = obj.get(key)
    return page if isinstance(page, dict) and isinstance(page.get("items"), list) else None


def add_playlist(
    rows: Rows,
    playlist: JSON,
    fetched_at: datetime,
    *,
    items_snapshot_id: str | None = None,
    detail: str = FULL,
) -> None:
    """A playlist's metadata (``/playlists/{id}``, full; ``/me/playlists``, simplified);
    ``items_snapshot_id``: the snapshot whose items this response's unit stored (see
    :func:`add_playlist_items`)."""
    row = _common(playlist, detail, fetched_at)
    row.pop("restriction", None)
    if items_snapshot_id is not None:
        row["items_snapshot_id"] = items_snapshot_id
    _copy(playlist, row, ("description", "public", "collaborative", "snapshot_id"))
    if "owner" in playlist:
        owner = playlist["owner"] or {}
        row["owner_id"] = owner.get("id")
        row["owner_name"] = owner.get("display_name")
    if "followers" in playlist:
        row["followers"] = (playlist["followers"] or {}).get("total")
    page = playlist.get("items") if isinstance(playlist.get("items"), dict) else playlist.get("tracks")
    if isinstance(page, dict) and isinstance(page.get("total"), int):
        row["total_items"] = page["total"]
    row["gone_at"] = None
    rows.add("playlists", row)


def add_playlist_items(
    rows: Rows, playlist_id: str, pages: Sequence[JSON], fetched_at: datetime
) -> list[str]:
    """All of a playlist's items (its pages, from offset 0), replacing the stored ones, and the tracks
    and episodes in them (full). An item's position is its page's ``offset`` plus its index in the page.
    Local files and removed tracks (``null``) are kept as items with NULL ids. Returns the ids of the
    full tracks."""
    items: list[dict[str, Any]] = []
    tracks: list[str] = []
    for page in pages:
        start = int(page.get("offset") or 0)
        for index, entry in enumerate(page.get("items") or []):
            entry = entry or {}
            obj = entry_object(entry)
            obj = obj if isinstance(obj, dict) else None
            is_local = is_local_entry(entry)
            item: dict[str, Any] = {
                "playlist_id": playlist_id,
                "position": start + index,
                "item_type": obj.get("type") if obj else None,
                "track_id": None,
                "episode_id": None,
                "added_at": _timestamp(entry.get("added_at")),
                "added_by_id": (entry.get("added_by") or {}).get("id"),
                "is_local": is_local,
                "local_uri": obj.get("uri") if obj and is_local else None,
            }
            if obj and obj.get("id") and not is_local:
                if obj.get("type") == "episode":
                    item["episode_id"] = obj["id"]
                    add_episode(rows, obj, FULL, fetched_at)
                else:
                    item["track_id"] = obj["id"]
                    add_track(rows, obj, FULL, fetched_at)
                    tracks.append(obj["id"])
            items.append(item)
    rows.replace("playlist_items", playlist_id, items)
    return tracks


def entry_object(entry: JSON) -> Any:
    """The track or episode of a playlist item (``item``, or the older ``track``); ``None``: removed."""
    return entry.get("item") if "item" in entry else entry.get("track")


def is_local_entry(entry: JSON) -> bool:
    """Whether a playlist item is a local file (no Spotify id)."""
    obj = entry_object(entry)
    return bool(entry.get("is_local") or (obj.get("is_local") if isinstance(obj, dict) else False))


def add_show(rows: Rows, show: JSON, detail: str, fetched_at: datetime) -> None:
    """A show: full (``/shows/{id}``, with its first page of episodes) or simplified (an episode's)."""
    row = _common(show, detail, fetched_at)
    row.pop("restriction", None)
    _copy(show, row, _SHOW_KEYS)
    if "copyrights" in show:
        row["copyrights"] = [c.get("text") for c in show["copyrights"] or [] if c]
    if detail == FULL:
        row["gone_at"] = None
    rows.add("shows", row)
    if detail == FULL:
        page = page_items(show, "episodes")
        add_episodes_page(rows, show["id"], page or {}, fetched_at)


def add_episode(
    rows: Rows, episode: JSON, detail: str, fetched_at: datetime, *, show_id: str | None = None
) -> None:
    """An episode: simplified (a show's list, which gives ``show_id``) or full (with its show)."""
    _add_part(rows, "episodes", episode, detail, fetched_at, ("show", add_show, show_id), _EPISODE_KEYS)


def add_episodes_page(rows: Rows, show_id: str, page: JSON, fetched_at: datetime) -> None:
    """One page of ``/shows/{id}/episodes`` (or a full show's first page). A ``null`` in the place of an
    episode (Spotify sends them) stores nothing; the show's ``total_episodes`` still counts it."""
    for episode in _page_objects(page):
        add_episode(rows, episode, SIMPLIFIED, fetched_at, show_id=show_id)


def add_audiobook(rows: Rows, book: JSON, detail: str, fetched_at: datetime) -> None:
    """An audiobook: full (``/audiobooks``, with its first page of chapters) or simplified (a chapter's)."""
    row = _common(book, detail, fetched_at)
    row.pop("restriction", None)
    _copy(book, row, _AUDIOBOOK_KEYS)
    for key in ("authors", "narrators"):
        if key in book:
            row[key] = _names(book[key])
    if "copyrights" in book:
        row["copyrights"] = [c.get("text") for c in book["copyrights"] or [] if c]
    if detail == FULL:
        row["gone_at"] = None
    rows.add("audiobooks", row)
    if detail == FULL:
        add_chapters_page(rows, book["id"], page_items(book, "chapters") or {}, fetched_at)


def add_chapter(
    rows: Rows, chapter: JSON, detail: str, fetched_at: datetime, *, audiobook_id: str | None = None
) -> None:
    """A chapter: simplified (an audiobook's list, which gives ``audiobook_id``) or full."""
    _add_part(
        rows,
        "chapters",
        chapter,
        detail,
        fetched_at,
        ("audiobook", add_audiobook, audiobook_id),
        _CHAPTER_KEYS,
    )


def add_chapters_page(rows: Rows, audiobook_id: str, page: JSON, fetched_at: datetime) -> None:
    """One page of ``/audiobooks/{id}/chapters`` (or a full audiobook's first page)."""
    for chapter in _page_objects(page):
        add_chapter(rows, chapter, SIMPLIFIED, fetched_at, audiobook_id=audiobook_id)


def _add_part(
    rows: Rows,
    table: str,
    part: JSON,
    detail: str,
    fetched_at: datetime,
    parent: tuple[str, Callable[[Rows, JSON, str, datetime], None], str | None],
    keys: Iterable[str],
) -> None:
    """An episode or a chapter. ``parent``: the key of its show or audiobook, the function that adds
    one, and the parent's id when the part comes in its parent's list (a full part carries its parent,
    added as a simplified copy)."""
    key, add_parent, parent_id = parent
    row = _common(part, detail, fetched_at)
    embedded = part.get(key)
    if isinstance(embedded, dict) and embedded.get("id"):
        parent_id = embedded["id"]
        add_parent(rows, embedded, SIMPLIFIED, fetched_at)
    if parent_id is not None:
        row[f"{key}_id"] = parent_id
    _copy(part, row, keys)
    row["gone_at"] = None
    rows.add(table, row)


def _page_objects(page: JSON) -> list[JSON]:
    """The objects of a page that have an id (a ``null`` item stores nothing)."""
    return [item for item in page.get("items") or [] if item and item.get("id")]
