"""The quota buckets: the default grouping of the Web API's routes, shared by the collector's ledger
(:mod:`spotify_catalog.ledger`) and the emulator, which counts its quota in the same buckets.

Spotify groups endpoints into quota buckets and publishes neither the buckets nor their sizes
(docs/operations.md, "Accounts and the ledger", explains this grouping). A module of its own, without
dependencies, so that the emulator imports it without the ledger's database machinery.
"""

from __future__ import annotations

from collections.abc import Mapping

BUCKETS: Mapping[str, str] = {
    "/search": "search",
    "/artists": "artists",
    "/artists/{id}": "artists",
    "/artists/{id}/related-artists": "artists",
    "/artists/{id}/albums": "artist-albums",
    "/artists/{id}/top-tracks": "artist-top-tracks",
    "/albums": "albums",
    "/albums/{id}": "albums",
    "/albums/{id}/tracks": "albums",
    "/browse/new-releases": "albums",
    "/tracks": "tracks",
    "/tracks/{id}": "tracks",
    "/audio-features": "tracks",
    "/audio-features/{id}": "tracks",
    "/audio-analysis/{id}": "tracks",
    "/shows": "shows",
    "/shows/{id}": "shows",
    "/shows/{id}/episodes": "shows",
    "/episodes": "shows",
    "/episodes/{id}": "shows",
    "/audiobooks": "audiobooks",
    "/audiobooks/{id}": "audiobooks",
    "/audiobooks/{id}/chapters": "audiobooks",
    "/chapters": "audiobooks",
    "/chapters/{id}": "audiobooks",
    "/playlists/{id}": "playlists",
    "/playlists/{id}/items": "playlists",
    "/playlists/{id}/tracks": "playlists",
    "/users/{id}/playlists": "playlists",
    "/me/playlists": "playlists",
    "/browse/featured-playlists": "playlists",
    "/browse/categories/{id}/playlists": "playlists",
    "/users/{id}": "users",
    "/me": "users",
    "/me/tracks": "library",
    "/me/albums": "library",
    "/me/shows": "library",
    "/me/episodes": "library",
    "/me/following": "library",
    "/me/top/{type}": "top",
    "/me/player/recently-played": "player",
    "/browse/categories": "browse",
    "/browse/categories/{id}": "browse",
    "/markets": "browse",
    "/recommendations": "browse",
}
"""The default grouping of the Web API's routes into quota buckets (Spotify publishes neither its
buckets nor their sizes; docs/operations.md explains this choice). A route not listed is in
:data:`OTHER`."""
OTHER = "other"

# path segments followed by an id (at the start of a path, or after /browse)
_COLLECTIONS = frozenset(
    {
        "artists",
        "albums",
        "tracks",
        "shows",
        "episodes",
        "audiobooks",
        "chapters",
        "playlists",
        "users",
        "categories",
        "audio-features",
        "audio-analysis",
    }
)


def route(path: str) -> str:
    """The route template of a Web API path: ``/artists/0TnOYISbd1XYRBk9myaseg/albums?limit=10`` ->
    ``/artists/{id}/albums``, ``/me/top/artists`` -> ``/me/top/{type}`` (a leading ``/v1`` is left
    out)."""
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    if parts[:1] == ["v1"]:
        parts = parts[1:]
    template: list[str] = []
    for part in parts:
        after_collection = bool(template) and template[-1] in _COLLECTIONS
        if after_collection and (len(template) == 1 or template[-2] == "browse"):
            template.append("{id}")
        elif template == ["me", "top"]:
            template.append("{type}")
        else:
            template.append(part)
    return "/" + "/".join(template)


def bucket_of(path: str) -> str:
    """The quota bucket of a Web API path (:data:`BUCKETS`)."""
    return BUCKETS.get(route(path), OTHER)


NAMES: tuple[str, ...] = (*dict.fromkeys(BUCKETS.values()), OTHER)
"""Every bucket's name, in the order of :data:`BUCKETS`, :data:`OTHER` last."""
