"""The emulator's test users (``--users alice,bob``): who each one is, what their library holds, and
what they listen to.

Everything is derived from ``(seed, name)`` and the catalog, so a user's library is the same in every
run and whatever the order of the names. The library: saved tracks, albums, shows and episodes,
followed artists, playlists of their own (one of them collaborative: the other test users collaborate
on it) and followed catalog playlists, top artists and tracks per time range (they change as the
emulator's clock passes days). The listening history: the emulator's clock time is cut into slots of
:data:`PLAY_SLOT` seconds; during waking hours (UTC) most slots hold one play, drawn from the user's
taste, so advancing the clock by two hours adds about thirty plays. Spotify keeps the last
:data:`KEPT_PLAYS` of them (``/me/player/recently-played``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from spotify_catalog.emulator.catalog import TODAY, Catalog
from spotify_catalog.emulator.entities import Album, Artist, Episode, Playlist, Show, Track
from spotify_catalog.emulator.ids import Kind, decode_id, encode_id

PLAY_SLOT = 240
"""Seconds: a play every four minutes at most."""
WAKING_HOURS = range(8, 23)
"""UTC hours in which a user listens."""
PLAY_PERCENT = 80
"""Share of the waking slots that hold a play."""
KEPT_PLAYS = 50
"""Spotify keeps the last 50 plays (``/me/player/recently-played``, spotify/web-api#764)."""
TIME_RANGES = ("short_term", "medium_term", "long_term")
RANGE_DAYS = {"short_term": 1, "medium_term": 7, "long_term": 30}
"""Every how many days (of the emulator's clock) a time range's top lists change."""
TOP_MAX = 50
COUNTRIES = ("US", "GB", "DE", "SE", "JP", "BR", "FR", "CA")
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_EPOCH = datetime(*TODAY, 12, 0, tzinfo=UTC)
"""The library's ``added_at`` dates count back from the catalog's day."""


def _digest(*parts: object, size: int = 8) -> int:
    data = ":".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=size).digest(), "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(_digest(*parts))


def _text(number: int, alphabet: str, length: int) -> str:
    out = []
    for _ in range(length):
        number, rest = divmod(number, len(alphabet))
        out.append(alphabet[rest])
    return "".join(out)


def iso(moment: datetime) -> str:
    """``2026-11-25T12:00:00Z``: Spotify's timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ms: int) -> str:
    """``2026-11-25T12:00:00.123Z``: a play's ``played_at``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class UserPlaylist(Playlist):
    """A playlist a test user owns: ``index`` is its place among the owner's playlists;
    ``collaborative``: the other test users collaborate on it (never public then)."""

    owner: str  # the owner's name
    public: bool
    collaborative: bool
    tracks: tuple[Track, ...] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Play:
    """One play of the listening history; ``context`` is what it was played from (``None``: a
    single track, e.g. from the saved tracks)."""

    played_at_ms: int
    track: Track
    context: Album | UserPlaylist | None

    @property
    def played_at(self) -> str:
        return iso_ms(self.played_at_ms)


@dataclass(frozen=True)
class Library:
    """What a user saved and follows; ``added_at`` as Spotify writes it, newest first."""

    saved_tracks: tuple[tuple[Track, str], ...]
    saved_albums: tuple[tuple[Album, str], ...]
    saved_shows: tuple[tuple[Show, str], ...]
    saved_episodes: tuple[tuple[Episode, str], ...]
    followed_artists: tuple[Artist, ...]
    own_playlists: tuple[UserPlaylist, ...]
    followed_playlists: tuple[Playlist, ...]


def _added(rng: random.Random, count: int) -> list[str]:
    """``count`` ``added_at`` timestamps, newest first, before the catalog's day."""
    moment, out = _EPOCH, []
    for _ in range(count):
        moment -= timedelta(seconds=rng.randint(600, 9 * 86_400))
        out.append(iso(moment))
    return out


def _unique(items: Sequence[Track] | Sequence[Album]) -> list[Track] | list[Album]:
    seen: set[str] = set()
    out: list[Track] | list[Album] = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            out.append(item)  # type: ignore[arg-type]
    return out


class EmulatedUser:
    """One test user: identity (Spotify user id, display name, country), library, listening history."""

    def __init__(self, catalog: Catalog, name: str) -> None:
        self.catalog = catalog
        self.name = name
        seed = catalog.seed
        self.key = _digest(seed, "user-key", name) % (1 << 24)
        """Names the user in the ids of their playlists."""
        self.id = "31" + _text(_digest(seed, "user-id", name, size=17), _BASE32, 26)
        self.account_id = _text(_digest(seed, "account-id", name, size=8), _BASE62, 10)
        self.display_name = name[:1].upper() + name[1:]
        self.country = COUNTRIES[_digest(seed, "country", name) % len(COUNTRIES)]
        self.email = f"{name.lower()}@example.com"
        self.followers = _digest(seed, "followers", name) % 40

    def __repr__(self) -> str:
        return f"EmulatedUser(name={self.name!r}, id={self.id!r})"

    # ------------------------------------------------------------------ library
    @cached_property
    def favourite_artists(self) -> tuple[int, ...]:
        rng = _rng(self.catalog.seed, "favourites", self.name)
        size = self.catalog.size
        return tuple(rng.sample(range(size), min(size, rng.randint(8, 20))))

    def _track_of(self, rng: random.Random, artist: int) -> Track:
        cat = self.catalog
        albums = cat.discography(artist)
        album = albums[rng.randrange(len(albums))]
        tracks = cat.tracks_of(artist, album.number)
        return tracks[rng.randrange(len(tracks))]

    @cached_property
    def library(self) -> Library:
        cat, seed, name = self.catalog, self.catalog.seed, self.name
        rng = _rng(seed, "library", name)
        favourites = self.favourite_artists
        tracks = _unique([self._track_of(rng, rng.choice(favourites)) for _ in range(rng.randint(25, 90))])
        albums = _unique(
            [
                albums[rng.randrange(len(albums))]
                for albums in (cat.discography(rng.choice(favourites)) for _ in range(rng.randint(5, 25)))
            ]
        )
        shows = [s for s in cat.shows if self.country in s.markets]
        saved_shows = rng.sample(shows, min(len(shows), rng.randint(1, 4)))
        episodes = [e for s in saved_shows for e in cat.episodes_of(s.index)[:3]]
        saved_episodes = rng.sample(episodes, min(len(episodes), rng.randint(0, 8)))
        others = rng.sample(range(cat.size), min(cat.size, rng.randint(0, 10)))
        followed = [cat.artist(a) for a in dict.fromkeys([*favourites, *others])]
        followed_playlists = rng.sample(cat.playlists, min(len(cat.playlists), rng.randint(2, 6)))
        return Library(
            saved_tracks=tuple(zip(tracks, _added(rng, len(tracks)), strict=True)),  # type: ignore[arg-type]
            saved_albums=tuple(zip(albums, _added(rng, len(albums)), strict=True)),  # type: ignore[arg-type]
            saved_shows=tuple(zip(saved_shows, _added(rng, len(saved_shows)), strict=True)),
            saved_episodes=tuple(zip(saved_episodes, _added(rng, len(saved_episodes)), strict=True)),
            followed_artists=tuple(followed),
            own_playlists=self._own_playlists(rng, tracks),  # type: ignore[arg-type]
            followed_playlists=tuple(followed_playlists),
        )

    def _own_playlists(self, rng: random.Random, saved: list[Track]) -> tuple[UserPlaylist, ...]:
        seed = self.catalog.seed
        out = []
        count = rng.randint(2, 5)
        for number in range(count):
            collaborative = number == count - 1  # the last one; collaborative playlists are never public
            size = rng.randint(5, 60)
            tracks = tuple(
                saved[rng.randrange(len(saved))]
                if saved and rng.random() < 0.6
                else self._track_of(rng, rng.randrange(self.catalog.size))
                for _ in range(size)
            )
            title = rng.choice(("Road Trip", "Focus", "Late Night", "Sunday", "Gym", "Favourites", "Party"))
            out.append(
                UserPlaylist(
                    index=number,
                    id=encode_id(seed, Kind.PLAYLIST, self.key, number + 1),
                    name=f"{self.display_name}'s {title}" + (" (shared)" if collaborative else ""),
                    description="" if number % 2 else f"{title} songs",
                    owner_id=self.id,
                    owner_name=self.display_name,
                    followers=0 if collaborative else rng.randint(0, 12),
                    total_items=len(tracks),
                    image_key=_text(
                        _digest(seed, "cover", self.name, number, size=12), "0123456789abcdef", 24
                    ),
                    snapshot_id=_text(_digest(seed, "snapshot", self.name, number, size=24), _BASE62, 32),
                    owner=self.name,
                    public=not collaborative and number % 3 != 1,
                    collaborative=collaborative,
                    tracks=tracks,
                )
            )
        return tuple(out)

    # ------------------------------------------------------------------ top items
    def _period(self, time_range: str, now: float) -> int:
        return int(now // 86_400) // RANGE_DAYS[time_range]

    def top_artists(self, time_range: str, now: float) -> list[Artist]:
        """The top artists of a time range as of ``now`` (emulator-clock seconds)."""
        pool = list(self.library.followed_artists)
        rng = _rng(self.catalog.seed, "top-artists", self.name, time_range, self._period(time_range, now))
        rng.shuffle(pool)
        return pool[:TOP_MAX]

    def top_tracks(self, time_range: str, now: float) -> list[Track]:
        """The top tracks of a time range as of ``now``."""
        pool = [t for t, _ in self.library.saved_tracks]
        rng = _rng(self.catalog.seed, "top-tracks", self.name, time_range, self._period(time_range, now))
        rng.shuffle(pool)
        return pool[:TOP_MAX]

    # ------------------------------------------------------------------ plays
    @cached_property
    def _taste(self) -> tuple[Track, ...]:
        library = self.library
        own = [t for p in library.own_playlists for t in p.tracks]
        return tuple(_unique([*(t for t, _ in library.saved_tracks), *own]))  # type: ignore[arg-type]

    def play_in(self, slot: int) -> Play | None:
        """The play of a slot (``slot * PLAY_SLOT`` seconds since the epoch), if the user listened then."""
        start = slot * PLAY_SLOT
        if (start // 3600) % 24 not in WAKING_HOURS:
            return None
        dice = _digest(self.catalog.seed, "play", self.name, slot)
        if dice % 100 >= PLAY_PERCENT:
            return None
        dice //= 100
        played_at_ms = start * 1000 + 1000 + dice % ((PLAY_SLOT - 2) * 1000)
        dice //= PLAY_SLOT * 1000
        taste = self._taste
        track = taste[dice % len(taste)]
        dice //= len(taste)
        context: Album | UserPlaylist | None = None
        if dice % 3 == 1:
            context = self.catalog.album_of(track)
        elif dice % 3 == 2:
            playlists = self.library.own_playlists
            context = playlists[(dice // 3) % len(playlists)]
        return Play(played_at_ms, track, context)

    def plays(self, start: float, end: float) -> list[Play]:
        """The plays with ``start < played_at <= end`` (emulator-clock seconds), oldest first: the
        truth a collector of the history is checked against."""
        out = []
        for slot in range(int(start // PLAY_SLOT), int(end // PLAY_SLOT) + 1):
            play = self.play_in(slot)
            if play is not None and start * 1000 < play.played_at_ms <= end * 1000:
                out.append(play)
        return out

    def recent_plays(self, now: float) -> list[Play]:
        """The last :data:`KEPT_PLAYS` plays at ``now``, newest first (what Spotify keeps)."""
        return list(self._back_from(now))

    def _back_from(self, now: float) -> Iterator[Play]:
        slot, found, limit_ms = int(now // PLAY_SLOT), 0, now * 1000
        while found < KEPT_PLAYS:
            play = self.play_in(slot)
            if play is not None and play.played_at_ms <= limit_ms:
                found += 1
                yield play
            slot -= 1


class Users:
    """The configured test users of one emulator, by name and by Spotify user id."""

    def __init__(self, catalog: Catalog, names: Sequence[str]) -> None:
        self.catalog = catalog
        self.names = tuple(names)
        self._by_name = {name: EmulatedUser(catalog, name) for name in names}
        self._by_id = {user.id: user for user in self._by_name.values()}
        self._by_key = {user.key: user for user in self._by_name.values()}

    def get(self, name: str) -> EmulatedUser | None:
        return self._by_name.get(name)

    def by_id(self, user_id: str) -> EmulatedUser | None:
        return self._by_id.get(user_id)

    def __iter__(self) -> Iterator[EmulatedUser]:
        return iter(self._by_name.values())

    def playlist(self, playlist_id: str) -> UserPlaylist | None:
        """The test user's playlist an id names, if any."""
        decoded = decode_id(self.catalog.seed, playlist_id)
        if decoded is None or decoded[0] is not Kind.PLAYLIST or decoded[2] == 0:
            return None
        user = self._by_key.get(decoded[1])
        own = user.library.own_playlists if user is not None else ()
        return own[decoded[2] - 1] if decoded[2] - 1 < len(own) else None

    def collaborators(self, playlist: UserPlaylist) -> list[EmulatedUser]:
        """Who collaborates on a collaborative playlist: every other test user."""
        if not playlist.collaborative:
            return []
        return [user for user in self if user.name != playlist.owner]

    def may_read_items(self, user: EmulatedUser, playlist: Playlist) -> bool:
        """Whether ``user`` owns or collaborates on ``playlist`` (Development Mode answers its items
        only then)."""
        if not isinstance(playlist, UserPlaylist):
            return False
        return playlist.owner == user.name or (playlist.collaborative and user.name in self._by_name)

    def playlists_of(self, user: EmulatedUser) -> list[Playlist]:
        """``/me/playlists``: their own, the collaborative ones of the others, the followed ones."""
        shared = [
            p
            for other in self
            if other.name != user.name
            for p in other.library.own_playlists
            if p.collaborative
        ]
        library = user.library
        return [*library.own_playlists, *shared, *library.followed_playlists]
