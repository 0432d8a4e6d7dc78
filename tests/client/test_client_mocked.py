"""Behaviour the emulator cannot produce, on an ``httpx.MockTransport``: a token endpoint that answers
a non-JSON 503, a 200 with HTML, truncated JSON, a token response without a token."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any as FakeTime

import httpx
import pytest

from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import AuthenticationError, InvalidResponseError
from spotify_catalog.settings import Settings

TOKEN = "BQ-mock-token-abcdef"
SECRET = "mock-secret-value"


def _settings(**extra: object) -> Settings:
    return Settings.load(
        {
            "client_id": "mock-id",
            "client_secret": SECRET,
            "api_url": "http://spotify.test/v1",
            "token_url": "http://accounts.test/api/token",
            **extra,
        },
        environ={},
        dotenv_path="/nonexistent/.env",
    )


def _client(handler: Callable[[httpx.Request], httpx.Response], fake_time: FakeTime) -> SpotifyClient:
    return SpotifyClient(
        _settings(), transport=httpx.MockTransport(handler), clock=fake_time.clock, sleep=fake_time.sleep
    )


def _token_ok() -> httpx.Response:
    return httpx.Response(200, json={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})


def test_token_endpoint_outage_with_plain_text_503_is_retried(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    token_calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            token_calls.append(request)
            if len(token_calls) <= 2:
                return httpx.Response(503, text="Service Unavailable", headers={"content-type": "text/plain"})
            return _token_ok()
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        return httpx.Response(200, json={"id": "x"})

    caplog.set_level(logging.DEBUG, logger="spotify_catalog")
    with _client(handler, fake_time) as client:
        assert client.get("/artists/x") == {"id": "x"}
        assert client.tokens_fetched == 1
    assert len(token_calls) == 3
    assert len(fake_time.sleeps) == 2
    body = token_calls[0].content.decode()
    assert body == "grant_type=client_credentials"
    assert token_calls[0].headers["authorization"].startswith("Basic ")
    assert "token endpoint HTTP 503" in caplog.text
    assert TOKEN not in caplog.text
    assert SECRET not in caplog.text


def test_token_endpoint_outage_that_lasts_gives_a_one_line_error(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>down</html>", headers={"content-type": "text/html"})

    with _client(handler, fake_time) as client, pytest.raises(AuthenticationError, match="HTTP 503") as info:
        client.get("/artists/x")
    assert "\n" not in str(info.value)
    assert len(fake_time.sleeps) == 5  # six attempts


def test_token_response_without_a_token_is_invalid(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"token_type": "Bearer"})

    with _client(handler, fake_time) as client, pytest.raises(InvalidResponseError, match="access_token"):
        client.get("/artists/x")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"<html><body>Welcome</body></html>", "text/html"),
        (b'{"id": "abc", "name": "trunc', "application/json"),
        (b'["not", "an", "object"]', "application/json"),
        (b'{"id": "x"}', "text/plain"),
    ],
)
def test_responses_that_are_not_what_they_claim_are_never_returned(
    fake_time: FakeTime, content: bytes, content_type: str
) -> None:
    api_calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            return _token_ok()
        api_calls.append(request)
        return httpx.Response(200, content=content, headers={"content-type": content_type})

    with _client(handler, fake_time) as client, pytest.raises(InvalidResponseError, match="invalid response"):
        client.get("/artists/x")
    assert len(api_calls) == 3  # bounded: invalid_attempts


def test_an_invalid_response_that_passes_is_recovered(fake_time: FakeTime) -> None:
    answers = [httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"})]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            return _token_ok()
        return answers.pop() if answers else httpx.Response(200, json={"id": "x"})

    with _client(handler, fake_time) as client:
        assert client.get("/artists/x") == {"id": "x"}
        assert client.requests_made == 2


def test_next_links_are_sent_to_the_configured_api(fake_time: FakeTime) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            return _token_ok()
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    with _client(handler, fake_time) as client:
        client.get("https://api.spotify.com/v1/artists/x/albums?offset=10&limit=10")
        client.get("http://spotify.test/v1/albums/y/tracks?offset=50")
        client.get("/search", {"q": "a b", "type": ["artist", "track"], "limit": 3, "market": None})
    assert seen == [
        "http://spotify.test/v1/artists/x/albums?offset=10&limit=10",
        "http://spotify.test/v1/albums/y/tracks?offset=50",
        "http://spotify.test/v1/search?q=a+b&type=artist%2Ctrack&limit=3",
    ]
