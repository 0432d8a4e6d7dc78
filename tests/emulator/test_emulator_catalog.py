"""The generated catalog: deterministic, varied, and consistent both ways."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotify_catalog.emulator import BTS_ID, Catalog
from spotify_catalog.emulator.entities import Album, Artist, Track
from spotify_catalog.emulator.ids import Kind, decode_id, encode_id


@pytest.fixture(scope="module")
def cat():
    return Catalog(42, 2000)


def test_same_seed_same_catalog_other_seed_other_catalog():
    a, b, c = Catalog(42, 300), Catalog(42, 300), Catalog(43, 300)
    assert a.artist_names() == b.artist_names()
    assert a.artist_ids() == b.artist_ids()
    assert a.artist_album_ids(a.artist_ids()[9]) == b.artist_album_ids(b.artist_ids()[9])
    assert a.artist_names()[3:] != c.artist_names()[3:]
    assert a.artist_ids()[0] == c.artist_ids()[0] == BTS_ID
    assert a.artist_ids()[1] != c.artist_ids()[1]


def test_names_in_several_scripts(cat):
    names = cat.artist_names()
    assert any(re.search("[\uac00-\ud7a3]", n) for n in names)  # Hangul
    assert any(re.search("[\u30a0-\u30ff\u4e00-\u9fff]", n) for n in names)  # Japanese
    assert any(
        n != unicodedata.normalize("NFKD", n).encode("ascii", "ignore").decode()
        and n.isascii() is False
        and re.search("[A-Za-z]", n)
        for n in names
    )  # Latin with diacritics


def test_discographies_of_very_different_sizes(cat):
    sizes = [len(cat.discography(a)) for a in range(cat.size)]
    assert min(sizes) == 1
    assert max(sizes) == 300
    assert len(set(sizes)) > 50
    albums = [al for a in range(cat.size) for al in cat.discography(a)]
    types = Counter(al.album_type for al in albums)
    assert set(types) == {"album", "single", "compilation"}
    assert any(al.total_tracks > 50 for al in albums)
    assert {al.release_date_precision for al in albums} == {"year", "month", "day"}
    for al in albums[:500]:
        pattern = {"year": r"\d{4}", "month": r"\d{4}-\d\d", "day": r"\d{4}-\d\d-\d\d"}[
            al.release_date_precision
        ]
        assert re.fullmatch(pattern, al.release_date)
        assert re.fullmatch(r"\d{12}", al.upc)


def test_artists_have_genres_popularity_followers_images(cat):
    artists = [cat.artist(i) for i in range(cat.size)]
    assert {len(a.genres) for a in artists} >= {0, 1, 2}
    assert min(a.popularity for a in artists) < 10 < 80 < max(a.popularity for a in artists)
    assert any(a.image_key is None for a in artists)
    assert max(a.followers for a in artists) > 1_000_000


def test_appears_on_is_consistent_both_ways(cat):
    several_artists = 0
    for a in range(120):
        for album in cat.discography(a):
            tracks = cat.tracks_of(a, album.number)
            featured = {x for t in tracks for x in t.artists if x != a}
            assert featured == set(album.guests)
            several_artists += sum(len(t.artists) > 1 for t in tracks)
            for guest in album.guests:
                assert album in cat.appears_on(guest)
        for album in cat.appears_on(a):
            assert album.artist != a
            assert any(a in t.artists for t in cat.tracks_of(album.artist, album.number))
    assert several_artists > 0


def test_lookup_decodes_every_kind(cat):
    album = cat.discography(7)[0]
    track = cat.tracks_of(7, 0)[-1]
    show = cat.shows[2]
    episode = cat.episodes_of(2)[0]
    book = cat.audiobooks[1]
    chapter = cat.chapters_of(1)[0]
    playlist = cat.playlists[3]
    for entity in (cat.artist(0), cat.artist(9), album, track, show, episode, book, chapter, playlist):
        assert cat.lookup(entity.id) == entity
    assert cat.lookup("0" * 22) is None
    assert cat.track_by_isrc(track.isrc) == track
    assert cat.album_by_upc(album.upc) == album
    assert len(cat.playlist_items(3)) == playlist.total_items
    assert all(isinstance(t, Track) for t in cat.playlist_items(3))


def test_ids_of_another_catalog_do_not_resolve(cat):
    other = Catalog(43, 2000)
    assert cat.lookup(other.artist_ids()[5]) is None
    assert cat.lookup(other.discography(5)[0].id) is None
    small = Catalog(42, 10)
    assert small.lookup(cat.artist_ids()[1500]) is None  # same seed, index out of range


@given(
    kind=st.sampled_from(list(Kind)),
    a=st.integers(0, 2**24 - 1),
    b=st.integers(0, 2**16 - 1),
    c=st.integers(0, 2**16 - 1),
    seed=st.integers(0, 2**31),
)
def test_id_round_trip(kind, a, b, c, seed):
    value = encode_id(seed, kind, a, b, c)
    assert re.fullmatch(r"[0-9A-Za-z]{22}", value)
    assert decode_id(seed, value) == (kind, a, b, c)
    assert decode_id(seed + 1, value) is None


def test_truth_helpers(cat):
    artist_id = cat.artist_ids()[11]
    ids = cat.artist_album_ids(artist_id)
    assert len(ids) == len(set(ids))
    assert all(isinstance(cat.album(i), Album) for i in ids)
    assert isinstance(cat.artist_by_id(artist_id), Artist)
    with pytest.raises(KeyError):
        cat.artist_album_ids("0" * 22)


def test_invalid_size():
    with pytest.raises(ValueError, match="artists must be between"):
        Catalog(42, 2)
