"""What a crawl is asked for and what it reports: depth, options, progress, result."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import timedelta

from spotify_catalog import endpoints
from spotify_catalog.errors import UsageError
from spotify_catalog.inputs import ArtistInput

DEFAULT_GROUPS: tuple[str, ...] = ("album", "single", "compilation", "appears_on")
DEFAULT_REFRESH = timedelta(days=7)
ALBUM_TRACKS_PAGE = 50
SEARCH_LIMIT = 10
MODE_STATE_KEY = "api_mode"
OPTIONS_STATE_KEY = "crawl_options"  # what the last crawl was asked for, for ``status``
ACCOUNT_STATE_KEY = "account"  # the account whose ledger the last crawl counted its requests in
NOT_FOUND = "not found"
CLAIM_POLL = 0.1  # seconds between looks at tasks another crawl holds
ENTITY_TYPES = frozenset({"artist", "album", "track"})  # the kinds with batch endpoints
TOP_TRACKS_MARKET = "US"  # top tracks need a market: this one unless --market says otherwise
PLAYLIST_ITEMS_PAGE = 50  # /playlists/{id}/items pages after the full playlist's first 100 items
EPISODES_PAGE = 50  # /shows/{id}/episodes and /audiobooks/{id}/chapters pages
WITH_CHOICES = ("top-tracks",)


class Depth(enum.IntEnum):
    """How far a crawl goes."""

    ARTISTS = 1
    ALBUMS = 2
    TRACKS = 3
    TRACK_DETAILS = 4

    @classmethod
    def parse(cls, text: str) -> Depth:
        try:
            return cls[text.strip().upper().replace("-", "_")]
        except KeyError:
            choices = ", ".join(d.label for d in cls)
            raise UsageError(f"unknown depth {text!r} (choose from {choices})") from None

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class CrawlOptions:
    """What to crawl and how."""

    artists: tuple[ArtistInput, ...] = ()
    depth: Depth = Depth.TRACKS
    include_groups: tuple[str, ...] = DEFAULT_GROUPS
    market: str | None = None
    refresh_after: timedelta = DEFAULT_REFRESH
    workers: int = 1
    max_attempts: int = 3
    force: bool = False
    """Run even before the ``retry_at`` Spotify gave the last run."""
    top_tracks: bool = False
    """Each crawled artist's top tracks (``--with top-tracks``; Extended Quota Mode only)."""
    playlists: tuple[str, ...] = ()
    shows: tuple[str, ...] = ()
    audiobooks: tuple[str, ...] = ()
    me: str | None = None
    """The Spotify user id of the user whose own data to collect (``--me``; the client acts for them)."""

    def __post_init__(self) -> None:
        if not (self.artists or self.playlists or self.shows or self.audiobooks or self.me):
            raise UsageError(
                "nothing to crawl: give --artist, --artists-file, --playlist, --playlists-file, --show, "
                "--audiobook or --me"
            )
        if self.top_tracks and not self.artists:
            raise UsageError("--with top-tracks needs artists: give --artist or --artists-file")
        if (self.shows or self.audiobooks) and not self.market:
            what = "--show" if self.shows else "--audiobook"
            raise UsageError(f"{what} needs --market (Spotify shows them only in a market, e.g. --market US)")
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")
        for group in self.include_groups:
            if group not in endpoints.INCLUDE_GROUPS:
                choices = ", ".join(endpoints.INCLUDE_GROUPS)
                raise UsageError(f"unknown album group {group!r} (choose from {choices})")
        if not self.include_groups:
            raise UsageError("--include-groups names no group")

    def to_json(self) -> str:
        """What ``status`` needs to estimate the rest of this crawl."""
        return json.dumps(
            {
                "depth": self.depth.label,
                "include_groups": list(self.include_groups),
                "market": self.market,
                "artists": [{"value": a.value, "is_id": a.is_id} for a in self.artists],
                "top_tracks": self.top_tracks,
                "playlists": list(self.playlists),
                "shows": list(self.shows),
                "audiobooks": list(self.audiobooks),
                "me": self.me,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> CrawlOptions:
        """The options :meth:`to_json` saved (what it leaves out, and keys a saved text lacks, take
        their defaults: a crawl given no such option); :class:`ValueError` when ``text`` is not such
        options (another version's, or nothing to crawl in it)."""
        try:
            data = json.loads(text)
            depth = data.get("depth", Depth.TRACKS.label)
            groups = data.get("include_groups") or DEFAULT_GROUPS
            if isinstance(groups, str):
                groups = groups.split(",")
            return cls(
                artists=tuple(
                    ArtistInput(str(a["value"]), bool(a["is_id"])) for a in data.get("artists") or []
                ),
                depth=Depth(depth) if isinstance(depth, int) else Depth.parse(str(depth)),
                include_groups=tuple(str(g).strip() for g in groups if str(g).strip()),
                market=data.get("market"),
                top_tracks=bool(data.get("top_tracks")),
                playlists=tuple(str(x) for x in data.get("playlists") or ()),
                shows=tuple(str(x) for x in data.get("shows") or ()),
                audiobooks=tuple(str(x) for x in data.get("audiobooks") or ()),
                me=data.get("me") or None,
            )
        except (ValueError, TypeError, KeyError, AttributeError, UsageError) as exc:
            raise ValueError(f"not saved crawl options: {exc}") from None


@dataclass
class Progress:
    """Where a crawl is, for a progress display. ``event``: ``start`` (of a phase), ``update``,
    ``end`` (of a phase), ``finished``."""

    phase: str = "starting"
    event: str = "start"
    done: int = 0
    total: int = 0
    requests: int = 0
    requests_left: int | None = None
    rows_written: int = 0
    failed: int = 0


@dataclass
class CrawlResult:
    """How a crawl run ended."""

    run_id: int
    status: str
    requests: int
    rows_written: int
    failed: int = 0
    not_found: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    api_mode: str | None = None
    skipped: list[str] = field(default_factory=list)
    """What the API mode left out (``top-tracks`` in Development Mode with ``--mode auto``)."""


def top_tracks_market(market: str | None) -> str:
    return market or TOP_TRACKS_MARKET
