"""The pytest plugin's fixtures (spotify_catalog.testing), used here as any project would use them: the
plugin is loaded through its ``pytest11`` entry point."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx


def _token() -> str:
    answer = httpx.post(
        os.environ["SPOTIFY_TOKEN_URL"],
        data={"grant_type": "client_credentials"},
        auth=(os.environ["SPOTIFY_CLIENT_ID"], os.environ["SPOTIFY_CLIENT_SECRET"]),
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def test_the_plugin_is_loaded_from_its_entry_point(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("spotify_catalog")
    assert plugin is not None
    assert plugin.__name__ == "spotify_catalog.testing"


def test_spotify_env_points_plain_httpx_at_the_emulator(spotify_env):
    spotify_env.reset()
    token = _token()
    api = os.environ["SPOTIFY_API_URL"]
    assert api == f"{spotify_env.url}/v1"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        found = http.get(f"{api}/search", params={"q": "BTS", "type": "artist", "limit": 3}).json()
        artist = http.get(f"{api}/artists/{found['artists']['items'][0]['id']}").json()
        refused = http.get(f"{api}/artists", params={"ids": artist["id"]})
    assert artist["name"] == "BTS"
    assert refused.status_code == 403  # Development Mode: no batch endpoints
    log = spotify_env.requests()
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", "/api/token", 200),
        ("GET", "/v1/search", 200),
        ("GET", f"/v1/artists/{artist['id']}", 200),
        ("GET", "/v1/artists", 403),
    ]
    assert log[1].query == {"q": "BTS", "type": "artist", "limit": "3"}
    assert [r.refused for r in log] == [False, False, False, True]


def test_spotify_env_sets_the_variables_for_one_test_only(spotify_env, monkeypatch):
    assert os.environ["SPOTIPY_CLIENT_ID"] == spotify_env.config.client_id
    assert os.environ["SPOTIFY_CLIENT_SECRET"] == spotify_env.config.client_secret
    assert os.environ["SPOTIFY_TOKEN_URL"] == f"{spotify_env.url}/api/token"


def test_the_session_emulator_is_shared(spotify_emulator, spotify_env):
    assert spotify_env is spotify_emulator
    assert spotify_emulator.config.profile == "development"


def test_the_factory_starts_emulators_of_their_own(spotify_emulator_factory, spotify_emulator):
    extended = spotify_emulator_factory(
        profile="extended", artists=50, fault_rate=1.0, fault_kinds=["empty_429"]
    )
    assert extended.url != spotify_emulator.url
    assert extended.config.profile == "extended"
    token = httpx.post(
        f"{extended.url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=(extended.config.client_id, extended.config.client_secret),
    ).json()["access_token"]
    answer = httpx.get(f"{extended.url}/v1/markets", headers={"Authorization": f"Bearer {token}"})
    assert (answer.status_code, answer.content, answer.headers["retry-after"]) == (429, b"", "1")
    assert extended.requests()[-1].status == 429


def test_the_factory_takes_the_quota_settings_as_plain_values(spotify_emulator_factory):
    """Accounts and buckets as a conftest.py or a test writes them (strings, dicts): two client ids of
    one account share its 2 `search` requests; the default pair is an account of its own."""
    emu = spotify_emulator_factory(
        artists=30, quota=5, quota_buckets="search=2", clients=["app-1:s1:me", "app-2:s2:me"]
    )

    def search(credentials: tuple[str, str]) -> int:
        token = httpx.post(
            f"{emu.url}/api/token", data={"grant_type": "client_credentials"}, auth=credentials
        ).json()["access_token"]
        answer = httpx.get(
            f"{emu.url}/v1/search",
            params={"q": "BTS", "type": "artist"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return answer.status_code

    default = (emu.config.client_id, emu.config.client_secret)
    assert [search(("app-1", "s1")), search(("app-2", "s2")), search(("app-1", "s1"))] == [200, 200, 429]
    assert search(default) == 200
    assert emu.stats()["quota"]["me"]["search"]["used"] == 2


def test_the_transport_sends_hard_coded_spotify_urls_to_the_emulator(spotify_emulator):
    """For code whose URLs are fixed (tekore's are): requests for api.spotify.com and
    accounts.spotify.com reach the emulator, nothing else is touched."""
    with httpx.Client(transport=spotify_emulator.transport()) as http:
        token = http.post(
            "https://accounts.spotify.com/api/token",
            data={"grant_type": "client_credentials"},
            auth=(spotify_emulator.config.client_id, spotify_emulator.config.client_secret),
        ).json()["access_token"]
        answer = http.get(
            "https://api.spotify.com/v1/search",
            params={"q": "BTS", "type": "artist", "limit": 1},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.json()["artists"]["items"][0]["name"] == "BTS"
    assert spotify_emulator.requests()[-1].path == "/v1/search"


def test_the_control_route_lists_requests_too(spotify_emulator):
    spotify_emulator.reset()
    httpx.get(f"{spotify_emulator.url}/v1/markets")
    listed = httpx.get(f"{spotify_emulator.url}/_emulator/requests").json()
    assert listed == [{"method": "GET", "path": "/v1/markets", "query": {}, "status": 401}]


def test_importing_the_library_loads_neither_the_emulator_nor_the_plugin():
    code = (
        "import sys, spotify_catalog, spotify_catalog.client, spotify_catalog.crawl\n"
        "bad = [m for m in ('spotify_catalog.emulator', 'spotify_catalog.testing', 'starlette', 'uvicorn',"
        " 'pytest') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_repository_fixtures_still_work_beside_the_plugin(make_emulator, emulator, spotify_emulator):
    assert emulator.config.artists == 200
    assert make_emulator(artists=30).config.artists == 30
    assert spotify_emulator.config.artists == 2000


def test_spotify_user_gives_a_logged_in_users_tokens(spotify_user, spotify_emulator):
    """A project's user-flow code gets a user's access token (it reads ``/me``) and a refresh token it
    can exchange with the client id alone, as a PKCE login's."""
    me = httpx.get(f"{spotify_emulator.url}/v1/me", headers=spotify_user.headers).json()
    assert me["id"] == spotify_user.user_id == spotify_emulator.users.get("alice").id
    assert "user-read-recently-played" in spotify_user.scopes
    refreshed = httpx.post(
        f"{spotify_emulator.url}/api/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": spotify_user.refresh_token,
            "client_id": spotify_emulator.config.client_id,
        },
    ).json()
    assert refreshed["refresh_token"] != spotify_user.refresh_token
    history = httpx.get(
        f"{spotify_emulator.url}/v1/me/player/recently-played",
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
    )
    assert history.status_code == 200
    assert spotify_user.refresh_token not in repr(spotify_user)
