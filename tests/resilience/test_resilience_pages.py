"""Pages of lists whose items are incomplete (an object without its id, a ``null`` Spotify does not
send there, more items than the page holds) are refused and retried; what is stored is the emulator's
catalog exactly: every episode and chapter, every playlist item at its position.

The scenario: one show, one audiobook and one playlist (the largest of each, with pages after the
first), extended profile, market US, one body fault kind at a rate of 0.3, over several seeds (the
emulator's seed draws its catalog and its faults).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from resilience_helpers import T0, crawl, new_engine

from emulated import contents, differences, emulator_settings, web_requests
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema

SEEDS = (1, 5, 6, 7, 8, 10)
"""Seeds (of 200-artist catalogs) whose largest show, audiobook and playlist have pages after the first."""
MARKET = "US"


def _stored(engine: sa.Engine, show: str, book: str, playlist: str) -> dict[str, list[tuple[Any, ...]]]:
    episodes, chapters, items = schema.episodes, schema.chapters, schema.playlist_items
    queries = {
        "episodes": sa.select(episodes.c.id, episodes.c.name, episodes.c.duration_ms)
        .where(episodes.c.show_id == show)
        .order_by(episodes.c.id),
        "chapters": sa.select(chapters.c.id, chapters.c.chapter_number, chapters.c.name)
        .where(chapters.c.audiobook_id == book)
        .order_by(chapters.c.id),
        "playlist items": sa.select(
            items.c.position, items.c.item_type, items.c.track_id, items.c.added_by_id
        )
        .where(items.c.playlist_id == playlist)
        .order_by(items.c.position),
    }
    with engine.connect() as conn:
        return {name: [tuple(row) for row in conn.execute(query)] for name, query in queries.items()}


def _expected(cat: Any, show: Any, book: Any, playlist: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The same from the emulator's catalog (a track relinked in the market under the id answered)."""
    tracks = cat.playlist_items(playlist.index)
    return {
        "episodes": sorted((e.id, e.name, e.duration_ms) for e in cat.episodes_of(show.index)),
        "chapters": sorted((c.id, c.number, c.name) for c in cat.chapters_of(book.index)),
        "playlist items": [
            (n, "track", cat.relinked_id(t, MARKET) or t.id, playlist.owner_id) for n, t in enumerate(tracks)
        ],
    }


@pytest.mark.parametrize("kind", ["missing_field", "null_items"])
def test_incomplete_pages_are_refused_and_nothing_is_lost_or_shifted(
    make_emulator: Any, tmp_path: Path, kind: str
) -> None:
    failed: dict[int, list[str]] = {}
    requests = {"clean": 0, "faulty": 0}
    for seed in SEEDS:
        emu = make_emulator(profile="extended", seed=seed)
        cat = emu.catalog
        show = max((s for s in cat.shows if MARKET in s.markets), key=lambda s: s.total_episodes)
        book = max(cat.audiobooks, key=lambda b: b.total_chapters)
        playlist = max(cat.playlists, key=lambda p: p.total_items)
        assert min(show.total_episodes, book.total_chapters, playlist.total_items - 50) > 50
        more = {"shows": (show.id,), "audiobooks": (book.id,), "playlists": (playlist.id,), "market": MARKET}

        clean = new_engine(tmp_path / f"clean-{seed}.db")
        assert crawl(emu, clean, (), workers=1, **more).status == "done"
        requests["clean"] += (minimum := web_requests(emu))
        emu.configure(fault_rate=0.3, fault_kinds=(kind,))
        engine = new_engine(tmp_path / f"faulty-{seed}.db")
        try:
            result = crawl(emu, engine, (), workers=1, emulator_time=True, max_attempts=30, **more)
        except Exception as exc:  # a traceback is a failure of this seed too
            problems = [f"crawl raised {exc!r}"]
        else:
            problems = [] if result.status == "done" else [f"crawl {result.status}: {result.reason}"]
        stored = _stored(engine, show.id, book.id, playlist.id)
        expected = _expected(cat, show, book, playlist)
        problems += [
            f"{name}: {len(stored[name])} stored of {len(want)}, {len(set(want) - set(stored[name]))} of"
            " them missing or not as in the catalog"
            for name, want in expected.items()
            if stored[name] != want
        ]
        # every other column as a clean crawl of the same emulator stored it (``raw`` holds the same answers)
        tables = differences(contents(engine, exclude=("raw",)), contents(clean, exclude=("raw",)))
        problems += [line for line in tables if not line.startswith(" ")]  # "table: N rows vs M expected"
        if problems:
            failed[seed] = problems
        requests["faulty"] += web_requests(emu) - minimum
        engine.dispose()
        clean.dispose()
    assert not failed, "\n".join(f"seed {seed}: {'; '.join(p)}" for seed, p in failed.items())
    assert requests["faulty"] > 1.2 * requests["clean"]  # bad answers were refused and asked again


class _NullInOnePage(httpx.BaseTransport):
    """The network, but the first answer to ``path`` (asked at ``offset``) gets the emulator's extra
    ``null`` in its items."""

    def __init__(self, path: str, offset: int) -> None:
        self._network = httpx.HTTPTransport()
        self._path, self._offset, self.spoilt = path, str(offset), 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._network.handle_request(request)
        if self.spoilt or request.url.path != self._path or request.url.params.get("offset") != self._offset:
            return response
        self.spoilt += 1
        page = json.loads(response.read())
        page["items"].insert(0, None)
        return httpx.Response(200, json=page, headers={"content-type": "application/json"})

    def close(self) -> None:
        self._network.close()


def test_a_bad_page_of_an_albums_tracks_is_asked_again_alone(make_emulator: Any, tmp_path: Path) -> None:
    """An album of three track pages whose second page comes with a ``null``: the album and its good
    pages are kept, and only the bad page is asked again (one request more than a clean crawl)."""
    emu = make_emulator(profile="development")
    cat = emu.catalog
    artist, album = next(
        (artist, album)
        for artist in cat.artist_ids()
        for album in cat.artist_album_ids(artist)
        if 100 < cat.album(album).total_tracks <= 150 and len(cat.artist_album_ids(artist)) <= 10
    )
    options = CrawlOptions(artists=(ArtistInput(artist, True),), depth=Depth.TRACKS, workers=1)

    def run(engine: sa.Engine, transport: httpx.BaseTransport | None) -> str:
        settings = emulator_settings(emu, mode="development")
        with SpotifyClient(settings, transport=transport) as client:
            return Crawler(engine, client, options, now=lambda: T0, command="test").run().status

    clean = new_engine(tmp_path / "clean.db")
    assert run(clean, None) == "done"
    minimum = web_requests(emu)
    emu.reset()
    faulty = _NullInOnePage(f"/v1/albums/{album}/tracks", 50)
    engine = new_engine(tmp_path / "faulty.db")
    assert run(engine, faulty) == "done"
    assert faulty.spoilt == 1
    assert web_requests(emu) == minimum + 1
    asked = [r.path for r in emu.requests()]
    assert asked.count(f"/v1/albums/{album}") == 1
    assert not differences(contents(engine, emu.url), contents(clean, emu.url))
