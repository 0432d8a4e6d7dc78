"""Pure functions: the answers of a user's own routes (``/me``, ``/me/...``) -> rows for the tables of
a user's data in :mod:`spotify_catalog.storage.schema` (no I/O). The tracks, albums, artists, shows,
episodes and playlists they carry become catalog rows through :mod:`spotify_catalog.transform`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from spotify_catalog import transform
from spotify_catalog.transform import FULL, JSON, SIMPLIFIED, Rows

SAVED = {
    # part -> (the table, its item column, the key of the object in an entry)
    "saved_tracks": ("saved_tracks", "track_id", "track"),
    "saved_albums": ("saved_albums", "album_id", "album"),
    "saved_shows": ("saved_shows", "show_id", "show"),
    "saved_episodes": ("saved_episodes", "episode_id", "episode"),
}
"""The saved lists: ``/me/tracks``, ``/me/albums``, ``/me/shows``, ``/me/episodes``."""


def add_profile(rows: Rows, profile: JSON, fetched_at: datetime) -> None:
    """``GET /me``: the user's row (what the mode and the scopes let Spotify say)."""
    row: dict[str, Any] = {"id": profile["id"], "raw": dict(profile), "fetched_at": fetched_at}
    for key in ("display_name", "country", "product", "uri", "href"):
        if key in profile:
            row[key] = profile[key]
    if "external_urls" in profile:
        row["spotify_url"] = (profile["external_urls"] or {}).get("spotify")
    if "followers" in profile:
        row["followers"] = (profile["followers"] or {}).get("total")
    if "images" in profile:
        row["image_url"] = transform.largest_image(profile["images"])
    rows.add("users", row)


def saved_entries(part: str, pages: Sequence[JSON]) -> list[tuple[JSON, datetime | None]]:
    """The objects of a saved list's pages with their ``added_at``."""
    key = SAVED[part][2]
    out: list[tuple[JSON, datetime | None]] = []
    for page in pages:
        for entry in page.get("items") or []:
            obj = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(obj, dict) and obj.get("id"):
                out.append((obj, transform.parse_time(entry.get("added_at"))))
    return out


def _add_saved_object(rows: Rows, part: str, obj: JSON, when: datetime) -> None:
    if part == "saved_tracks":
        transform.add_track(rows, obj, FULL, when)
    elif part == "saved_albums":
        transform.add_album(rows, obj, FULL, when)
    elif part == "saved_shows":
        transform.add_show(rows, obj, SIMPLIFIED, when)
    else:
        transform.add_episode(rows, obj, FULL, when)


def add_saved(
    rows: Rows,
    user_id: str,
    part: str,
    entries: Sequence[tuple[JSON, datetime | None]],
    kept: Mapping[str, datetime | None],
    when: datetime,
) -> None:
    """A user's saved list, replaced whole: the ``entries`` fetched (their objects stored as catalog
    rows) and the stored items ``kept`` (item id -> ``added_at``) that the answer showed unchanged."""
    table, column, _key = SAVED[part]
    listed: dict[str, datetime | None] = dict(kept)
    for obj, added_at in entries:
        _add_saved_object(rows, part, obj, when)
        listed[obj["id"]] = added_at
    rows.replace(
        table,
        user_id,
        [
            {"user_id": user_id, column: item, "added_at": added, "fetched_at": when}
            for item, added in listed.items()
        ],
    )


def add_followed(rows: Rows, user_id: str, pages: Sequence[JSON], when: datetime) -> list[str]:
    """``/me/following?type=artist`` (every page): full artists and the user's list; their ids."""
    ids: list[str] = []
    for page in pages:
        for artist in (page.get("artists") or {}).get("items") or []:
            if artist and artist.get("id") and artist["id"] not in ids:
                transform.add_artist(rows, artist, FULL, when)
                ids.append(artist["id"])
    rows.replace(
        "followed_artists", user_id, [{"user_id": user_id, "artist_id": a, "fetched_at": when} for a in ids]
    )
    return ids


def add_user_playlists(rows: Rows, user_id: str, pages: Sequence[JSON], when: datetime) -> list[JSON]:
    """``/me/playlists`` (every page): each playlist's metadata (simplified) and the user's list; the
    playlists in the list's order."""
    playlists: list[JSON] = []
    links: list[dict[str, Any]] = []
    for page in pages:
        for playlist in page.get("items") or []:
            if not (playlist and playlist.get("id")) or any(p["id"] == playlist["id"] for p in playlists):
                continue
            transform.add_playlist(rows, playlist, when, detail=SIMPLIFIED)
            links.append(
                {
                    "user_id": user_id,
                    "playlist_id": playlist["id"],
                    "position": len(links),
                    "owned": (playlist.get("owner") or {}).get("id") == user_id,
                    "collaborative": playlist.get("collaborative"),
                    "fetched_at": when,
                }
            )
            playlists.append(playlist)
    rows.replace("user_playlists", user_id, links)
    return playlists


def add_top(
    rows: Rows, user_id: str, item_type: str, time_range: str, day: date, page: JSON, when: datetime
) -> list[str]:
    """``/me/top/{type}``: full artists or tracks and the day's list; the items' ids."""
    ids: list[str] = []
    for item in page.get("items") or []:
        if not (item and item.get("id")):
            continue
        if item_type == "artist":
            transform.add_artist(rows, item, FULL, when)
        else:
            transform.add_track(rows, item, FULL, when)
        rows.add(
            "top_items",
            {
                "user_id": user_id,
                "item_type": item_type,
                "time_range": time_range,
                "snapshot_date": day,
                "position": len(ids),
                "item_id": item["id"],
                "fetched_at": when,
            },
        )
        ids.append(item["id"])
    return ids


def add_plays(rows: Rows, user_id: str, items: Sequence[JSON], after: datetime | None, when: datetime) -> int:
    """The plays of a ``/me/player/recently-played`` answer played after ``after`` (the newest one
    stored; ``None``: all), appended with their tracks (full); how many."""
    added = 0
    for item in items:
        played_at = transform.parse_time(item.get("played_at"))
        track = item.get("track")
        if played_at is None or not isinstance(track, dict) or not track.get("id"):
            continue
        if after is not None and played_at <= after:
            continue
        transform.add_track(rows, track, FULL, when)
        context: JSON = item["context"] if isinstance(item.get("context"), dict) else {}
        rows.add(
            "plays",
            {
                "user_id": user_id,
                "played_at": played_at,
                "track_id": track["id"],
                "context_type": context.get("type"),
                "context_uri": context.get("uri"),
                "fetched_at": when,
            },
        )
        added += 1
    return added
