"""spotipy and tekore, the most used Python clients, driven through the emulator with the lines of
docs/testing.md: search, artist, artist albums with ``next``, album, album tracks, the batch calls of
Extended Quota Mode, and the errors they meet in 2026 Development Mode."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pydantic
import pytest
import spotipy
import tekore as tk
from spotipy.cache_handler import CacheFileHandler
from spotipy.oauth2 import SpotifyClientCredentials

from spotify_catalog.emulator import BTS_ID


@pytest.fixture
def closing() -> Iterator[ExitStack]:
    """Closes the clients' connections at test end (the suite turns ResourceWarnings into errors)."""
    with ExitStack() as stack:
        yield stack


# ---------------------------------------------------------------------------------------- spotipy
def _spotipy(emu: Any) -> spotipy.Spotify:
    """The lines of docs/testing.md for an emulator of a test's own."""
    auth = SpotifyClientCredentials(
        emu.config.client_id, emu.config.client_secret, cache_handler=spotipy.MemoryCacheHandler()
    )
    auth.OAUTH_TOKEN_URL = f"{emu.url}/api/token"
    sp = spotipy.Spotify(auth_manager=auth, retries=0)
    sp.prefix = f"{emu.url}/v1/"
    return sp


def _walk_spotipy(sp: spotipy.Spotify, emu: Any) -> str:
    found = sp.search("BTS", type="artist", limit=3)["artists"]["items"]
    assert [a["name"] for a in found] == ["BTS", "BTS World", "BTSC"]
    artist_id = emu.catalog.artist_ids()[3]  # 300 albums
    assert sp.artist(artist_id)["id"] == artist_id
    page = sp.artist_albums(artist_id, limit=5)
    seen = [a["id"] for a in page["items"]]
    for _ in range(3):
        page = sp.next(page)
        seen += [a["id"] for a in page["items"]]
    assert seen == emu.catalog.artist_album_ids(artist_id)[:20]
    album_id = seen[0]
    album = sp.album(album_id)
    tracks = sp.album_tracks(album_id)  # spotipy asks for albums/{id}/tracks/ (trailing slash)
    assert [t["id"] for t in tracks["items"]] == emu.catalog.album_track_ids(album_id)[: len(tracks["items"])]
    assert album["total_tracks"] == tracks["total"]
    return album_id


def test_spotipy_through_spotify_env_in_development_mode(spotify_env, closing):
    """spotify_env alone points a plain `spotipy.Spotify(auth_manager=SpotifyClientCredentials())` at
    the emulator; the batch calls and the removed endpoints fail as they do against Spotify in 2026."""
    sp = spotipy.Spotify(auth_manager=SpotifyClientCredentials(), retries=0)
    closing.callback(sp._session.close)
    spotify_env.reset()
    album_id = _walk_spotipy(sp, spotify_env)
    artist = sp.artist(BTS_ID)
    assert "genres" not in artist  # spotDL#2615: code that reads artist["genres"] breaks
    for call in (lambda: sp.artists([BTS_ID]), lambda: sp.albums([album_id]), lambda: sp.tracks(["0" * 22])):
        with pytest.raises(spotipy.SpotifyException) as caught:
            call()
        assert caught.value.http_status == 403
        assert "Forbidden" in caught.value.msg
    with (
        pytest.raises(spotipy.SpotifyException) as removed,
        pytest.warns(DeprecationWarning, match="deprecated"),
    ):
        sp.audio_features([spotify_env.catalog.album_track_ids(album_id)[0]])
    assert removed.value.http_status == 403
    refused = [r for r in spotify_env.requests() if r.refused]
    assert [r.path for r in refused] == ["/v1/artists/", "/v1/albums/", "/v1/tracks/", "/v1/audio-features/"]


def test_spotipy_batch_calls_in_extended_quota_mode(spotify_emulator_factory, closing):
    emu = spotify_emulator_factory(profile="extended", artists=200)
    sp = _spotipy(emu)
    closing.callback(sp._session.close)
    album_id = _walk_spotipy(sp, emu)
    ids = emu.catalog.artist_ids()[:3]
    assert [a["id"] for a in sp.artists(ids)["artists"]] == ids
    assert sp.albums([album_id])["albums"][0]["id"] == album_id
    track_ids = emu.catalog.album_track_ids(album_id)[:2]
    assert [t["id"] for t in sp.tracks(track_ids)["tracks"]] == track_ids
    assert sp.artist(BTS_ID)["genres"]
    assert not [r for r in emu.requests() if r.refused]
    with pytest.raises(spotipy.SpotifyException) as caught:
        sp.artists([BTS_ID] * 51)  # spotipy does not split the list
    assert caught.value.http_status == 400
    assert "too many ids requested" in caught.value.msg


# ----------------------------------------------------------------------------------------- tekore
def _tekore(emu: Any, closing: ExitStack) -> tk.Spotify:
    """The lines of docs/testing.md: tekore's URLs are fixed, so its sender's httpx client gets the
    emulator's redirecting transport."""
    sender = tk.SyncSender(httpx.Client(transport=emu.transport()))
    closing.callback(sender.close)
    credentials = tk.Credentials(emu.config.client_id, emu.config.client_secret, sender=sender)
    return tk.Spotify(credentials.request_client_token(), sender=sender)


def test_tekore_in_extended_quota_mode(spotify_emulator_factory, closing):
    emu = spotify_emulator_factory(profile="extended", artists=200)
    sp = _tekore(emu, closing)
    (artists,) = sp.search("BTS", types=("artist",), limit=3)
    assert [a.name for a in artists.items] == ["BTS", "BTS World", "BTSC"]
    artist_id = emu.catalog.artist_ids()[3]
    assert sp.artist(artist_id).genres is not None
    page = sp.artist_albums(artist_id, limit=5)
    second = sp.next(page)
    assert [a.id for a in page.items + second.items] == emu.catalog.artist_album_ids(artist_id)[:10]
    album_id = page.items[0].id
    assert sp.album(album_id).id == album_id
    assert sp.album_tracks(album_id).total == emu.catalog.album(album_id).total_tracks
    assert [a.id for a in sp.artists([artist_id, BTS_ID])] == [artist_id, BTS_ID]
    assert sp.albums([album_id])[0].id == album_id
    track_id = emu.catalog.album_track_ids(album_id)[0]
    assert sp.tracks([track_id])[0].id == track_id
    assert not [r for r in emu.requests() if r.refused]
    with pytest.raises(tk.NotFound):
        sp.recommendations(artist_ids=[BTS_ID])  # removed in November 2024: 404


def test_tekore_meets_the_2026_development_mode(spotify_emulator_factory, closing):
    """tekore 6's models require the fields Development Mode removed (artist `followers`, `genres`,
    `popularity`; album `label`, `popularity`, `genres`): full objects fail to parse, simplified ones
    (artist albums, album tracks) work, batch calls are refused."""
    emu = spotify_emulator_factory(profile="development", artists=200)
    sp = _tekore(emu, closing)
    artist_id = emu.catalog.artist_ids()[3]
    with pytest.raises(pydantic.ValidationError, match="genres"):
        sp.artist(artist_id)
    with pytest.raises(pydantic.ValidationError, match="popularity"):
        sp.search("BTS", types=("artist",), limit=3)
    page = sp.artist_albums(artist_id, limit=5)
    assert sp.next(page).offset == 5
    album_id = page.items[0].id
    with pytest.raises(pydantic.ValidationError, match="label"):
        sp.album(album_id)
    assert sp.album_tracks(album_id).total == emu.catalog.album(album_id).total_tracks
    with pytest.raises(tk.Forbidden):
        sp.artists([artist_id])
    assert [r.status for r in emu.requests() if r.refused] == [403]


# ------------------------------------------------------------------------------- token caches
def test_spotipy_keeps_tokens_in_memory_whatever_cache_it_is_given(
    spotify_env, closing, tmp_path, monkeypatch
):
    """No `.cache` (nor any other token file) from a client given `cache_handler=None` or a file
    handler: spotipy's default writes one in the working directory."""
    monkeypatch.chdir(tmp_path)
    handlers = [None, CacheFileHandler(), CacheFileHandler(cache_path=str(tmp_path / "tokens"))]
    for handler in handlers:
        sp = spotipy.Spotify(auth_manager=SpotifyClientCredentials(cache_handler=handler), retries=0)
        closing.callback(sp._session.close)
        assert sp.artist(BTS_ID)["name"] == "BTS"
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_an_emulators_token_does_not_reach_the_next_emulator(
    spotify_emulator_factory, closing, tmp_path, monkeypatch
):
    """Two emulators one after the other (as two tests, or two runs), a file cache each time: the
    second is not sent the first one's token (it answered 401)."""
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        emu = spotify_emulator_factory(artists=50)
        auth = SpotifyClientCredentials(
            emu.config.client_id, emu.config.client_secret, cache_handler=CacheFileHandler()
        )
        auth.OAUTH_TOKEN_URL = f"{emu.url}/api/token"
        sp = spotipy.Spotify(auth_manager=auth, retries=0)
        sp.prefix = f"{emu.url}/v1/"
        closing.callback(sp._session.close)
        assert sp.search("BTS", type="artist", limit=1)["artists"]["items"][0]["name"] == "BTS"
        assert [(r.path, r.status) for r in emu.requests()][:1] == [("/api/token", 200)]


def test_a_second_run_is_not_sent_the_first_runs_token(tmp_path):
    """The plugin in two pytest runs in one directory, spotipy given `cache_handler=None`: the second
    run passes (its emulator got the first one's token from `.cache` and answered 401)."""
    (tmp_path / "test_mine.py").write_text(
        "import spotipy\n"
        "from spotipy.oauth2 import SpotifyClientCredentials\n\n\n"
        "def test_search(spotify_env):\n"
        "    sp = spotipy.Spotify(auth_manager=SpotifyClientCredentials(cache_handler=None), retries=0)\n"
        "    assert sp.search('BTS', type='artist', limit=1)['artists']['items'][0]['name'] == 'BTS'\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "SPOTIFY", "SPOTIPY"))}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", "test_mine.py"]
    for _ in range(2):
        run = subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
    assert not (tmp_path / ".cache").exists()
