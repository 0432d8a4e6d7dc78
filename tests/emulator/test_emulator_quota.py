"""The quota as Spotify counts it since 2026-07-23 (reference §1.9, §5.2, §5.3): per developer account
(the client ids of one account share it), in buckets of endpoints, each over a rolling 24 h on the
emulator's clock; and the app owner's lapsed Premium, which refuses every Web API call."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from emulator_helpers import FakeClock, client

from spotify_catalog import ledger
from spotify_catalog.emulator import BTS_ID, Client, EmulatorConfig
from spotify_catalog.emulator.webapi import SPECS

ARTIST = f"/v1/artists/{BTS_ID}"
ALBUMS = f"/v1/artists/{BTS_ID}/albums"
SEARCH = "/v1/search?q=BTS&type=artist"
QUOTA_BODY = {"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}
DAY = 86_400
# the July 2026 changelog: up to 25 client ids of one account share its quota
ACME_1, ACME_2, SOLO = ("acme-1", "s1"), ("acme-2", "s2"), ("solo", "s3")
CLIENTS = (Client("acme-1", "s1", "acme"), Client("acme-2", "s2", "acme"), Client("solo", "s3", "solo"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_the_client_ids_of_one_account_share_its_quota(make_emulator, clock):
    emu = make_emulator(quota=2, clients=CLIENTS, clock=clock, token_ttl=2 * DAY)
    with client(emu, ACME_1) as one, client(emu, ACME_2) as two, client(emu, SOLO) as solo:
        assert one.get(ARTIST).status_code == 200
        clock.now += 600
        assert two.get(ARTIST).status_code == 200
        refused = one.get(ARTIST)
        assert refused.status_code == 429
        assert refused.json() == QUOTA_BODY
        # Retry-After: when the account's oldest request of the bucket leaves the window
        assert refused.headers["retry-after"] == str(DAY - 600)
        assert two.get(ARTIST).status_code == 429
        assert solo.get(ARTIST).status_code == 200  # another account: its own quota
        with client(emu) as default:  # the default pair stays, in an account of its own
            assert default.get(ARTIST).status_code == 200
        clock.now += DAY - 600
        assert two.get(ARTIST).status_code == 200  # the oldest left: one slot
        assert one.get(ARTIST).headers["retry-after"] == "600"


def test_each_bucket_is_counted_apart_over_a_rolling_day(make_emulator, clock):
    """~100 `/artists/{id}/albums` calls gave QUOTA_EXCEEDED while other endpoints kept answering
    (reference §5.3); the window rolls: a slot frees when its request is 24 h old (Waynting/GuessSong
    PR #28)."""
    emu = make_emulator(quota_buckets={"artist-albums": 2}, clock=clock, token_ttl=2 * DAY)
    with client(emu) as c:
        assert c.get(ALBUMS).status_code == 200
        clock.now += 3600
        assert c.get(ALBUMS).status_code == 200
        refused = c.get(ALBUMS)
        assert refused.json() == QUOTA_BODY
        assert refused.headers["retry-after"] == str(DAY - 3600)
        # every other bucket goes on (no default size: not limited)
        assert [c.get(p).status_code for p in (ARTIST, SEARCH, ARTIST, SEARCH)] == [200] * 4
        assert c.get(f"/v1/albums/{emu.catalog.artist_album_ids(BTS_ID)[0]}").status_code == 200
        clock.now += DAY - 3600
        assert c.get(ALBUMS).status_code == 200
        assert c.get(ALBUMS).headers["retry-after"] == "3600"
    assert emu.stats()["by_status"]["429"] == 2


def test_a_shorter_quota_window_rolls_in_its_own_seconds(make_emulator, clock):
    """``quota_window``: the rolling window's span, so that a test reaches the time a spent quota
    gives in seconds of real time (the Airflow deferral)."""
    emu = make_emulator(quota=2, quota_window=20, clock=clock)
    assert emu.config.quota_window == 20
    with client(emu) as c:
        assert c.get(ARTIST).status_code == 200
        clock.now += 5
        assert c.get(ARTIST).status_code == 200
        refused = c.get(ARTIST)
        assert refused.json() == QUOTA_BODY
        assert refused.headers["retry-after"] == "15"
        (used,) = emu.stats()["quota"][emu.config.client_id].values()
        assert used["frees_at"] == [clock.now - 5 + 20, clock.now + 20]
        clock.now += 15
        assert c.get(ARTIST).status_code == 200  # the first left the window: one slot
    with pytest.raises(ValueError, match="quota_window"):
        EmulatorConfig(quota_window=0)


def test_quota_is_the_size_of_every_bucket_unless_given_its_own(make_emulator, clock):
    emu = make_emulator(quota=1, quota_buckets={"search": 3, "albums": 0}, clock=clock)
    album = f"/v1/albums/{emu.catalog.artist_album_ids(BTS_ID)[0]}"
    with client(emu) as c:
        assert [c.get(ARTIST).status_code for _ in range(2)] == [200, 429]
        assert [c.get(ALBUMS).status_code for _ in range(2)] == [200, 429]
        assert [c.get(SEARCH).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert [c.get(album).status_code for _ in range(5)] == [200] * 5  # 0: not limited
        emu.configure(quota_buckets={"artists": 2})  # at run time too
        assert c.get(ARTIST).status_code == 200
        assert c.get(ARTIST).status_code == 429


def test_stats_show_each_account_s_use_per_bucket_and_when_each_slot_frees(make_emulator, clock):
    emu = make_emulator(quota=5, clients=CLIENTS, clock=clock, token_ttl=2 * DAY)
    start = clock.now
    with client(emu, ACME_1) as one, client(emu, ACME_2) as two, client(emu, SOLO) as solo:
        one.get(ALBUMS)
        clock.now += 60
        two.get(ALBUMS)
        two.get(SEARCH)
        solo.get(ARTIST)
        one.get(f"/v1/albums/{'0' * 22}")  # a 404 counts: Spotify answered it
        stats = httpx.get(f"{emu.url}/_emulator/stats").json()
    assert stats["quota"] == {
        "acme": {
            "albums": {"used": 1, "size": 5, "frees_at": [start + 60 + DAY]},
            "artist-albums": {"used": 2, "size": 5, "frees_at": [start + DAY, start + 60 + DAY]},
            "search": {"used": 1, "size": 5, "frees_at": [start + 60 + DAY]},
        },
        "solo": {"artists": {"used": 1, "size": 5, "frees_at": [start + 60 + DAY]}},
    }
    clock.now = start + DAY  # the first request has left the window
    assert emu.stats()["quota"]["acme"]["artist-albums"] == {
        "used": 1,
        "size": 5,
        "frees_at": [start + 60 + DAY],
    }
    emu.reset()
    assert emu.stats()["quota"] == {}


def test_the_buckets_are_the_collector_s():
    """One grouping for the ledger and the emulator (docs/operations.md): every route of the emulator
    counts in the bucket the collector books its requests in."""
    buckets = {spec.template: spec.bucket for spec in SPECS}
    assert buckets == {template: ledger.bucket_of(template) for template in buckets}
    assert buckets["/v1/artists/{id}/albums"] == "artist-albums"
    assert buckets["/v1/users/{id}/playlists"] == "playlists"


def test_refused_token_and_control_requests_do_not_count(make_emulator, clock):
    emu = make_emulator(quota=1, clients=CLIENTS, clock=clock)
    for _ in range(3):
        httpx.post(f"{emu.url}/api/token", data={"grant_type": "client_credentials"}, auth=ACME_1)
        assert httpx.get(f"{emu.url}{ARTIST}").status_code == 401
    with client(emu, ACME_1) as c:
        assert [c.get(ARTIST).status_code for _ in range(4)] == [200, 429, 429, 429]
    assert emu.stats()["quota"]["acme"]["artists"]["used"] == 1


def test_bad_bucket_settings_are_refused_in_one_line(make_emulator):
    with pytest.raises(ValueError, match="unknown quota bucket 'artist-album' \\(known: search, artists"):
        EmulatorConfig(quota_buckets={"artist-album": 3})
    with pytest.raises(ValueError, match="expected quota buckets as NAME=N"):
        EmulatorConfig(quota_buckets="artist-albums:3")
    with pytest.raises(ValueError, match="client id 'x' given twice"):
        EmulatorConfig(clients=("x:1", "x:2"))
    emu = make_emulator()
    r = httpx.post(f"{emu.url}/_emulator/config", json={"quota_buckets": {"nope": 1}})
    assert r.status_code == 400
    assert r.json()["error"].startswith("unknown quota bucket 'nope'")
    r = httpx.post(f"{emu.url}/_emulator/config", json={"quota_buckets": "search=5", "clients": ["a:b:c"]})
    assert r.status_code == 200
    assert r.json()["quota_buckets"] == {"search": 5}
    assert r.json()["clients"] == [{"client_id": "a", "account": "c"}]  # never a secret
    assert "b" not in repr(emu.config.clients)


def test_a_client_with_the_default_id_puts_the_default_pair_in_an_account(make_emulator, clock):
    default = Client("emulator-client-id", "emulator-client-secret", "acme")
    emu = make_emulator(quota=1, clients=(default, CLIENTS[0]), clock=clock)
    with client(emu) as c, client(emu, ACME_1) as one:
        assert c.get(ARTIST).status_code == 200
        assert one.get(ARTIST).status_code == 429


# ------------------------------------------------------------------------------ Premium lapse
PREMIUM = (
    b"Active premium subscription required for the owner of the app. When the subscription status "
    b"changes, it can take a few hours before requests are allowed again."
)


def test_a_lapsed_premium_refuses_every_call_in_plain_text(make_emulator, clock):
    """Reference §1.11 and §12.2 (zmb3/spotify#301, spotify2tidal#184, topi314/LavaSrc#334): when the
    owner's Premium lapses every Web API call, catalog calls with a client-credentials token too,
    answers 403 with this plain-text body of 159 bytes, while the token endpoint still answers 200."""
    emu = make_emulator(quota=1, clock=clock)
    r = httpx.post(f"{emu.url}/_emulator/config", json={"owner_premium": False})
    assert r.json()["owner_premium"] is False
    with client(emu) as c:  # the token endpoint: 200
        for path in (ARTIST, ARTIST, SEARCH, "/v1/artists?ids=" + BTS_ID, "/v1/markets"):
            r = c.get(path)
            assert r.status_code == 403, path
            assert r.content == PREMIUM
            assert len(r.content) == 159
            assert r.headers["content-type"] == "text/plain"
            assert r.headers["access-control-allow-origin"] == "*"
        assert c.get("/v1/nowhere").status_code == 404  # not a Web API route
        emu.configure(owner_premium=True)
        assert c.get(ARTIST).status_code == 200  # the refusals did not spend the quota
    assert emu.stats()["by_status"] == {"200": 2, "403": 5, "404": 1}


def test_a_lapsed_premium_still_needs_a_valid_token(make_emulator):
    emu = make_emulator(owner_premium=False)
    assert httpx.get(f"{emu.url}{ARTIST}").status_code == 401


# ------------------------------------------------------------------------------ the command
CLI = [sys.executable, "-m", "spotify_catalog", "emulator"]


@contextmanager
def _served(*args: str) -> Iterator[tuple[Any, list[str]]]:
    """``spotify-catalog emulator ARGS``: something with its ``url``, and its stderr once stopped."""
    proc = subprocess.Popen(
        [*CLI, "--artists", "20", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    err: list[str] = []
    try:
        assert proc.stdout is not None
        yield SimpleNamespace(url=proc.stdout.readline().strip()), err
    finally:
        proc.terminate()
        err.append(proc.communicate(timeout=10)[1])


def test_the_command_takes_clients_buckets_and_the_premium_lapse():
    args = [
        "--quota",
        "1",
        "--quota-buckets",
        "search=2",
        "--client",
        "a:hush-a:acme",
        "--client",
        "b:hush-b:acme",
    ]
    with _served(*args) as (emu, err):
        with client(emu, ("a", "hush-a")) as a, client(emu, ("b", "hush-b")) as b:
            assert [a.get(SEARCH).status_code, b.get(SEARCH).status_code] == [200, 200]
            assert b.get(SEARCH).status_code == 429
            assert a.get(ARTIST).status_code == 200
            assert b.get(ARTIST).status_code == 429
        with client(emu) as default:
            assert default.get(ARTIST).status_code == 200
    assert "hush" not in err[0]
    with _served("--owner-premium-lapsed") as (emu, _), client(emu) as c:
        assert c.get(ARTIST).content == PREMIUM


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quota-buckets", "artist-album=3"], "Error: unknown quota bucket 'artist-album'"),
        (["--quota-buckets", "search"], "Error: expected quota buckets as NAME=N"),
        (["--client", "only-an-id"], "Error: expected a client as ID:SECRET[:ACCOUNT]"),
    ],
)
def test_bad_quota_options_exit_2_with_one_line(args, message):
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert message in r.stderr
