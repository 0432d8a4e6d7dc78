"""The token endpoint and the Bearer check: exact bodies and headers of the reference (§3, §4)."""

from __future__ import annotations

import base64

import httpx
import pytest
from emulator_helpers import CLIENT, token

from spotify_catalog.emulator import BTS_ID

NO_CACHE = "no-cache, no-store, must-revalidate"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_success_body_and_headers(emulator):
    r = httpx.post(f"{emulator.url}/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
    assert r.status_code == 200
    assert r.headers["cache-control"] == NO_CACHE
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600


def test_form_body_credentials_are_accepted(make_emulator):
    emu = make_emulator(token_ttl=120)
    r = httpx.post(
        f"{emu.url}/api/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT[0], "client_secret": CLIENT[1]},
    )
    assert r.status_code == 200
    assert r.json()["expires_in"] == 120


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        (
            {"data": {"grant_type": "client_credentials"}, "headers": _basic("someone-else", "x")},
            {"error": "invalid_client", "error_description": "Invalid client"},
        ),
        (
            {
                "data": {"grant_type": "client_credentials"},
                "headers": {"Authorization": "Basic !!!notbase64"},
            },
            {"error": "invalid_client", "error_description": "Invalid client"},
        ),
        (
            {"data": {"grant_type": "client_credentials"}, "headers": _basic(CLIENT[0], "wrong")},
            {"error": "invalid_client", "error_description": "Invalid client secret"},
        ),
        (
            {"data": {"grant_type": "client_credentials", "client_id": CLIENT[0], "client_secret": "no"}},
            {"error": "invalid_client", "error_description": "Invalid client secret"},
        ),
        ({"data": {"grant_type": "client_credentials"}}, {"error": "invalid_client"}),
        (
            {"json": {"grant_type": "client_credentials"}, "headers": _basic(*CLIENT)},
            {"error": "unsupported_grant_type", "error_description": "grant_type parameter is missing"},
        ),
        (
            {"data": {}, "headers": _basic(*CLIENT)},
            {"error": "unsupported_grant_type", "error_description": "grant_type parameter is missing"},
        ),
        (
            {"data": {"grant_type": "password"}, "headers": _basic(*CLIENT)},
            {
                "error": "unsupported_grant_type",
                "error_description": (
                    "grant_type must be client_credentials, authorization_code or refresh_token"
                ),
            },
        ),
    ],
)
def test_token_errors_have_exact_bodies(emulator, kwargs, body):
    r = httpx.post(f"{emulator.url}/api/token", **kwargs)
    assert r.status_code == 400
    assert r.json() == body
    assert r.headers["cache-control"] == NO_CACHE


def test_custom_credentials(make_emulator):
    emu = make_emulator(client_id="abc", client_secret="s3cr3t")
    ok = httpx.post(f"{emu.url}/api/token", data={"grant_type": "client_credentials"}, auth=("abc", "s3cr3t"))
    assert ok.status_code == 200
    bad = httpx.post(f"{emu.url}/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
    assert bad.json() == {"error": "invalid_client", "error_description": "Invalid client"}


def _get(emu, headers):
    return httpx.get(f"{emu.url}/v1/artists/{BTS_ID}", headers=headers)


def test_missing_token_is_401_with_challenge(emulator):
    r = _get(emulator, {})
    assert r.status_code == 401
    assert r.json() == {"error": {"status": 401, "message": "Missing/invalid/expired access token"}}
    assert r.headers["www-authenticate"] == (
        'Bearer realm="spotify", error="missing_token", error_description="No token provided"'
    )
    assert "cache-control" not in r.headers


def test_invalid_token_is_401(emulator):
    r = _get(emulator, {"Authorization": "Bearer BQnot-a-token"})
    assert r.status_code == 401
    assert r.json() == {"error": {"status": 401, "message": "Missing/invalid/expired access token"}}
    assert r.headers["www-authenticate"] == (
        'Bearer realm="spotify", error="invalid_token", error_description="Invalid access token"'
    )


def test_token_expires_after_ttl_on_the_emulator_clock(make_emulator):
    emu = make_emulator(token_ttl=60)
    headers = {"Authorization": f"Bearer {token(emu)}"}
    emu.advance(59)
    assert _get(emu, headers).status_code == 200
    emu.advance(1)
    r = _get(emu, headers)
    assert r.status_code == 401
    assert r.json() == {"error": {"status": 401, "message": "Missing/invalid/expired access token"}}
    assert r.headers["www-authenticate"] == (
        'Bearer realm="spotify", error="invalid_token", error_description="The access token expired"'
    )
    assert _get(emu, {"Authorization": f"Bearer {token(emu)}"}).status_code == 200


def test_advance_over_http_moves_the_clock(make_emulator):
    emu = make_emulator(token_ttl=10)
    headers = {"Authorization": f"Bearer {token(emu)}"}
    r = httpx.post(f"{emu.url}/_emulator/advance", json={"seconds": 11})
    assert r.json() == {"offset": 11.0}
    assert _get(emu, headers).status_code == 401
    assert httpx.post(f"{emu.url}/_emulator/advance", json={"seconds": -1}).status_code == 400


def test_non_bearer_authorization_is_400(emulator):
    r = _get(emulator, _basic(*CLIENT))
    assert r.status_code == 400
    assert r.json() == {"error": {"status": 400, "message": "Only valid bearer authentication supported"}}


def test_tokens_survive_reset_and_profile_change(emulator):
    headers = {"Authorization": f"Bearer {token(emulator)}"}
    emulator.reset()
    emulator.configure(profile="extended")
    assert _get(emulator, headers).status_code == 200


def test_secret_and_token_never_in_logs(make_emulator):
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("spotify_catalog.emulator.app")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        emu = make_emulator()
        tok = token(emu)
        _get(emu, {"Authorization": f"Bearer {tok}"})
        r = httpx.get(f"{emu.url}/_emulator/config")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert "client_secret" not in r.json()
    assert CLIENT[1] not in r.text
    assert any("GET /v1/artists/" in rec.getMessage() for rec in records)
    for rec in records:
        assert tok not in rec.getMessage()
        assert CLIENT[1] not in rec.getMessage()
