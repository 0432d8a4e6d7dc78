"""A few ids of each kind a catalog serves, for people trying the emulator (``spotify-catalog emulator``
prints them after its URL, ``--samples`` as JSON) and for the documentation's examples.

The artists are the catalog's first (BTS) and the most popular ones; albums, tracks, episodes and
chapters belong to the samples of their owners; every show, episode, audiobook and chapter is
available in :data:`MARKET` (client-credentials apps see them only with ``--market``).
"""

from __future__ import annotations

from typing import Any, Final

from spotify_catalog.emulator.catalog import Catalog

MARKET: Final = "US"
KINDS: Final = ("artist", "album", "track", "playlist", "show", "episode", "audiobook", "chapter")

Sample = dict[str, str]


def samples(catalog: Catalog, per_kind: int = 3) -> dict[str, list[Sample]]:
    """``per_kind`` ids (with their names) of each of :data:`KINDS`, the same for the same catalog."""
    popular = [index for index in catalog.by_popularity() if index != 0]
    artists = [catalog.artist(index) for index in [0, *popular][:per_kind]]
    albums = [
        next((album for album in catalog.discography(a.index) if MARKET in album.markets), None)
        for a in artists
    ]
    albums_in = [album for album in albums if album is not None]
    tracks = [catalog.tracks_of(album.artist, album.number)[0] for album in albums_in]
    shows = [show for show in catalog.shows if MARKET in show.markets][:per_kind]
    books = [book for book in catalog.audiobooks if MARKET in book.markets][:per_kind]
    found: dict[str, list[Any]] = {
        "artist": artists,
        "album": albums_in,
        "track": tracks,
        "playlist": list(catalog.playlists[:per_kind]),
        "show": shows,
        "episode": [catalog.episodes_of(show.index)[0] for show in shows],
        "audiobook": books,
        "chapter": [catalog.chapters_of(book.index)[0] for book in books],
    }
    return {kind: [{"id": e.id, "name": e.name} for e in found[kind]] for kind in KINDS}


def describe(found: dict[str, list[Sample]]) -> list[str]:
    """:func:`samples` as lines for a terminal: a kind a line, its ids and names."""
    width = max(len(kind) for kind in found)
    lines = [f"ids it serves (shows, episodes, audiobooks, chapters: with --market {MARKET}):"]
    for kind, items in found.items():
        shown = ", ".join(f"{item['id']} ({item['name']})" for item in items)
        lines.append(f"  {kind:<{width}}  {shown}")
    return lines
