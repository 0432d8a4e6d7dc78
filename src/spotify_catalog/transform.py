"""Pure functions: Web API JSON -> rows for :mod:`spotify_catalog.storage.schema` (no I/O).

A row carries only the columns its object had (a Development-Mode artist has no ``popularity`` key,
so its row has no ``popularity`` column and the upsert leaves the stored value alone). ``gone_at`` is
cleared (set to ``None``) by an entity's own object and by its listing in its parent's list (an album on
a discography page, a track in its album's track list), not by a simplified copy inside other objects
(an album's artists, a track's album). Everything one
response yields is gathered in a :class:`Rows`, written by :func:`spotify_catalog.storage.db.write_rows`
in one transaction.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
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
    best = max(images, key=lambda i: (i.get("width") or 0) * (i.get("height") or 0))
    url = best.get("url")
    return str(url) if url else None


def _common(obj: JSON, detail: str, fetched_at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": obj["id"],
        "detail": detail,
        "raw": dict(obj),
        "fetched_at": fetched_at,
    }
    for column, key in (("name", "name"), ("uri", "uri"), ("href", "href")):
        if key in obj:
            row[column] = obj[key]
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
