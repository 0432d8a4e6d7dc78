"""The emulator as Spotify's accounts service for users: ``GET /authorize`` (Authorization Code with
PKCE), the code exchange and the refresh of ``POST /api/token``, each refusal as Spotify answers it
(sources named in each test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from emulator_helpers import FakeClock

from spotify_catalog import oauth
from spotify_catalog.emulator import EmulatorConfig, serve_in_thread

REDIRECT = "http://127.0.0.1:8888/callback"
CLIENT_ID = "emulator-client-id"
CLIENT_SECRET = "emulator-client-secret"
SIX_MONTHS = 184 * 86_400  # at least six calendar months


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[Any]:
    config = EmulatorConfig(
        artists=60,
        users=("alice", "bob"),
        redirect_uris=(REDIRECT, "http://127.0.0.1/dynamic", "https://app.example/callback"),
    )
    with serve_in_thread(config, clock=clock) as running:
        yield running


def _authorize(emu: Any, **changes: str | None) -> httpx.Response:
    verifier = changes.pop("verifier", None) or "v" * 64
    query = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "state": "xyz",
        "scope": "user-read-private user-top-read",
        "code_challenge_method": "S256",
        "code_challenge": oauth.code_challenge(verifier),
    }
    query.update(changes)  # type: ignore[arg-type]
    return httpx.get(emu.url + "/authorize", params={k: v for k, v in query.items() if v is not None})


def _code(emu: Any, **changes: str | None) -> str:
    answer = _authorize(emu, **changes)
    assert answer.status_code == 302, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


def _token(emu: Any, **form: str) -> httpx.Response:
    return httpx.post(emu.url + "/api/token", data=form)


def _exchange(emu: Any, code: str, verifier: str = "v" * 64, redirect: str = REDIRECT) -> httpx.Response:
    return _token(
        emu,
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect,
        client_id=CLIENT_ID,
        code_verifier=verifier,
    )


def _me(emu: Any, access_token: str) -> httpx.Response:
    return httpx.get(emu.url + "/v1/me", headers={"Authorization": f"Bearer {access_token}"})


def test_consent_redirects_with_code_and_state_and_the_exchange_gives_the_users_tokens(emu: Any) -> None:
    """Reference §12.1: ``redirect_uri?code=…&state=…``, then ``access_token``, ``token_type``,
    ``scope``, ``expires_in`` 3600, ``refresh_token``."""
    answer = _authorize(emu)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    tokens = _exchange(emu, query["code"][0]).json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert set(tokens["scope"].split()) == {"user-read-private", "user-top-read"}
    assert _me(emu, tokens["access_token"]).json()["id"] == emu.users.get("alice").id


def test_the_user_parameter_picks_who_consents(emu: Any) -> None:
    tokens = _exchange(emu, _code(emu, user="bob")).json()
    assert _me(emu, tokens["access_token"]).json()["id"] == emu.users.get("bob").id
    assert _authorize(emu, user="carol").status_code == 400


@pytest.mark.parametrize(
    ("changes", "page"),
    [
        # an unknown client: no redirect (live curl 2026-09 for the token endpoint's wording, reference §3)
        ({"client_id": "nobody"}, "INVALID_CLIENT: Invalid client"),
        # a redirect URI the app did not register: aw-watcher-spotify#31, alecchendev/spotify-refresh-token#10
        ({"redirect_uri": "http://127.0.0.1:9999/callback"}, "INVALID_CLIENT: Invalid redirect URI"),
        ({"redirect_uri": "http://localhost:8888/callback"}, "INVALID_CLIENT: Invalid redirect URI"),
        ({"redirect_uri": None}, "INVALID_CLIENT: Invalid redirect URI"),
        # a scope Spotify does not know: spotify/web-api#1262 (400 "Illegal scope")
        ({"scope": "user-read-private user-read-birthdate"}, "Illegal scope"),
    ],
)
def test_authorize_refusals_that_are_pages(emu: Any, changes: dict[str, str | None], page: str) -> None:
    answer = _authorize(emu, **changes)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    assert page in answer.text


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"deny": "1"}, "access_denied"),  # reference §12.1: ?error=access_denied&state=…
        ({"response_type": "token"}, "unsupported_response_type"),  # RFC 6749 §4.1.2.1
        ({"code_challenge_method": "plain"}, "invalid_request"),
    ],
)
def test_authorize_refusals_that_go_back_to_the_app(emu: Any, changes: dict[str, str], error: str) -> None:
    answer = _authorize(emu, **changes)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query == {"error": [error], "state": ["xyz"]}


def test_a_loopback_uri_registered_without_a_port_takes_any_port(emu: Any) -> None:
    """Spotify's redirect URI page: "loopback IP literals, which can dynamically be assigned ports"."""
    for port in (1, 40000, 65535):
        assert _authorize(emu, redirect_uri=f"http://127.0.0.1:{port}/dynamic").status_code == 302
    assert _authorize(emu, redirect_uri="http://127.0.0.1:40000/other").status_code == 400
    assert _authorize(emu, redirect_uri="https://app.example:8443/callback").status_code == 400


def test_localhost_and_plain_http_cannot_be_registered() -> None:
    """Since April 2025 (all apps by November 2025): HTTPS, or HTTP on 127.0.0.1/[::1]; localhost is not
    allowed (Spotify's redirect URI page; reference §12.1)."""
    with pytest.raises(ValueError, match="localhost"):
        EmulatorConfig(redirect_uris=("http://localhost:8888/callback",))
    with pytest.raises(ValueError, match="loopback"):
        EmulatorConfig(redirect_uris=("http://example.com/callback",))
    EmulatorConfig(redirect_uris=("http://[::1]:8888/callback", "https://example.com/callback"))


@pytest.mark.parametrize(
    ("form_changes", "body"),
    [
        # spotify/web-api-examples#126, adamint/spotify-web-api-kotlin#306
        (
            {"code_verifier": "w" * 64},
            {"error": "invalid_grant", "error_description": "code_verifier was incorrect"},
        ),
        # spotipy#640
        ({"code_verifier": ""}, {"error": "invalid_request", "error_description": "code_verifier required"}),
        # spotify/web-api#267, #1106, thelinmichael/spotify-web-api-node#405
        (
            {"redirect_uri": "http://127.0.0.1:8888/other"},
            {"error": "invalid_grant", "error_description": "Invalid redirect URI"},
        ),
        # spotify/web-api#267, bih/spotify-token-swap-service#5
        (
            {"code": "AQnot-a-code"},
            {"error": "invalid_grant", "error_description": "Invalid authorization code"},
        ),
        # andersonshatch/spotify-connect-device-picker#3
        ({"code": ""}, {"error": "invalid_request", "error_description": "code must be supplied"}),
    ],
)
def test_code_exchange_refusals(emu: Any, form_changes: dict[str, str], body: dict[str, str]) -> None:
    code = _code(emu)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": CLIENT_ID,
        "code_verifier": "v" * 64,
        **form_changes,
    }
    answer = _token(emu, **{k: v for k, v in form.items() if v})
    assert answer.status_code == 400
    assert answer.json() == body


def test_a_code_serves_once_within_ten_minutes_and_for_its_client_only(emu: Any, clock: FakeClock) -> None:
    code = _code(emu)
    assert _exchange(emu, code).status_code == 200
    assert _exchange(emu, code).json()["error_description"] == "Invalid authorization code"
    late = _code(emu)
    clock.now += 601
    assert _exchange(emu, late).json()["error_description"] == "Invalid authorization code"
    emu.configure(clients=["other-app:other-secret"])
    foreign = _code(emu, client_id="other-app")
    assert _exchange(emu, foreign).json() == {
        "error": "invalid_grant",
        "error_description": "Invalid authorization code",
    }


def test_a_pkce_refresh_rotates_the_refresh_token(emu: Any) -> None:
    """Reference §12.1: refresh with ``client_id`` (no secret); "the answer may carry a new
    ``refresh_token`` (rotation)". The emulator always rotates a PKCE login's and forgets the old one."""
    first = _exchange(emu, _code(emu)).json()
    answer = _token(
        emu, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id=CLIENT_ID
    )
    assert answer.status_code == 200
    second = answer.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert set(second["scope"].split()) == {"user-read-private", "user-top-read"}
    assert _me(emu, second["access_token"]).status_code == 200
    again = _token(emu, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id=CLIENT_ID)
    assert again.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}


def test_refresh_tokens_expire_six_months_after_the_login_rotation_or_not(emu: Any, clock: FakeClock) -> None:
    """Spotify 2026-06-18 (reference §1.8): refresh tokens expire six months after login, "Refreshing an
    access token does not reset or extend the refresh token's 6-month lifetime"; the answer is
    ``invalid_grant`` (felix-hilden/tekore#349: "invalid_grant: Refresh token expired")."""
    token = _exchange(emu, _code(emu)).json()["refresh_token"]
    for _ in range(5):  # a refresh a month: each rotation keeps the login's expiry
        clock.now += 31 * 86_400
        token = _token(emu, grant_type="refresh_token", refresh_token=token, client_id=CLIENT_ID).json()[
            "refresh_token"
        ]
    clock.now += SIX_MONTHS - 5 * 31 * 86_400
    answer = _token(emu, grant_type="refresh_token", refresh_token=token, client_id=CLIENT_ID)
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "Refresh token expired"}


def test_a_login_with_the_secret_keeps_its_refresh_token_and_needs_the_secret(emu: Any) -> None:
    code = _code(emu, code_challenge_method=None, code_challenge=None)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    tokens = httpx.post(emu.url + "/api/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET)).json()
    refreshed = httpx.post(
        emu.url + "/api/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
    ).json()
    assert "refresh_token" not in refreshed  # kept: Spotify "may" send a new one (music-assistant#4494)
    alone = _token(
        emu, grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=CLIENT_ID
    )
    assert alone.json() == {"error": "invalid_client", "error_description": "Invalid client secret"}
    no_pkce = _code(emu, code_challenge_method=None, code_challenge=None)
    public = _token(
        emu, grant_type="authorization_code", code=no_pkce, redirect_uri=REDIRECT, client_id=CLIENT_ID
    )
    assert public.json() == {"error": "invalid_client", "error_description": "Invalid client secret"}


def test_users_tokens_are_listed_nowhere(emu: Any) -> None:
    """The request log and the stats name routes and queries, never a code or a token."""
    login = emu.login("alice")
    logged = repr(emu.requests()) + repr(emu.stats()) + repr(login)
    assert login.refresh_token not in logged
    assert login.access_token not in logged
    assert "GET /authorize" in emu.stats()["by_route"]
