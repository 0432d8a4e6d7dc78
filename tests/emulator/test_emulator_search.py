"""Search semantics: matching, ranking, field filters, several types."""

from __future__ import annotations

import pytest
from emulator_helpers import client

from spotify_catalog.emulator.catalog import normalize, tokens
from spotify_catalog.emulator.search import Searcher, parse_query


@pytest.fixture(scope="module")
def emu():
    from spotify_catalog.emulator import EmulatorConfig, serve_in_thread

    with serve_in_thread(EmulatorConfig(artists=400, profile="extended")) as running:
        yield running


def _search(emu, q, types="artist", **params):
    with client(emu) as c:
        r = c.get("/v1/search", params={"q": q, "type": types, "limit": 50, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_parse_query():
    q = parse_query('love artist:"The Silver Foxes" year:2010-2015 genre:k-pop foo:bar')
    assert q.text == "love foo:bar"
    assert q.filters == {"artist": "The Silver Foxes", "year": "2010-2015", "genre": "k-pop"}


def test_exact_name_first_then_popularity(emu):
    cat = emu.catalog
    names = cat.artist_names()
    target = next(n for n in names[3:] if n.startswith("The ") and sum(m.startswith(n) for m in names) == 1)
    first_word = target.split()[1]
    items = _search(emu, target)["artists"]["items"]
    assert items[0]["name"] == target
    broad = _search(emu, f"the {first_word}")["artists"]["items"]
    exact = [a for a in broad if normalize(a["name"]) == normalize(f"the {first_word}")]
    rest = broad[len(exact) :]
    assert [a["popularity"] for a in rest] == sorted((a["popularity"] for a in rest), reverse=True)


def test_case_and_diacritics_insensitive(emu):
    cat = emu.catalog
    name = next(
        n
        for n in cat.artist_names()
        if not n.isascii() and " " in n and any(c.isalpha() and c.isascii() for c in n)
    )
    plain = normalize(name).upper()
    ids = [a["id"] for a in _search(emu, plain)["artists"]["items"]]
    assert cat.artist_ids()[cat.artist_names().index(name)] in ids


def test_hangul_search(emu):
    cat = emu.catalog
    index, name = next((i, n) for i, n in enumerate(cat.artist_names()) if "\uac00" <= n[0] <= "\ud7a3")
    ids = [a["id"] for a in _search(emu, name[1:])["artists"]["items"]]
    assert cat.artist_ids()[index] in ids


def test_genre_filter(emu):
    items = _search(emu, "genre:k-pop")["artists"]["items"]
    assert items
    assert all("k-pop" in a["genres"] for a in items)


def test_artist_and_year_filters_on_albums(emu):
    cat = emu.catalog
    artist_id = cat.artist_ids()[5]
    name = cat.artist_names()[5]
    items = _search(emu, f'artist:"{name}"', "album")["albums"]["items"]
    expected = {a.id for a in cat.discography(5)}
    assert {a["id"] for a in items if a["artists"][0]["id"] == artist_id} == expected
    for album in _search(emu, "year:2001-2005", "album")["albums"]["items"]:
        assert 2001 <= int(album["release_date"][:4]) <= 2005
    assert all(
        a["release_date"].startswith("2020") for a in _search(emu, "year:2020", "album")["albums"]["items"]
    )


def test_isrc_and_upc(emu):
    cat = emu.catalog
    album = cat.discography(9)[0]
    track = cat.tracks_of(9, 0)[0]
    tracks = _search(emu, f"isrc:{track.isrc}", "track")["tracks"]
    assert [t["id"] for t in tracks["items"]] == [track.id]
    albums = _search(emu, f"upc:{album.upc}", "album")["albums"]
    assert [a["id"] for a in albums["items"]] == [album.id]
    assert _search(emu, f"upc:{album.upc}", "track")["tracks"]["total"] == 0


def test_track_and_album_filters(emu):
    cat = emu.catalog
    album = next(a for a in cat.discography(12) if a.total_tracks > 3)
    track = cat.tracks_of(12, album.number)[1]
    name = cat.artist_names()[12]
    items = _search(emu, f'track:"{track.name}" artist:"{name}"', "track")["tracks"]["items"]
    assert track.id in [t["id"] for t in items]
    for t in items:
        assert normalize(track.name).split()[0] in normalize(t["name"])
    in_album = _search(emu, f'album:"{album.name}" artist:"{name}"', "track")["tracks"]["items"]
    for t in in_album:
        album_words = tokens(t["album"]["name"])
        assert all(any(w.startswith(q) for w in album_words) for q in tokens(album.name))
    every = Searcher(cat).search(f'album:"{album.name}" artist:"{name}"', "track", None)
    assert set(cat.album_track_ids(album.id)) <= {t.id for t in every}


def test_several_types_at_once(emu):
    body = _search(emu, "love", "artist,album,track,playlist", market="US")
    assert set(body) == {"artists", "albums", "tracks", "playlists"}
    for key, page in body.items():
        assert page["href"].endswith(f"type={key[:-1]}&market=US")
    assert body["albums"]["total"] > 0
    assert body["tracks"]["total"] > 0


def test_searcher_caches_results(emu):
    searcher = Searcher(emu.catalog)
    first = searcher.search("love", "track", None)
    assert searcher.search("love", "track", None) is first
