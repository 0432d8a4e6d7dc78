"""The emulator's deterministic catalog, generated from ``(seed, artists)``.

Artists are generated eagerly (cheap: names, genres, popularity, followers). Each artist's
discography (albums, then the tracks of an album) is derived lazily from ``(seed, artist index)`` and
kept in small LRU caches, so a catalog of 20 000 artists starts fast and stays small. Ids encode the
entity they name (see :mod:`.ids`), so any id decodes back to its owner without a reverse index.

Cross-references are consistent both ways: guests of an album are drawn from the owner's *group*
(eight neighbouring artists), and an artist's ``appears_on`` albums are found by looking at the
discographies of its group, so if album X lists artist A on a track, A's ``appears_on`` contains X.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cached_property, lru_cache

from spotify_catalog.emulator import words
from spotify_catalog.emulator.entities import (
    Album,
    AlbumType,
    Artist,
    Audiobook,
    Chapter,
    Entity,
    Episode,
    Playlist,
    Show,
    Track,
)
from spotify_catalog.emulator.ids import Kind, decode_id, encode_id

GROUP_SIZE = 8
MAX_ARTISTS = 36**3  # the ISRC registrant field encodes the artist index
ALBUM_GROUPS = ("album", "single", "compilation", "appears_on")
BTS_ID = "3Nrfpe0tUJi4K4DXYWgMUX"
TODAY = (2026, 11, 25)
RELINK_SHARE = 200  # one track in this many is relinked, in some of its markets
RELINK_BIT = 0x8000  # set in a track id's position: the id of a relinked track's playable copy


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Case-folded text without diacritics, for matching."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=65536)
def _words(text: str) -> tuple[str, ...]:
    return tuple("".join(ch if ch.isalnum() else " " for ch in normalize(text)).split())


def tokens(text: str) -> list[str]:
    """Normalized words of a name."""
    return list(_words(text))


def _rng(seed: int, *parts: int) -> random.Random:
    digest = hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _hex(seed: int, *parts: object) -> str:
    return hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=12).hexdigest()


def _upc(a: int, b: int) -> str:
    digits = f"19{a:06d}{b:03d}"
    odd = sum(int(d) for d in digits[0::2])
    even = sum(int(d) for d in digits[1::2])
    return digits + str((10 - (odd * 3 + even) % 10) % 10)


def _base36(n: int, width: int) -> str:
    chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    for _ in range(width):
        n, r = divmod(n, 36)
        out = chars[r] + out
    return out


def _release(rng: random.Random, earliest: int = 1965) -> tuple[str, str, int]:
    year = min(TODAY[0], earliest + int((TODAY[0] - earliest + 1) * rng.random() ** 0.5))
    month = rng.randint(1, TODAY[1] - 1 if year == TODAY[0] else 12)
    day = rng.randint(1, 28)
    r = rng.random()
    if r < 0.12 or (year < 1985 and r < 0.5):
        return f"{year}", "year", year
    if r < 0.18:
        return f"{year}-{month:02d}", "month", year
    return f"{year}-{month:02d}-{day:02d}", "day", year


def _title(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(words.TITLE_WORDS) for _ in range(rng.randint(low, high)))


class Catalog:
    """Every entity of the emulated catalog; pure and deterministic given ``(seed, artists)``."""

    def __init__(self, seed: int = 42, artists: int = 2000) -> None:
        if not 3 <= artists <= MAX_ARTISTS:
            raise ValueError(f"artists must be between 3 and {MAX_ARTISTS}")
        self.seed = seed
        self.size = artists
        self._artists = self._make_artists()
        self._by_popularity = sorted(range(artists), key=lambda i: (-self._artists[i].popularity, i))
        self.discography = lru_cache(maxsize=4096)(self._make_discography)
        self.tracks_of = lru_cache(maxsize=4096)(self._make_tracks)
        self.appears_on = lru_cache(maxsize=2048)(self._make_appears_on)
        self.episodes_of = lru_cache(maxsize=512)(self._make_episodes)
        self.chapters_of = lru_cache(maxsize=512)(self._make_chapters)
        self.playlist_items = lru_cache(maxsize=512)(self._make_playlist_items)
        n_side = max(10, artists // 40)
        self.shows = [self._make_show(i) for i in range(n_side)]
        self.audiobooks = [self._make_audiobook(i) for i in range(n_side)]
        self.playlists = [self._make_playlist(i) for i in range(max(10, artists // 20))]
        self._name_tokens: list[tuple[str, ...]] = [tuple(tokens(a.name)) for a in self._artists]
        self._normalized_names = [normalize(a.name) for a in self._artists]
        postings: dict[str, list[int]] = {}
        for i, toks in enumerate(self._name_tokens):
            for t in set(toks):
                postings.setdefault(t, []).append(i)
        self._token_list = sorted(postings)
        self._postings = postings

    # ----------------------------------------------------------------- artists
    def _make_artists(self) -> list[Artist]:
        rng = _rng(self.seed, 0)
        out: list[Artist] = []
        fixed = [
            ("BTS", 92, 79_000_000, ("k-pop",)),
            ("BTS World", 45, 120_000, ("k-pop",)),
            ("BTSC", 31, 8_400, ("k-rap",)),
        ]
        for i in range(self.size):
            script = rng.choices(("latin", "hangul", "japanese"), weights=(6, 2, 2))[0]
            name = self._artist_name(rng, script)
            genres = tuple(sorted(set(rng.sample(words.GENRES_BY_SCRIPT[script], rng.randint(0, 3)))))
            popularity = int(100 * rng.random() ** 2.2)
            followers = int(10 ** (1 + popularity / 20 + rng.random() * 1.2))
            has_image = rng.random() < 0.92
            country = {"hangul": "KR", "japanese": "JP"}.get(script) or rng.choice(
                ("US", "GB", "DE", "FR", "ES", "SE", "BR")
            )
            if i < len(fixed):
                name, popularity, followers, genres = fixed[i]
                has_image, country = True, "KR"
            artist_id = BTS_ID if i == 0 else encode_id(self.seed, Kind.ARTIST, i)
            image = _hex(self.seed, "artist", i) if has_image else None
            out.append(Artist(i, artist_id, name, genres, popularity, followers, image, country))
        return out

    @staticmethod
    def _artist_name(rng: random.Random, script: str) -> str:
        if script == "hangul":
            if rng.random() < 0.5:
                return rng.choice(words.HANGUL_FAMILY) + "".join(
                    rng.choice(words.HANGUL_SYLLABLES) for _ in range(2)
                )
            return "".join(rng.choice(words.HANGUL_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if script == "japanese":
            if rng.random() < 0.25:
                return rng.choice(words.KANJI_FAMILY) + rng.choice(words.KANJI_GIVEN)
            return "".join(rng.choice(words.KANA_SYLLABLES) for _ in range(rng.randint(3, 5)))
        r = rng.random()
        first, last = rng.choice(words.LATIN_FIRST), rng.choice(words.LATIN_LAST)
        adjective, noun = rng.choice(words.BAND_ADJ), rng.choice(words.BAND_NOUN)
        if r < 0.35:
            return f"{first} {last}"
        if r < 0.45:
            return f"{first} {last} & The {noun}"
        if r < 0.65:
            return f"The {adjective} {noun}"
        if r < 0.75:
            return f"{adjective} {noun}"
        invented = "".join(rng.choice(words.LATIN_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        return invented if r < 0.9 else f"{invented} {noun}"

    def artist(self, index: int) -> Artist:
        return self._artists[index]

    def group(self, index: int) -> range:
        """The artists ``index`` can collaborate with (itself included)."""
        start = index // GROUP_SIZE * GROUP_SIZE
        return range(start, min(start + GROUP_SIZE, self.size))

    def match_artists(self, query_tokens: Sequence[str]) -> set[int]:
        """Artists whose name has a word starting with each of the query's words."""
        result: set[int] | None = None
        for q in query_tokens:
            hits: set[int] = set()
            pos = bisect.bisect_left(self._token_list, q)
            while pos < len(self._token_list) and self._token_list[pos].startswith(q):
                hits.update(self._postings[self._token_list[pos]])
                pos += 1
            if not q.isascii():
                hits.update(i for i, n in enumerate(self._normalized_names) if q in n)
            result = hits if result is None else result & hits
            if not result:
                return set()
        return result or set()

    def artist_words(self, index: int) -> tuple[str, ...]:
        """Normalized words of an artist's name."""
        return self._name_tokens[index]

    def normalized_name(self, index: int) -> str:
        return self._normalized_names[index]

    def by_popularity(self) -> list[int]:
        return self._by_popularity

    # ------------------------------------------------------------ discography
    def _album_count(self, rng: random.Random, a: int) -> int:
        if a == 0:
            return 120
        if a == 3:
            return 300
        r = rng.random()
        if r < 0.6:
            return rng.randint(1, 6)
        if r < 0.85:
            return rng.randint(7, 20)
        if r < 0.96:
            return rng.randint(21, 50)
        if r < 0.995:
            return rng.randint(51, 150)
        return rng.randint(151, 300)

    def _make_discography(self, a: int) -> tuple[Album, ...]:
        rng = _rng(self.seed, 1, a)
        count = self._album_count(rng, a)
        owner = self._artists[a]
        mates = [g for g in self.group(a) if g != a]
        albums = []
        for b in range(count):
            kind: AlbumType = rng.choices(("album", "single", "compilation"), weights=(35, 55, 10))[0]
            if kind == "single":
                total = rng.randint(1, 3)
                n_guests = 1 if rng.random() < 0.3 else 0
            elif kind == "album":
                total = rng.randint(8, 18) if rng.random() < 0.9 else rng.randint(19, 32)
                n_guests = rng.randint(1, 3) if rng.random() < 0.4 else 0
            else:
                total = rng.randint(15, 40) if rng.random() < 0.8 else rng.randint(51, 120)
                n_guests = rng.randint(2, 6)
            guests = tuple(rng.sample(mates, min(n_guests, len(mates), total)))
            date, precision, year = _release(rng)
            label_word = rng.choice(words.LABEL_WORDS)
            name = _title(rng, 1, 3)
            if kind == "compilation" and rng.random() < 0.5:
                name = f"The Best of {owner.name}"
            markets = words.MARKETS if rng.random() < 0.8 else tuple(rng.sample(words.MARKETS, 8))
            albums.append(
                Album(
                    artist=a,
                    number=b,
                    id=encode_id(self.seed, Kind.ALBUM, a, b),
                    name=name,
                    album_type=kind,
                    total_tracks=total,
                    release_date=date,
                    release_date_precision=precision,
                    year=year,
                    label=f"{owner.name.split()[-1]} {label_word}",
                    popularity=max(0, min(100, owner.popularity + rng.randint(-25, 10))),
                    upc=_upc(a, b),
                    markets=markets,
                    guests=guests,
                    image_key=_hex(self.seed, "album", a, b),
                )
            )
        return tuple(albums)

    def _make_tracks(self, a: int, b: int) -> tuple[Track, ...]:
        album = self.discography(a)[b]
        rng = _rng(self.seed, 2, a, b)
        owner = self._artists[a]
        disc_size = 30 if album.total_tracks > 50 else album.total_tracks
        tracks = []
        for c in range(album.total_tracks):
            featured = [g for k, g in enumerate(album.guests) if k % album.total_tracks == c]
            if album.guests and rng.random() < 0.1:
                featured.append(rng.choice(album.guests))
            artists = tuple(dict.fromkeys((a, *featured)))
            isrc = f"{owner.country}{_base36(a, 3)}{album.year % 100:02d}{b * 256 + c:05d}"
            tracks.append(
                Track(
                    artist=a,
                    album_number=b,
                    number=c,
                    id=encode_id(self.seed, Kind.TRACK, a, b, c),
                    name=album.name if album.album_type == "single" and c == 0 else _title(rng, 1, 4),
                    artists=artists,
                    duration_ms=rng.randint(95_000, 420_000),
                    explicit=rng.random() < 0.15,
                    isrc=isrc,
                    disc_number=c // disc_size + 1,
                    track_number=c % disc_size + 1,
                    popularity=max(0, min(100, album.popularity + rng.randint(-15, 15))),
                )
            )
        return tuple(tracks)

    def _make_appears_on(self, a: int) -> tuple[Album, ...]:
        found = [album for g in self.group(a) if g != a for album in self.discography(g) if a in album.guests]
        return tuple(sorted(found, key=lambda al: (al.release_date, al.id), reverse=True))

    def artist_albums(
        self, a: int, groups: Iterable[str] = ALBUM_GROUPS, market: str | None = None
    ) -> list[tuple[Album, str]]:
        """An artist's albums as ``GET /artists/{id}/albums`` lists them: by group, newest first
        (with a market: only the albums available there)."""
        wanted = set(groups)
        out: list[tuple[Album, str]] = []
        own = sorted(self.discography(a), key=lambda al: (al.release_date, al.id), reverse=True)
        for group in ("album", "single", "compilation"):
            if group in wanted:
                out.extend((al, group) for al in own if al.album_type == group)
        if "appears_on" in wanted:
            out.extend((al, "appears_on") for al in self.appears_on(a))
        if market is not None:
            out = [(al, g) for al, g in out if market in al.markets]
        return out

    # ------------------------------------------------------- shows, books, playlists
    def _make_show(self, s: int) -> Show:
        rng = _rng(self.seed, 3, s)
        kind = rng.choice(("Podcast", "Show", "Radio"))
        name = f"{rng.choice(words.SHOW_WORDS)} {rng.choice(words.SHOW_WORDS)} {kind}"
        markets = tuple(sorted(set(rng.sample(words.MARKETS, rng.randint(4, 20))) | {"US"}))
        if s % 7 == 6:
            markets = ("JP", "KR")  # a show unavailable in the US
        total = rng.randint(1, 30) if rng.random() < 0.7 else rng.randint(51, 160)
        return Show(
            index=s,
            id=encode_id(self.seed, Kind.SHOW, s),
            name=name,
            publisher=f"{rng.choice(words.LATIN_LAST)} Media",
            description=f"{name}: conversations about {rng.choice(words.SHOW_WORDS).lower()}.",
            languages=(rng.choice(words.LANGUAGES),),
            markets=markets,
            explicit=rng.random() < 0.2,
            total_episodes=total,
            image_key=_hex(self.seed, "show", s),
        )

    def _make_episodes(self, s: int) -> tuple[Episode, ...]:
        show = self.shows[s]
        rng = _rng(self.seed, 4, s)
        out = []
        for e in range(show.total_episodes):
            days_ago = e * 7 + rng.randint(0, 6)
            year, month, day = TODAY
            ordinal = _ordinal(year, month, day) - days_ago
            out.append(
                Episode(
                    show=s,
                    number=e,
                    id=encode_id(self.seed, Kind.EPISODE, s, e),
                    name=f"#{show.total_episodes - e}: {_title(rng, 1, 3)}",
                    description=f"Episode {show.total_episodes - e} of {show.name}.",
                    duration_ms=rng.randint(600_000, 5_400_000),
                    explicit=show.explicit and rng.random() < 0.5,
                    release_date=_from_ordinal(ordinal),
                    release_date_precision="day",
                    language=show.languages[0],
                )
            )
        return tuple(out)

    def _make_audiobook(self, k: int) -> Audiobook:
        rng = _rng(self.seed, 5, k)
        name = " ".join(rng.choice(words.BOOK_WORDS) for _ in range(rng.randint(2, 5)))
        author = f"{rng.choice(words.LATIN_FIRST)} {rng.choice(words.LATIN_LAST)}"
        narrator = f"{rng.choice(words.LATIN_FIRST)} {rng.choice(words.LATIN_LAST)}"
        markets = tuple(sorted(set(rng.sample(words.AUDIOBOOK_MARKETS, rng.randint(1, 6))) | {"US"}))
        total = rng.randint(3, 40) if rng.random() < 0.8 else rng.randint(51, 90)
        return Audiobook(
            index=k,
            id=encode_id(self.seed, Kind.AUDIOBOOK, k),
            name=name,
            authors=(author,),
            narrators=(narrator,),
            publisher=f"{rng.choice(words.LATIN_LAST)} Audio",
            description=f"{name} by {author}, read by {narrator}.",
            edition=rng.choice(("Unabridged", "Abridged")),
            languages=("en",),
            markets=markets,
            explicit=rng.random() < 0.1,
            total_chapters=total,
            image_key=_hex(self.seed, "audiobook", k),
        )

    def _make_chapters(self, k: int) -> tuple[Chapter, ...]:
        book = self.audiobooks[k]
        rng = _rng(self.seed, 6, k)
        date, _, _ = _release(rng, 2015)
        return tuple(
            Chapter(
                audiobook=k,
                number=n,
                id=encode_id(self.seed, Kind.CHAPTER, k, n),
                name=f"Chapter {n + 1}",
                description=f"Chapter {n + 1} of {book.name}.",
                duration_ms=rng.randint(300_000, 3_600_000),
                release_date=date if len(date) == 10 else f"{date[:4]}-01-01",
            )
            for n in range(book.total_chapters)
        )

    def _make_playlist(self, p: int) -> Playlist:
        rng = _rng(self.seed, 7, p)
        owner = rng.choice(("spotify-fan", "listener", "dj", "curator"))
        name = f"{_title(rng, 1, 2)} {rng.choice(('Mix', 'Vibes', 'Essentials', 'Hits', 'Radio'))}"
        return Playlist(
            index=p,
            id=encode_id(self.seed, Kind.PLAYLIST, p),
            name=name,
            description=f"The best of {name.lower()}.",
            owner_id=f"{owner}{p}",
            owner_name=f"{owner.title()} {p}",
            followers=rng.randint(0, 50_000),
            total_items=rng.randint(5, 150),
            image_key=_hex(self.seed, "playlist", p),
            snapshot_id=_hex(self.seed, "snapshot", p)[:32],
        )

    def _make_playlist_items(self, p: int) -> tuple[Track, ...]:
        rng = _rng(self.seed, 8, p)
        out = []
        for _ in range(self.playlists[p].total_items):
            a = rng.randrange(self.size)
            albums = self.discography(a)
            album = albums[rng.randrange(len(albums))]
            out.append(self.tracks_of(a, album.number)[rng.randrange(album.total_tracks)])
        return tuple(out)

    # ------------------------------------------------------------------ lookup
    def lookup(self, entity_id: str) -> Entity | None:
        """The entity an id names, or None."""
        if entity_id == BTS_ID:
            return self._artists[0]
        decoded = decode_id(self.seed, entity_id)
        if decoded is None:
            return None
        kind, a, b, c = decoded
        try:
            if kind is Kind.ARTIST:
                return self._artists[a] if 0 < a < self.size else None
            if kind is Kind.ALBUM:
                return self.discography(a)[b] if a < self.size else None
            if kind is Kind.TRACK:
                if a >= self.size or b >= len(self.discography(a)):
                    return None
                if c & RELINK_BIT:  # the playable copy of a relinked track
                    return replace(self.tracks_of(a, b)[c & ~RELINK_BIT], id=entity_id, relink=True)
                return self.tracks_of(a, b)[c]
            if kind is Kind.SHOW:
                return self.shows[a]
            if kind is Kind.EPISODE:
                return self.episodes_of(a)[b] if a < len(self.shows) else None
            if kind is Kind.AUDIOBOOK:
                return self.audiobooks[a]
            if kind is Kind.CHAPTER:
                return self.chapters_of(a)[b] if a < len(self.audiobooks) else None
            return self.playlists[a] if b == 0 else None  # b > 0: a test user's (emulator.users)
        except IndexError:
            return None

    def relinked_id(self, track: Track, market: str) -> str | None:
        """The id Spotify answers for ``track`` in ``market`` when it relinks it there (its ``linked_from``
        is then the requested track), else None. One track in :data:`RELINK_SHARE`, in a third of
        the markets it is sold in; the answered id names a copy of the track that is not relinked."""
        if track.relink or int(_hex(self.seed, "relink", track.id)[:8], 16) % RELINK_SHARE:
            return None
        if int(_hex(self.seed, "relink", track.id, market)[:8], 16) % 3:
            return None
        if market not in self.album_of(track).markets:
            return None
        return encode_id(self.seed, Kind.TRACK, track.artist, track.album_number, track.number | RELINK_BIT)

    def album_of(self, track: Track) -> Album:
        return self.discography(track.artist)[track.album_number]

    def track_by_isrc(self, isrc: str) -> Track | None:
        """The track an ISRC names (they encode artist, album and position)."""
        isrc = isrc.upper()
        try:
            a = int(isrc[2:5], 36)
            b, c = divmod(int(isrc[7:12]), 256)
        except ValueError:
            return None
        if len(isrc) != 12 or a >= self.size or b >= len(self.discography(a)):
            return None
        tracks = self.tracks_of(a, b)
        return tracks[c] if c < len(tracks) and tracks[c].isrc == isrc else None

    def album_by_upc(self, upc: str) -> Album | None:
        if len(upc) != 12 or not upc.isdigit() or not upc.startswith("19"):
            return None
        a, b = int(upc[2:8]), int(upc[8:11])
        if a >= self.size or b >= len(self.discography(a)):
            return None
        album = self.discography(a)[b]
        return album if album.upc == upc else None

    # ------------------------------------------------- the truth, for tests
    def artist_ids(self) -> list[str]:
        """Every artist id, in catalog order."""
        return [a.id for a in self._artists]

    def artist_names(self) -> list[str]:
        """Every artist name, in catalog order (names may repeat, as on Spotify)."""
        return [a.name for a in self._artists]

    def artist_by_id(self, artist_id: str) -> Artist | None:
        entity = self.lookup(artist_id)
        return entity if isinstance(entity, Artist) else None

    def artist_album_ids(
        self, artist_id: str, include_groups: Iterable[str] = ALBUM_GROUPS, market: str | None = None
    ) -> list[str]:
        """The album ids ``GET /artists/{id}/albums`` pages through, in its order."""
        artist = self.artist_by_id(artist_id)
        if artist is None:
            raise KeyError(artist_id)
        return [album.id for album, _ in self.artist_albums(artist.index, include_groups, market)]

    def album(self, album_id: str) -> Album | None:
        entity = self.lookup(album_id)
        return entity if isinstance(entity, Album) else None

    def album_track_ids(self, album_id: str) -> list[str]:
        album = self.album(album_id)
        if album is None:
            raise KeyError(album_id)
        return [t.id for t in self.tracks_of(album.artist, album.number)]

    def track(self, track_id: str) -> Track | None:
        entity = self.lookup(track_id)
        return entity if isinstance(entity, Track) else None

    @cached_property
    def new_releases(self) -> list[Album]:
        """What ``/browse/new-releases`` lists: the latest day-dated albums of the popular artists."""
        albums = [
            al
            for a in self.by_popularity()[:300]
            for al in self.discography(a)
            if al.album_type != "compilation" and al.release_date_precision == "day"
        ]
        return sorted(albums, key=lambda al: (al.release_date, al.id), reverse=True)[:100]


def _ordinal(year: int, month: int, day: int) -> int:
    import datetime as dt

    return dt.date(year, month, day).toordinal()


def _from_ordinal(ordinal: int) -> str:
    import datetime as dt

    return dt.date.fromordinal(ordinal).isoformat()
