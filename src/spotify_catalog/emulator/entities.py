"""The entities of the emulated catalog, as the generator (:mod:`.catalog`) makes them: plain frozen
records that the renderers (:mod:`.render`) turn into Web API JSON. Artists, shows, audiobooks and
playlists are numbered by ``index``; albums and tracks by their owner and position, episodes and
chapters by their show or book and position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AlbumType = Literal["album", "single", "compilation"]


@dataclass(frozen=True, slots=True)
class Artist:
    index: int
    id: str
    name: str
    genres: tuple[str, ...]
    popularity: int
    followers: int
    image_key: str | None  # None: the artist has no images
    country: str  # for ISRCs


@dataclass(frozen=True, slots=True)
class Album:
    artist: int  # index of the owning (album) artist
    number: int  # position in the owner's discography
    id: str
    name: str
    album_type: AlbumType
    total_tracks: int
    release_date: str
    release_date_precision: str
    year: int
    label: str
    popularity: int
    upc: str
    markets: tuple[str, ...]
    guests: tuple[int, ...]  # artists featured on its tracks: the album is in their appears_on
    image_key: str


@dataclass(frozen=True, slots=True)
class Track:
    artist: int  # album owner
    album_number: int
    number: int  # 0-based position in the album
    id: str
    name: str
    artists: tuple[int, ...]  # first the album owner, then featured artists
    duration_ms: int
    explicit: bool
    isrc: str
    disc_number: int
    track_number: int
    popularity: int
    relink: bool = False  # the market copy a relinked track's id points at (see Catalog.relinked_id)


@dataclass(frozen=True, slots=True)
class Show:
    index: int
    id: str
    name: str
    publisher: str
    description: str
    languages: tuple[str, ...]
    markets: tuple[str, ...]
    explicit: bool
    total_episodes: int
    image_key: str


@dataclass(frozen=True, slots=True)
class Episode:
    show: int
    number: int  # 0 = newest
    id: str
    name: str
    description: str
    duration_ms: int
    explicit: bool
    release_date: str
    release_date_precision: str
    language: str


@dataclass(frozen=True, slots=True)
class Audiobook:
    index: int
    id: str
    name: str
    authors: tuple[str, ...]
    narrators: tuple[str, ...]
    publisher: str
    description: str
    edition: str
    languages: tuple[str, ...]
    markets: tuple[str, ...]
    explicit: bool
    total_chapters: int
    image_key: str


@dataclass(frozen=True, slots=True)
class Chapter:
    audiobook: int
    number: int
    id: str
    name: str
    description: str
    duration_ms: int
    release_date: str


@dataclass(frozen=True, slots=True)
class Playlist:
    index: int
    id: str
    name: str
    description: str
    owner_id: str
    owner_name: str
    followers: int
    total_items: int
    image_key: str
    snapshot_id: str

    @property
    def uploaded_cover(self) -> bool:
        """A cover its owner uploaded: one image, ``height``/``width`` ``null`` (one in four)."""
        return self.index % 4 == 1

    @property
    def null_in_search(self) -> bool:
        """Search answers ``null`` in its place (one in five), as Spotify does for some playlists."""
        return self.index % 5 == 2


Entity = Artist | Album | Track | Show | Episode | Audiobook | Chapter | Playlist
