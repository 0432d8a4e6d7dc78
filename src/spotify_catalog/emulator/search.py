"""``GET /search`` semantics: query parsing, matching, ranking (exact name first, then popularity).

Artist search uses the catalog's word index and is exact. Album and track searches without an
``artist:`` filter scan discographies in artist-popularity order within a budget (``SCAN_ALBUMS`` /
``SCAN_TRACKS``), like a real index that returns the most relevant matches first; ``isrc:`` and
``upc:`` are direct look-ups.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from spotify_catalog.emulator.catalog import Catalog, normalize, tokens
from spotify_catalog.emulator.entities import Album, Artist, Audiobook, Episode, Playlist, Show, Track

TYPES = ("album", "artist", "playlist", "track", "show", "episode", "audiobook")
FILTERS = ("artist", "album", "track", "year", "genre", "isrc", "upc", "tag")
SCAN_ALBUMS = 30_000
SCAN_TRACKS = 40_000
_TERM = re.compile(r'(\w+):(?:"([^"]*)"|(\S+))|"([^"]*)"|(\S+)')

Result = Artist | Album | Track | Playlist | Show | Episode | Audiobook


@dataclass(frozen=True)
class Query:
    """A parsed ``q``: free text and field filters."""

    text: str = ""
    filters: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def words(self) -> list[str]:
        return tokens(self.text)


def parse_query(q: str) -> Query:
    text: list[str] = []
    filters: dict[str, str] = {}
    for m in _TERM.finditer(q):
        name, quoted, bare, phrase, word = m.groups()
        if name is not None and name.lower() in FILTERS:
            filters[name.lower()] = quoted if quoted is not None else bare
        elif name is not None:
            text.append(m.group(0))
        else:
            text.append(phrase if phrase is not None else word)
    return Query(" ".join(text), filters)


def _word_match(query_words: Sequence[str], name_words: Sequence[str], name: str) -> bool:
    for q in query_words:
        if not any(w.startswith(q) for w in name_words) and not (not q.isascii() and q in name):
            return False
    return True


def _year_range(value: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d{4})(?:-(\d{4}))?", value)
    if not m:
        return None
    low = int(m.group(1))
    return low, int(m.group(2) or low)


class Searcher:
    """Answers searches over one catalog; results of recent queries are cached."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.search = lru_cache(maxsize=512)(self._search)

    def _search(self, q: str, kind: str, market: str | None) -> tuple[Result, ...]:
        query = parse_query(q)
        method = getattr(self, f"_{kind}s")
        return tuple(method(query, market))

    # ---------------------------------------------------------------- artists
    def _artists(self, query: Query, market: str | None) -> list[Artist]:
        cat = self.catalog
        f = query.filters
        if any(k in f for k in ("album", "track", "isrc", "upc", "tag")):
            return []
        candidates: set[int] | None = None
        for words_ in (query.words, tokens(f.get("artist", ""))):
            if words_:
                hits = cat.match_artists(words_)
                candidates = hits if candidates is None else candidates & hits
        if candidates is None:
            if not f.get("genre"):
                return []
            candidates = set(range(cat.size))
        if genre := f.get("genre"):
            g = normalize(genre)
            candidates = {i for i in candidates if any(normalize(x) == g for x in cat.artist(i).genres)}
        exact = normalize(query.text or f.get("artist", ""))
        ranked = sorted(
            candidates,
            key=lambda i: (cat.normalized_name(i) != exact, -cat.artist(i).popularity, i),
        )
        return [cat.artist(i) for i in ranked]

    # ---------------------------------------------------------------- albums
    def _album_ok(self, album: Album, query: Query) -> bool:
        f = query.filters
        cat = self.catalog
        owner = cat.artist(album.artist)
        if "album" in f and not _word_match(tokens(f["album"]), tokens(album.name), normalize(album.name)):
            return False
        if "year" in f:
            years = _year_range(f["year"])
            if years is None or not years[0] <= album.year <= years[1]:
                return False
        if "genre" in f and normalize(f["genre"]) not in {normalize(g) for g in owner.genres}:
            return False
        tag = f.get("tag", "").lower()
        if tag == "new" and album.release_date < "2026-11-11":
            return False
        if tag == "hipster" and album.popularity > 10:
            return False
        if query.words:
            name_words = tokens(album.name) + list(cat.artist_words(album.artist))
            if not _word_match(query.words, name_words, normalize(album.name) + " " + normalize(owner.name)):
                return False
        return True

    def _candidate_artists(self, query: Query) -> tuple[list[int], bool]:
        """Artists whose discographies to look at, and whether the list is exhaustive."""
        cat = self.catalog
        if "artist" in query.filters:
            hits = cat.match_artists(tokens(query.filters["artist"]))
            return sorted(hits, key=lambda i: (-cat.artist(i).popularity, i)), True
        return cat.by_popularity(), False

    def _albums(self, query: Query, market: str | None) -> list[Album]:
        cat = self.catalog
        f = query.filters
        if "isrc" in f or "track" in f:
            return []
        if "upc" in f:
            album = cat.album_by_upc(f["upc"])
            return [album] if album is not None and self._album_ok(album, query) else []
        artists, _ = self._candidate_artists(query)
        artist_words = tokens(f.get("artist", ""))
        found: list[Album] = []
        scanned = 0
        for a in artists:
            if artist_words and not _word_match(artist_words, cat.artist_words(a), cat.normalized_name(a)):
                continue
            for album in cat.discography(a):
                scanned += 1
                if self._album_ok(album, query):
                    found.append(album)
            if scanned >= SCAN_ALBUMS:
                break
        exact = normalize(query.text or f.get("album", ""))
        found.sort(key=lambda al: (normalize(al.name) != exact, -al.popularity, al.artist, al.number))
        return found

    # ---------------------------------------------------------------- tracks
    def _track_albums(self, query: Query) -> Iterator[Album]:
        cat = self.catalog
        artists, exhaustive = self._candidate_artists(query)
        seen: set[tuple[int, int]] = set()
        for a in artists:
            albums: Iterable[Album] = cat.discography(a)
            if exhaustive:
                albums = [*albums, *cat.appears_on(a)]
            for album in albums:
                if (album.artist, album.number) not in seen:
                    seen.add((album.artist, album.number))
                    yield album

    def _tracks(self, query: Query, market: str | None) -> list[Track]:
        cat = self.catalog
        f = query.filters
        if "upc" in f or "tag" in f:
            return []
        album_query = Query("", {k: v for k, v in f.items() if k in ("album", "year", "genre")})
        if "isrc" in f:
            t = cat.track_by_isrc(f["isrc"])
            candidates: Iterable[Track] = []
            if t is not None and self._album_ok(cat.album_of(t), album_query):
                candidates = [t]
        else:
            candidates = self._scan_tracks(query, album_query)
        found = [t for t in candidates if self._track_ok(t, query)]  # albums checked above
        exact = normalize(query.text or f.get("track", ""))
        found.sort(
            key=lambda t: (normalize(t.name) != exact, -t.popularity, t.artist, t.album_number, t.number)
        )
        return found

    def _scan_tracks(self, query: Query, album_query: Query) -> Iterator[Track]:
        cat = self.catalog
        scanned = 0
        for album in self._track_albums(query):
            if not self._album_ok(album, album_query):
                continue
            yield from cat.tracks_of(album.artist, album.number)
            scanned += album.total_tracks
            if scanned >= SCAN_TRACKS:
                return

    def _track_ok(self, t: Track, query: Query) -> bool:
        cat = self.catalog
        f = query.filters
        if "track" in f and not _word_match(tokens(f["track"]), tokens(t.name), normalize(t.name)):
            return False
        if "artist" in f:
            words_ = tokens(f["artist"])
            if not any(_word_match(words_, cat.artist_words(a), cat.normalized_name(a)) for a in t.artists):
                return False
        if query.words:
            name_words = tokens(t.name) + [w for a in t.artists for w in cat.artist_words(a)]
            joined = " ".join([normalize(t.name), *(cat.normalized_name(a) for a in t.artists)])
            if not _word_match(query.words, name_words, joined):
                return False
        return True

    # ------------------------------------------------- playlists, shows, books
    def _plain(self, query: Query) -> bool:
        return bool(query.words) and not query.filters

    def _playlists(self, query: Query, market: str | None) -> list[Playlist]:
        if not self._plain(query):
            return []
        return [
            p for p in self.catalog.playlists if _word_match(query.words, tokens(p.name), normalize(p.name))
        ]

    def _shows(self, query: Query, market: str | None) -> list[Show]:
        if not self._plain(query) or market is None:
            return []
        return [
            s
            for s in self.catalog.shows
            if market in s.markets
            and _word_match(query.words, tokens(f"{s.name} {s.publisher}"), normalize(s.name))
        ]

    def _episodes(self, query: Query, market: str | None) -> list[Episode]:
        if not self._plain(query) or market is None:
            return []
        return [
            e
            for s in self.catalog.shows
            if market in s.markets
            for e in self.catalog.episodes_of(s.index)
            if _word_match(query.words, tokens(e.name), normalize(e.name))
        ]

    def _audiobooks(self, query: Query, market: str | None) -> list[Audiobook]:
        if not self._plain(query) or market is None:
            return []
        return [
            b
            for b in self.catalog.audiobooks
            if market in b.markets
            and _word_match(query.words, tokens(f"{b.name} {' '.join(b.authors)}"), normalize(b.name))
        ]
