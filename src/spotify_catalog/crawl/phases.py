"""The order of a crawl's phases: what each one queues, from what the phases before it found (see
:mod:`spotify_catalog.crawl`). The run (:mod:`~spotify_catalog.crawl.run`) gives the phases two
functions: ``queue`` puts a phase's tasks in the database, ``drain`` does the pending tasks of some
kinds (and those they add) on its pool of workers.

What the phases learn on the way that the run's work units need (the stored playlists' snapshots,
what is known of the user) and what they skipped is kept here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from spotify_catalog import endpoints
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import catalog, found, me
from spotify_catalog.crawl.options import CrawlOptions, Depth, top_tracks_market
from spotify_catalog.settings import ApiMode
from spotify_catalog.storage import state

log = logging.getLogger(__name__)

Seeds = list[tuple[str, list[str]]]
"""Tasks to queue: (kind, keys) pairs."""


class Phases:
    """The phases of one crawl into ``engine`` with ``client``, as ``options`` ask; ``queue(name, seeds)``
    and ``drain(kinds)`` are the run's (module docstring)."""

    def __init__(
        self,
        engine: sa.Engine,
        client: SpotifyClient,
        options: CrawlOptions,
        *,
        now: Callable[[], datetime],
        queue: Callable[[str, Seeds], None],
        drain: Callable[[Sequence[str]], None],
    ) -> None:
        self.engine, self.client, self.options, self.now = engine, client, options, now
        self._queue, self._drain = queue, drain
        self._groups = ",".join(options.include_groups)
        self.skipped: list[str] = []
        """What was not collected because the API mode does not allow it (``top-tracks``)."""
        self.playlist_snapshots: dict[str, str | None] = {}
        """The ``snapshot_id`` of each playlist's stored items (unchanged: its items are not asked again)."""
        self.me_known = me.Known(options.me or "")
        """What is stored of the user whose data is collected (``crawl --me``)."""

    def run(self, run_id: int) -> None:
        """Every phase of the run ``run_id``, in order: the user's data, the artists (names, then ids),
        top tracks, playlists, shows, audiobooks, then down to the depth asked: discographies,
        albums, tracks."""
        opts = self.options
        names = list(dict.fromkeys(a.value for a in opts.artists if not a.is_id))
        ids = list(dict.fromkeys(a.value for a in opts.artists if a.is_id))

        me_artists = self._me(run_id) if opts.me else []
        self._phase("resolving names", [("search", names)])
        self._queue("resolving ids", [("artist", ids)])
        if not names and opts.depth >= Depth.ALBUMS:
            self._learn_mode(ids)
        self._drain(["artist"])
        with self.engine.connect() as conn:
            resolved = found.resolutions(conn, names)
            artist_states = state.task_states(conn, "artist", ids)
        artist_ids = list(
            dict.fromkeys(
                [a for a in resolved.values() if a]
                + [i for i in ids if artist_states.get(i) == "done"]
                + me_artists
            )
        )
        if opts.top_tracks:
            self._top_tracks(artist_ids)
        if opts.playlists:
            self._playlists(list(dict.fromkeys(opts.playlists)))
        for kind, wanted in ((catalog.SHOW, opts.shows), (catalog.AUDIOBOOK, opts.audiobooks)):
            if wanted:
                self._phase(f"{kind}s", [(kind, list(dict.fromkeys(wanted)))])

        if opts.depth >= Depth.ALBUMS:
            self._phase("artist albums", [("artist_albums", [f"{a}|{self._groups}|0" for a in artist_ids])])
        if opts.depth >= Depth.TRACKS:
            with self.engine.connect() as conn:
                album_ids = found.albums_of(conn, artist_ids, opts.include_groups)
            self._phase("albums", [("album", album_ids)], also=["album_tracks"])
            with self.engine.connect() as conn:
                track_ids = found.tracks_of(conn, album_ids)
        if opts.depth >= Depth.TRACK_DETAILS:
            self._phase("tracks", [("track", track_ids)])

    def _phase(self, name: str, seeds: Seeds, *, also: Sequence[str] = ()) -> None:
        """Queue ``seeds`` as the phase ``name``, then do them and the tasks of the kinds ``also`` they
        add."""
        self._queue(name, seeds)
        self._drain([*dict.fromkeys(kind for kind, _ in seeds), *also])

    def _learn_mode(self, ids: Sequence[str]) -> None:
        """Ids only and the mode unknown: the first artist's first discography page (asked with a limit
        both modes accept) tells the mode before the artists are asked, so that they go in batches
        at once in Extended mode. Not when the artists to ask number 1 more than a multiple of 50:
        the first alone, then batches, is their minimum anyway."""
        if self.client.mode is not None:
            return
        with self.engine.connect() as conn:
            states = state.task_states(conn, "artist", ids)
        pending = [i for i in ids if states.get(i) != "done"]
        if not pending or len(pending) % endpoints.BATCH_MAX["artist"] == 1:
            return
        self._phase("learning the API mode", [("artist_albums", [f"{pending[0]}|{self._groups}|0"])])

    def _me(self, run_id: int) -> list[str]:
        """The user's own data (:mod:`~spotify_catalog.crawl.me`): the profile first (it shows the API
        mode), then the rest; the artists the user follows and tops, for the depth phases."""
        user, now = self.options.me or "", self.now()
        with self.engine.begin() as conn:
            profile, *rest = me.seed(conn, user, now, run_id)
        self._phase("your profile", [profile])
        with self.engine.connect() as conn:
            self.me_known = me.load_known(conn, user, self.client.mode)
        self._queue("your library", rest)
        self._drain([me.ME, me.TOP, me.USER_PLAYLIST])
        with self.engine.connect() as conn:
            return me.artists_of(conn, user, now.astimezone(UTC).date())

    def _top_tracks(self, artist_ids: Sequence[str]) -> None:
        """Each artist's top tracks in the market asked for (Extended Quota Mode only: skipped with a
        warning once the mode is known to be development)."""
        market = top_tracks_market(self.options.market)
        if self.client.mode is not ApiMode.DEVELOPMENT:
            self._phase("top tracks", [(catalog.TOP_TRACKS, [f"{a}|{market}" for a in artist_ids])])
        if self.client.mode is ApiMode.DEVELOPMENT:
            log.warning(
                "top tracks skipped: GET /artists/{id}/top-tracks needs Extended Quota Mode and the app "
                "is in development mode"
            )
            self.skipped.append("top-tracks")

    def _playlists(self, playlist_ids: list[str]) -> None:
        """Playlists: metadata, and their items unless their snapshot_id is the stored items' one."""
        with self.engine.connect() as conn:
            self.playlist_snapshots.update(found.playlist_snapshots(conn, playlist_ids))
        self._phase("playlists", [(catalog.PLAYLIST, playlist_ids)])
        with self.engine.connect() as conn:
            without = found.without_items(conn, playlist_ids)
        if without:
            log.warning(
                "%d playlist(s) stored without their items: playlist items need Extended Quota Mode "
                "(a development-mode app gets the metadata only)",
                without,
            )
