"""The requests a crawl still needs, counted from what its database holds: :class:`Plan` (what the crawl
is asked for), :func:`estimate` (the requests left, per task kind), :func:`plan_from_database` (the last
crawl's plan). Read only: no client, no request, no write.

The requests left follow the crawler (:mod:`spotify_catalog.crawl`) phase by phase and count as it
does (docs/crawl.md, "The minimum number of requests"): every pending task of a kind is drained, the
crawl's own inputs queue theirs, a full album carries its first 50 tracks, a search result carries its
artist. Where the database knows the answer the count is exact: an artist whose discography pages are
all stored has known albums, and an album listed in a discography has a known ``total_tracks``. What
it does not know yet (a name not searched, a discography not fetched) is estimated from the averages
of what is stored, weighted with :data:`PRIOR_WEIGHT` artists' worth of the constants below (so a few
odd artists do not swing it, and an empty database has a figure too).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import sqlalchemy as sa

from spotify_catalog import endpoints
from spotify_catalog.crawl import (
    ALBUM_TRACKS_PAGE,
    DEFAULT_GROUPS,
    MODE_STATE_KEY,
    OPTIONS_STATE_KEY,
    CrawlOptions,
    Depth,
)
from spotify_catalog.crawl.options import top_tracks_market
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.settings import ApiMode
from spotify_catalog.storage import schema, state

# What an artist is assumed to have before the database has seen any (the emulator's averages, a
# mid-sized artist): albums per group of the discography, tracks per album, and the further
# ``/albums/{id}/tracks`` pages per album (albums of more than 50 tracks).
ALBUMS_PER_GROUP: Mapping[str, float] = {"album": 5.0, "single": 8.0, "compilation": 1.5, "appears_on": 12.0}
TRACKS_PER_ALBUM = 12.0
MORE_TRACK_PAGES_PER_ALBUM = 0.05
PRIOR_WEIGHT = 3.0
"""How many artists (albums: ten times as many) the constants weigh against what is stored."""

KINDS = (
    "search",
    "artist",
    "top_tracks",
    "playlist",
    "show",
    "audiobook",
    "artist_albums",
    "album",
    "album_tracks",
    "track",
)
"""Task kinds in the order the crawl's phases do them."""

MODE_UNKNOWN = "API mode not known yet: development assumed (the dearer)"
"""The note of an estimate whose mode is not known (its ``extended`` counts the other mode)."""


# ------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """The crawl to estimate: its inputs, depth, groups, the API mode, and which finished tasks are
    still fresh (``fresh_since``; ``None``: all of them)."""

    artists: tuple[ArtistInput, ...] = ()
    depth: Depth = Depth.TRACKS
    include_groups: tuple[str, ...] = DEFAULT_GROUPS
    mode: ApiMode | None = None
    """``None``: the mode the database learnt (``_state.api_mode``), else development (the dearer)."""
    fresh_since: datetime | None = None
    source: str = "the given options"
    market: str | None = None
    top_tracks: bool = False
    playlists: tuple[str, ...] = ()
    shows: tuple[str, ...] = ()
    audiobooks: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()
    """What the plan assumes where the database does not say (the estimate's first notes)."""

    @classmethod
    def of(
        cls,
        options: CrawlOptions,
        *,
        source: str,
        mode: ApiMode | None = None,
        fresh_since: datetime | None = None,
    ) -> Plan:
        """The plan of a crawl with ``options``."""
        return cls(
            artists=options.artists,
            depth=options.depth,
            include_groups=options.include_groups,
            mode=mode,
            fresh_since=fresh_since,
            source=source,
            market=options.market,
            top_tracks=options.top_tracks,
            playlists=options.playlists,
            shows=options.shows,
            audiobooks=options.audiobooks,
        )


@dataclass
class Estimate:
    """The requests left, per task kind (fractions where estimated), and whether the count is exact."""

    requests: dict[str, float]
    exact: bool
    plan: Plan
    mode: ApiMode = ApiMode.DEVELOPMENT
    mode_known: bool = False
    notes: list[str] = field(default_factory=list)
    extended: Estimate | None = None
    """The mode not known: the same count in extended mode (this one counts development, the dearer)."""

    @property
    def total(self) -> int:
        return round(sum(self.requests.values()))


@dataclass
class _Tasks:
    """The task rows the estimate needs (``track`` tasks are counted in SQL instead)."""

    rows: dict[str, dict[str, tuple[str, datetime | None]]]
    fresh_since: datetime | None

    def fresh(self, kind: str, key: str) -> bool:
        """Finished (done or failed) recently enough not to be done again."""
        row = self.rows[kind].get(key)
        if row is None or row[0] == state.PENDING:
            return False
        return self.fresh_since is None or (row[1] is not None and row[1] >= self.fresh_since)

    def pending(self, kind: str) -> set[str]:
        return {key for key, (st, _) in self.rows[kind].items() if st == state.PENDING}


def _mean(total: float, count: int, prior: float, weight: float) -> float:
    return (total + prior * weight) / (count + weight)


def estimate(conn: sa.Connection, plan: Plan) -> Estimate:
    """The requests the crawl ``plan`` still needs, given what ``conn``'s database holds."""
    t = schema.tasks
    rows: dict[str, dict[str, tuple[str, datetime | None]]] = defaultdict(dict)
    query = sa.select(t.c.kind, t.c.key, t.c.state, t.c.done_at).where(t.c.kind != "track")
    for kind, key, st, done_at in conn.execute(query):
        rows[kind][key] = (st, done_at)
    mode = plan.mode or _saved_mode(conn)
    out = Estimate(dict.fromkeys(KINDS, 0.0), True, plan, mode or ApiMode.DEVELOPMENT, mode is not None)
    out.notes.extend(plan.assumed)
    if mode is None:
        out.notes.append(MODE_UNKNOWN)
    counter = _Counter(conn, plan, _Tasks(rows, plan.fresh_since), out)
    counter.resolve()
    counter.catalog()
    if plan.depth >= Depth.ALBUMS:
        counter.discographies()
    if plan.depth >= Depth.TRACKS:
        counter.albums()
    if plan.depth >= Depth.TRACK_DETAILS:
        counter.tracks()
    if mode is None:
        out.extended = estimate(conn, replace(plan, mode=ApiMode.EXTENDED))
    return out


@dataclass
class _Counter:
    """Counts :func:`estimate`'s requests phase by phase, into ``out``."""

    conn: sa.Connection
    plan: Plan
    tasks: _Tasks
    out: Estimate
    artists: list[str] = field(default_factory=list)  # the crawl's artists the database knows
    unknown_artists: int = 0  # ... and those it does not know yet (names not searched)
    more_albums: float = 0.0  # albums of discographies not (all) stored yet
    crawl_albums: set[str] = field(default_factory=set)
    totals: dict[str, int | None] = field(default_factory=dict)
    stats: _Averages | None = None

    @property
    def dev(self) -> bool:
        return self.out.mode is ApiMode.DEVELOPMENT

    def add(self, kind: str, requests: float, *, exact: bool = True) -> None:
        self.out.requests[kind] += requests
        self.out.exact = self.out.exact and exact

    def resolve(self) -> None:
        """Phase 1: a search per name, the artist objects of ids (a search's artist is complete)."""
        tasks, plan = self.tasks, self.plan
        names = list(dict.fromkeys(a.value for a in plan.artists if not a.is_id))
        ids = list(dict.fromkeys(a.value for a in plan.artists if a.is_id))
        r = schema.artist_resolutions
        resolved: dict[str, str | None] = dict(self.conn.execute(sa.select(r.c.input, r.c.artist_id)).all())
        searches = tasks.pending("search") | {n for n in names if not tasks.fresh("search", n)}
        self.add("search", len(searches))
        unsearched = [n for n in names if n not in resolved]
        searched_ids = {resolved[n] for n in searches if resolved.get(n)}
        wanted = (tasks.pending("artist") | {i for i in ids if not tasks.fresh("artist", i)}) - searched_ids
        # a name not searched yet may resolve to one of the ids wanted
        self.add("artist", _batches(len(wanted), self.dev, "artist"), exact=not (unsearched and wanted))
        not_found = {
            i for i in ids if tasks.fresh("artist", i) and tasks.rows["artist"][i][0] == state.FAILED
        }
        found = [a for n in names if (a := resolved.get(n))]
        self.artists = list(dict.fromkeys([*found, *(i for i in ids if i not in not_found)]))
        self.unknown_artists = len(unsearched)
        if unsearched:
            self.out.notes.append(
                f"{len(unsearched)} name(s) not searched yet: each assumed to be a new artist"
            )

    def catalog(self) -> None:
        """Top tracks (one request an artist, Extended mode only), playlists (one each, and in
        Extended mode the item pages past 100 of those whose items are not stored), shows (one each,
        and the episode pages past 50) and audiobooks (one each / batches of 50, and the chapter pages
        past 50). Totals not stored yet count no further page (not exact)."""
        plan, tasks = self.plan, self.tasks
        if plan.top_tracks:
            if self.dev and self.out.mode_known:
                self.out.notes.append("top tracks: skipped in development mode")
            else:
                market = top_tracks_market(plan.market)
                todo = [a for a in self.artists if not tasks.fresh("top_tracks", f"{a}|{market}")]
                self.add("top_tracks", len(todo) + self.unknown_artists, exact=not self.unknown_artists)
        p = schema.playlists
        for kind, wanted, table, total, page_start in (
            ("playlist", plan.playlists, p, p.c.total_items, 100),
            ("show", plan.shows, schema.shows, schema.shows.c.total_episodes, 50),
            ("audiobook", plan.audiobooks, schema.audiobooks, schema.audiobooks.c.total_chapters, 50),
        ):
            todo = sorted(
                tasks.pending(kind) | {k for k in dict.fromkeys(wanted) if not tasks.fresh(kind, k)}
            )
            if not todo:
                continue
            columns = [table.c.id, total] + ([p.c.items_snapshot_id] if table is p else [])
            stored = {
                row[0]: row for row in self.conn.execute(sa.select(*columns).where(table.c.id.in_(todo)))
            }
            first = _batches(len(todo), self.dev, kind) if kind == "audiobook" else float(len(todo))
            pages = 0.0
            for key in todo:
                row = stored.get(key)
                if row is None or row[1] is None:
                    if not (kind == "playlist" and self.dev):
                        self.out.exact = False
                    continue
                if kind == "playlist" and (self.dev or row[2] is not None):
                    continue  # metadata only, or items stored (an unchanged snapshot costs nothing more)
                pages += math.ceil(max(0, int(row[1]) - page_start) / 50)
            self.add(kind, first + pages)

    def discographies(self) -> None:
        """Phase 2: the discography pages of the crawl's artists, and any other page still pending."""
        tasks, page_size = self.tasks, endpoints.DEV_LIMIT if self.dev else endpoints.MAX_LIMIT
        groups = ",".join(self.plan.include_groups)
        pages: dict[str, dict[int, tuple[str, datetime | None]]] = defaultdict(dict)
        for key, row in tasks.rows["artist_albums"].items():
            prefix, _, offset = key.rpartition("|")
            if offset.isdigit():
                pages[prefix][int(offset)] = row
        links = _links(self.conn, self.plan.include_groups)
        stats = self.stats = _averages(self.conn, pages, links, groups, self.plan, page_size)
        crawl_prefixes = {f"{a}|{groups}" for a in self.artists}
        for prefix in crawl_prefixes:
            known = pages.get(prefix, {})
            first = known.get(0)
            if first is None or first[1] is None:  # never fetched: its size is unknown
                self.unknown_artists += 1
                continue
            if tasks.fresh("artist_albums", f"{prefix}|0"):
                todo = [o for o, (st, _) in known.items() if st == state.PENDING]
            else:  # page 0 again, and with it the other pages not fresh
                todo = [o for o in known if not tasks.fresh("artist_albums", f"{prefix}|{o}")]
            partial = bool(todo) and 0 not in todo
            self.add("artist_albums", len(todo), exact=not partial)
            if partial:  # the pages still to come: full but the last
                self.more_albums += max(0.0, len(todo) * page_size - page_size / 2)
        for prefix, known in pages.items():  # other crawls' pending pages are drained too
            if prefix not in crawl_prefixes:
                self.add("artist_albums", sum(1 for st, _ in known.values() if st == state.PENDING))
                first = known.get(0)
                if first is not None and first[0] == state.PENDING and first[1] is None:
                    self.add("artist_albums", stats.pages - 1, exact=False)
        if self.unknown_artists:
            self.add("artist_albums", self.unknown_artists * stats.pages, exact=False)
            self.more_albums += self.unknown_artists * stats.albums
            self.out.notes.append(
                f"{self.unknown_artists} discography(ies) not fetched yet: {stats.pages:.1f} page(s), "
                f"{stats.albums:.1f} album(s) each assumed ({stats.source})"
            )
        crawl_set = set(self.artists)
        self.crawl_albums = {album for artist, album in links if artist in crawl_set}

    def albums(self) -> None:
        """Phase 3: full albums (each with its first 50 tracks) and the further track pages."""
        assert self.stats is not None
        tasks = self.tasks
        todo = tasks.pending("album") | {a for a in self.crawl_albums if not tasks.fresh("album", a)}
        self.totals = _total_tracks(self.conn)
        self.add("album", _batches(len(todo), self.dev, "album", more=self.more_albums))
        totals = [self.totals.get(album) for album in todo]
        unknown = sum(1 for total in totals if total is None)
        self.add("album_tracks", sum(_more_pages(total) for total in totals if total is not None))
        self.add("album_tracks", len(tasks.pending("album_tracks")))
        self.add("album_tracks", (self.more_albums + unknown) * self.stats.more_pages, exact=not unknown)

    def tracks(self) -> None:
        """Phase 4: full tracks of the crawl's albums (those stored and those to come)."""
        assert self.stats is not None
        todo = float(_pending_tracks_elsewhere(self.conn, self.crawl_albums))
        stored = _stored_tracks(self.conn, self.plan.fresh_since)
        for album in self.crawl_albums:
            count, to_fetch = stored.get(album, (0, 0))
            total = self.totals.get(album)
            if total is None:
                todo += self.stats.tracks
                self.out.exact = False
            else:
                todo += to_fetch + max(0, total - count)
        todo += self.more_albums * self.stats.tracks
        self.add("track", _batches(round(todo), self.dev, "track"))


def _batches(count: int, dev: bool, kind: str, more: float = 0.0) -> float:
    if dev:
        return count + more
    items = count + more
    return float(math.ceil(items / endpoints.BATCH_MAX[kind])) if items > 0 else 0.0


def _more_pages(total_tracks: int) -> int:
    """``/albums/{id}/tracks`` pages beyond the 50 tracks a full album carries."""
    return math.ceil(max(0, total_tracks - ALBUM_TRACKS_PAGE) / ALBUM_TRACKS_PAGE)


@dataclass
class _Averages:
    pages: float
    albums: float
    tracks: float
    more_pages: float
    source: str


def _links(conn: sa.Connection, groups: Iterable[str]) -> list[tuple[str, str]]:
    aa = schema.artist_albums
    query = sa.select(aa.c.artist_id, aa.c.album_id).where(aa.c.album_group.in_(list(groups)))
    return [(a, b) for a, b in conn.execute(query)]


def _averages(
    conn: sa.Connection,
    pages: Mapping[str, Mapping[int, tuple[str, datetime | None]]],
    links: list[tuple[str, str]],
    groups: str,
    plan: Plan,
    page_size: int,
) -> _Averages:
    """Pages and new albums per artist, from the discographies of these groups stored whole,
    tracks per album from the stored albums; each weighted with the constants."""
    prior_albums = sum(ALBUMS_PER_GROUP.get(g, 0.0) for g in plan.include_groups)
    prior_pages = max(1.0, prior_albums / page_size + 0.5)
    whole = {
        prefix.rpartition("|")[0]: len(known)
        for prefix, known in pages.items()
        if prefix.rpartition("|")[2] == groups and all(st != state.PENDING for st, _ in known.values())
    }
    albums = {album for artist, album in links if artist in whole}
    n = len(whole)
    tracks, more_pages = _album_averages(conn)
    return _Averages(
        pages=_mean(sum(whole.values()), n, prior_pages, PRIOR_WEIGHT),
        albums=_mean(len(albums), n, prior_albums, PRIOR_WEIGHT),
        tracks=tracks,
        more_pages=more_pages,
        source=f"averages of {n} stored discography(ies)" if n else "constants: nothing stored yet",
    )


def _total_tracks(conn: sa.Connection) -> dict[str, int | None]:
    a = schema.albums
    return dict(conn.execute(sa.select(a.c.id, a.c.total_tracks)).all())


def _stored_tracks(conn: sa.Connection, fresh_since: datetime | None) -> dict[str, tuple[int, int]]:
    """Per album: tracks stored, and those of them without a fresh ``track`` task."""
    tr, t = schema.tracks, schema.tasks
    fresh = sa.and_(t.c.kind == "track", t.c.key == tr.c.id, t.c.state != state.PENDING)
    if fresh_since is not None:
        fresh = sa.and_(fresh, t.c.done_at >= fresh_since)
    to_fetch = sa.func.sum(sa.case((t.c.key.is_(None), 1), else_=0))
    query = (
        sa.select(tr.c.album_id, sa.func.count(), to_fetch)
        .select_from(tr.outerjoin(t, fresh))
        .where(tr.c.album_id.is_not(None))
        .group_by(tr.c.album_id)
    )
    return {album: (int(count), int(todo or 0)) for album, count, todo in conn.execute(query)}


def _pending_tracks_elsewhere(conn: sa.Connection, crawl_albums: set[str]) -> int:
    """Pending ``track`` tasks of tracks not in the crawl's albums (drained all the same)."""
    tr, t = schema.tracks, schema.tasks
    query = (
        sa.select(tr.c.album_id)
        .select_from(t.outerjoin(tr, tr.c.id == t.c.key))
        .where(t.c.kind == "track", t.c.state == state.PENDING)
    )
    return sum(1 for album in conn.execute(query).scalars() if album not in crawl_albums)


def _album_averages(conn: sa.Connection) -> tuple[float, float]:
    """Tracks per album and further track pages per album, from the albums stored."""
    a = schema.albums
    count, tracks = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(a.c.total_tracks), 0)).where(
            a.c.total_tracks.is_not(None)
        )
    ).one()
    big = sa.select(a.c.total_tracks).where(a.c.total_tracks > ALBUM_TRACKS_PAGE)
    more = sum(_more_pages(int(n)) for n in conn.execute(big).scalars())
    weight = PRIOR_WEIGHT * 10
    return (
        _mean(float(tracks), int(count), TRACKS_PER_ALBUM, weight),
        _mean(float(more), int(count), MORE_TRACK_PAGES_PER_ALBUM, weight),
    )


# ------------------------------------------------------------------------------- the crawl's plan


def plan_from_database(conn: sa.Connection) -> Plan:
    """The plan of the last crawl: its options as saved in ``_state`` (:meth:`CrawlOptions.from_json`);
    without them (a database no crawl of this version ran on, or options another version wrote), the
    artists in the task queue at the depth and groups of a crawl given none, said in a note; the mode
    from ``_state`` (development when unknown, the dearer)."""
    text = state.get_state(conn, OPTIONS_STATE_KEY)
    try:
        if text:
            return Plan.of(CrawlOptions.from_json(text), source="the last crawl's options")
    except ValueError:
        pass  # the queue says what was asked
    t = schema.tasks
    found = conn.execute(
        sa.select(t.c.kind, t.c.key).where(t.c.kind.in_(["search", "artist"])).order_by(t.c.kind, t.c.key)
    )
    artists = tuple(ArtistInput(key, kind == "artist") for kind, key in found)
    assumed = (
        f"no saved options of the last crawl: depth {Depth.TRACKS.label} and every album group assumed "
        "(crawl --plan with its options counts for them)"
    )
    return Plan(artists, source="the task queue", assumed=(assumed,))


def _saved_mode(conn: sa.Connection) -> ApiMode | None:
    saved = state.get_state(conn, MODE_STATE_KEY)
    return ApiMode(saved) if saved in (ApiMode.DEVELOPMENT, ApiMode.EXTENDED) else None
