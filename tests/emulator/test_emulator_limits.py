"""Rate limit, quota, latency and faults, on the emulator's injectable clock (no real waiting)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from emulator_helpers import FakeClock, client

from spotify_catalog.emulator import BTS_ID

ARTIST = f"/v1/artists/{BTS_ID}"
RATE_BODY = {"error": {"status": 429, "message": "API rate limit exceeded"}}
QUOTA_BODY = {"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}


@pytest.fixture
def clock():
    return FakeClock()


def test_rate_limit_window_and_retry_after(make_emulator, clock):
    emu = make_emulator(rate_limit=3, clock=clock)
    with client(emu) as c:
        assert [c.get(ARTIST).status_code for _ in range(3)] == [200, 200, 200]
        r = c.get(ARTIST)
        assert r.status_code == 429
        assert r.json() == RATE_BODY
        assert r.headers["retry-after"] == "30"
        clock.now += 10
        assert c.get(ARTIST).headers["retry-after"] == "20"
        clock.now += 19.5
        assert c.get(ARTIST).headers["retry-after"] == "1"  # never below 1
        clock.now += 0.5
        assert c.get(ARTIST).status_code == 200
    stats = emu.stats()
    assert stats["by_status"] == {"200": 5, "429": 3}
    assert stats["by_route"]["POST /api/token"] == 1


def test_refused_requests_do_not_count(make_emulator, clock):
    emu = make_emulator(rate_limit=2, clock=clock)
    with client(emu) as c:
        c.get(ARTIST)
        c.get(ARTIST)
        for _ in range(5):
            assert c.get(ARTIST).status_code == 429
        clock.now += 30
        assert [c.get(ARTIST).status_code for _ in range(3)] == [200, 200, 429]


def test_rolling_window_frees_slots_one_by_one(make_emulator, clock):
    emu = make_emulator(rate_limit=2, clock=clock)
    with client(emu) as c:
        c.get(ARTIST)
        clock.now += 10
        c.get(ARTIST)
        assert c.get(ARTIST).headers["retry-after"] == "20"
        clock.now += 20
        assert c.get(ARTIST).status_code == 200
        assert c.get(ARTIST).headers["retry-after"] == "10"


@pytest.mark.parametrize(("mode", "expected"), [("zero", "0"), ("omit", None)])
def test_retry_after_can_be_zero_or_absent(make_emulator, clock, mode, expected):
    emu = make_emulator(rate_limit=1, retry_after=mode, clock=clock)
    with client(emu) as c:
        c.get(ARTIST)
        r = c.get(ARTIST)
    assert r.status_code == 429
    assert r.json() == RATE_BODY
    assert r.headers.get("retry-after") == expected


def test_quota_body_and_retry_after_in_hours(make_emulator, clock):
    emu = make_emulator(quota=3, token_ttl=200_000, clock=clock)
    with client(emu) as c:
        c.get(ARTIST)
        clock.now += 3600
        c.get(ARTIST)
        c.get(ARTIST)
        r = c.get(ARTIST)
        assert r.status_code == 429
        assert r.json() == QUOTA_BODY
        assert r.headers["retry-after"] == str(86_400 - 3600)
    clock.now += 86_400 - 3600
    with client(emu) as c:  # the old token expired meanwhile
        assert c.get(ARTIST).status_code == 200
        assert c.get(ARTIST).headers["retry-after"] == "3600"


def test_token_requests_and_control_routes_do_not_count(make_emulator, clock):
    emu = make_emulator(quota=1, rate_limit=1, clock=clock)
    for _ in range(3):
        httpx.post(
            f"{emu.url}/api/token",
            data={"grant_type": "client_credentials"},
            auth=("emulator-client-id", "emulator-client-secret"),
        )
        httpx.get(f"{emu.url}/_emulator/stats")
    with client(emu) as c:
        assert c.get(ARTIST).status_code == 200
        assert c.get(ARTIST).status_code == 429


def test_unauthenticated_requests_do_not_count(make_emulator, clock):
    emu = make_emulator(rate_limit=1, clock=clock)
    for _ in range(3):
        assert httpx.get(f"{emu.url}{ARTIST}").status_code == 401
    with client(emu) as c:
        assert c.get(ARTIST).status_code == 200


def test_reset_clears_rate_and_quota(make_emulator, clock):
    emu = make_emulator(quota=1, rate_limit=5, clock=clock)
    with client(emu) as c:
        c.get(ARTIST)
        assert c.get(ARTIST).json() == QUOTA_BODY
        assert httpx.post(f"{emu.url}/_emulator/reset").status_code == 200
        assert c.get(ARTIST).status_code == 200


def test_configure_over_http(make_emulator, clock):
    emu = make_emulator(clock=clock)
    r = httpx.post(f"{emu.url}/_emulator/config", json={"rate_limit": 1, "profile": "extended"})
    assert r.status_code == 200
    assert r.json()["rate_limit"] == 1
    assert emu.config.profile == "extended"
    bad = httpx.post(f"{emu.url}/_emulator/config", json={"fault_rate": 3})
    assert bad.status_code == 400
    assert bad.json() == {"error": "fault_rate must be between 0 and 1"}
    assert httpx.post(f"{emu.url}/_emulator/config", json={"seed": 1}).status_code == 400
    with client(emu) as c:
        assert c.get(ARTIST).status_code == 200
        assert c.get(ARTIST).status_code == 429


def test_latency_is_added(make_emulator):
    emu = make_emulator(latency_ms=80)
    with client(emu) as c:
        started = time.perf_counter()
        assert c.get(ARTIST).status_code == 200
        assert time.perf_counter() - started >= 0.08


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("500", 500, {"error": {"status": 500, "message": "Server error"}}),
        ("502", 502, {"error": {"status": 502, "message": "Bad gateway."}}),
        ("503", 503, {"error": {"status": 503, "message": "Service unavailable"}}),
    ],
)
def test_status_faults(make_emulator, kind, status, body):
    emu = make_emulator(fault_rate=1.0, fault_kinds=(kind,))
    with client(emu) as c:
        r = c.get(ARTIST)
    assert r.status_code == status
    assert r.json() == body
    assert emu.stats()["by_status"] == {"200": 1, str(status): 1}  # the token request, then the fault


def test_dropped_connection(make_emulator):
    emu = make_emulator(fault_rate=1.0, fault_kinds=("drop",))
    with client(emu) as c, pytest.raises(httpx.RemoteProtocolError):
        c.get(ARTIST)
    assert emu.stats()["by_status"]["drop"] == 1


def test_body_faults(make_emulator):
    emu = make_emulator(fault_rate=1.0, fault_kinds=("truncated",))
    with client(emu) as c:
        r = c.get(ARTIST)
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)
        emu.configure(fault_kinds=["html"])
        r = c.get(ARTIST)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert r.text.startswith("<!DOCTYPE html>")
        emu.configure(fault_kinds=["content_type"])
        r = c.get(ARTIST)
        assert r.headers["content-type"].startswith("text/html")
        assert r.json()["id"] == BTS_ID


def _statuses(emu, n):
    with client(emu) as c:
        return [c.get(ARTIST).status_code for _ in range(n)]


def test_faults_are_deterministic_given_the_seed(make_emulator):
    first = _statuses(make_emulator(fault_rate=0.5, fault_kinds=("500", "503")), 30)
    second = _statuses(make_emulator(fault_rate=0.5, fault_kinds=("500", "503")), 30)
    assert first == second
    assert {200, 500, 503} <= set(first)
    other = _statuses(make_emulator(fault_rate=0.5, fault_kinds=("500", "503"), seed=43), 30)
    assert other != first
