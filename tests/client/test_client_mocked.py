"""Behaviour the emulator cannot produce, on an ``httpx.MockTransport``: a token endpoint that answers
a non-JSON 503, a 200 with HTML, truncated JSON, a token response without a token."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any as FakeTime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotify_catalog import endpoints as ep
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import AuthenticationError, InvalidResponseError, UnauthorizedError
from spotify_catalog.settings import ApiMode, Settings

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


# ----------------------------------------------------------------------------- paging properties


class PagedApi:
    """A Spotify-like paged listing and search whose ``next`` links ignore the offset cap, as the real
    API's may; any request past ``cap`` fails the test."""

    def __init__(self, totals: dict[str, int], cap: int) -> None:
        self.totals = totals
        self.cap = cap
        self.requests: list[tuple[int, int]] = []

    def _page(self, kind: str, offset: int, limit: int, path: str, extra: str) -> dict[str, object]:
        total = self.totals[kind]
        items = [{"id": f"{kind}-{i}"} for i in range(offset, min(offset + limit, total))]
        more = offset + limit < total
        link = f"https://api.spotify.com/v1{path}?offset={offset + limit}&limit={limit}{extra}"
        return {
            "items": items,
            "limit": limit,
            "offset": offset,
            "total": total,
            "next": link if more else None,
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            return _token_ok()
        params = request.url.params
        offset, limit = int(params.get("offset", "0")), int(params.get("limit", "20"))
        self.requests.append((offset, limit))
        assert offset + limit <= self.cap, f"asked past the cap: offset {offset} limit {limit}"
        if request.url.path == "/v1/search":
            query = params["q"]
            body = {
                f"{kind}s": self._page(kind, offset, limit, "/search", f"&query={query}&type={kind}")
                for kind in params["type"].split(",")
            }
            return httpx.Response(200, json=body)
        return httpx.Response(200, json=self._page("thing", offset, limit, "/things", ""))


def _paged_client(api: PagedApi) -> SpotifyClient:
    client = SpotifyClient(_settings(), transport=httpx.MockTransport(api.handler), sleep=lambda s: None)
    client.mode = ApiMode.EXTENDED
    return client


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    total=st.integers(0, 1300),
    limit=st.integers(1, 50),
    start=st.integers(0, 1000),
    cap=st.sampled_from([None, 1000]),
)
def test_iter_pages_yields_every_item_once_and_never_asks_past_the_cap(
    total: int, limit: int, start: int, cap: int | None
) -> None:
    api = PagedApi({"thing": total}, cap or 10**9)
    start = min(start, (cap or 10**9) - 1)
    with _paged_client(api) as client:
        first = client.get("/things", {"offset": start, "limit": ep.capped_limit(start, limit, cap or 10**9)})
        ids = [item["id"] for item in ep.iter_pages(client, first, cap=cap)]
    end = min(total, cap or total)
    assert ids == [f"thing-{i}" for i in range(start, end)] if start < end else ids == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    totals=st.dictionaries(st.sampled_from(ep.SEARCH_TYPES), st.integers(0, 1200), min_size=1, max_size=3),
    page_size=st.integers(5, 50),
    offset=st.integers(0, 999),
)
def test_iter_search_yields_every_result_once_up_to_the_cap(
    totals: dict[str, int], page_size: int, offset: int
) -> None:
    api = PagedApi(totals, ep.SEARCH_OFFSET_CAP)
    with _paged_client(api) as client:
        got: dict[str, list[str]] = {kind: [] for kind in totals}
        for kind, item in ep.iter_search(client, "q", list(totals), page_size=page_size, offset=offset):
            got[kind].append(item["id"])
    for kind, total in totals.items():
        assert got[kind] == [f"{kind}-{i}" for i in range(offset, min(total, ep.SEARCH_OFFSET_CAP))]
    # shared requests: as many as the longest type needs, not one per type and page
    longest = max(min(total, ep.SEARCH_OFFSET_CAP) - offset for total in totals.values())
    assert len(api.requests) <= max(1, -(-longest // page_size) + 1)


def test_a_401_after_renewal_is_an_error(fake_time: FakeTime) -> None:
    tokens = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            tokens.append(1)
            return _token_ok()
        return httpx.Response(401, json={"error": {"status": 401, "message": "Invalid access token"}})

    with (
        _client(handler, fake_time) as client,
        pytest.raises(UnauthorizedError, match="Invalid access token"),
    ):
        client.get("/artists/x")
    assert len(tokens) == 2  # renewed exactly once
    assert client.requests_made == 2
    assert sum(fake_time.sleeps) == 0  # a renewal is retried at once


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(sorted(ep.BATCH_MAX)),
    count=st.integers(0, 130),
    mode=st.sampled_from([ApiMode.EXTENDED, ApiMode.DEVELOPMENT, None]),
)
def test_plural_getters_ask_for_every_id_exactly_once(kind: str, count: int, mode: ApiMode | None) -> None:
    ids = [f"{i:022d}" for i in range(count)]
    batches: list[list[str]] = []
    singles: list[str] = []
    extended = mode is not ApiMode.DEVELOPMENT  # the app behind the mock

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            return _token_ok()
        if request.url.path == f"/v1/{kind}s":
            if not extended:
                return httpx.Response(403, json={"error": {"status": 403, "message": "Forbidden"}})
            chunk = request.url.params["ids"].split(",")
            batches.append(chunk)
            return httpx.Response(200, json={f"{kind}s": [{"id": i} for i in chunk]})
        singles.append(request.url.path.rsplit("/", 1)[1])
        return httpx.Response(200, json={"id": singles[-1]})

    if mode is None:
        extended = count % 2 == 0  # auto mode meets either kind of app
    client = SpotifyClient(_settings(), transport=httpx.MockTransport(handler), sleep=lambda s: None)
    client.mode = mode
    with client:
        results = getattr(ep, f"get_{kind}s")(client, ids)
    assert [r["id"] for r in results] == ids
    asked = [i for chunk in batches for i in chunk] + singles
    assert sorted(asked) == ids  # every id exactly once
    assert all(len(chunk) <= ep.BATCH_MAX[kind] for chunk in batches)
    if extended and count:
        assert len(batches) == -(-count // ep.BATCH_MAX[kind])
        assert client.mode is ApiMode.EXTENDED
    if not extended:
        assert batches == []
        assert client.requests_made == count + (1 if mode is None and count else 0)
