"""``spotify-catalog emulator``: one line on stdout when ready, sample ids and request logs on stderr,
``--samples`` as JSON, clean errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest

from spotify_catalog.emulator.catalog import Catalog
from spotify_catalog.emulator.samples import KINDS, samples

CLI = [sys.executable, "-m", "spotify_catalog"]


def test_prints_the_url_once_then_logs_requests_to_stderr():
    proc = subprocess.Popen(
        [
            *CLI,
            "emulator",
            "--artists",
            "50",
            "--profile",
            "extended",
            "--client-id",
            "me",
            "--client-secret",
            "hush",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        r = httpx.post(f"{url}/api/token", data={"grant_type": "client_credentials"}, auth=("me", "hush"))
        token = r.json()["access_token"]
        r = httpx.get(
            f"{url}/v1/search",
            params={"q": "BTS", "type": "artist", "limit": 3},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert [a["name"] for a in r.json()["artists"]["items"]] == ["BTS", "BTS World", "BTSC"]
        assert "popularity" in r.json()["artists"]["items"][0]  # extended profile
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert out == ""  # nothing after the URL line
    shown = samples(Catalog(42, 50))
    assert "ids it serves (shows, episodes, audiobooks, chapters: with --market US):" in err
    for kind in KINDS:
        ids = ", ".join(f"{s['id']} ({s['name']})" for s in shown[kind])
        assert f"  {kind:<9}  {ids}\n" in err
    assert "GET /v1/search?q=BTS&type=artist&limit=3 200" in err
    assert "POST /api/token 200" in err
    assert token not in err
    assert "hush" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "production"], "Invalid value for '--profile'"),
        (["--artists", "1"], "Invalid value for '--artists'"),
        (["--fault-rate", "1.5"], "Invalid value for '--fault-rate'"),
        (["--fault-kinds", "500,teapot"], "Error: unknown fault kind 'teapot'"),
        (["--host", "no.such.host.invalid"], "Error: cannot listen on no.such.host.invalid:0"),
    ],
)
def test_bad_options_exit_2_with_one_line(args, message):
    r = subprocess.run([*CLI, "emulator", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stdout == ""
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_port_in_use_is_a_clean_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [*CLI, "emulator", "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_samples_prints_ids_of_every_kind_that_the_emulator_serves(make_emulator: Any) -> None:
    r = subprocess.run(
        [*CLI, "emulator", "--samples", "--artists", "50", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)
    assert printed.pop("market") == "US"
    assert list(printed) == list(KINDS)
    assert all(len(items) == 3 for items in printed.values())
    emu = make_emulator(artists=50, seed=7)
    token = httpx.post(
        f"{emu.url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=("emulator-client-id", "emulator-client-secret"),
    ).json()["access_token"]
    with httpx.Client(base_url=emu.url + "/v1", headers={"Authorization": f"Bearer {token}"}) as api:
        for kind, items in printed.items():
            for item in items:
                answer = api.get(f"/{kind}s/{item['id']}", params={"market": "US"})
                assert answer.status_code == 200, (kind, item)
                assert answer.json()["name"] == item["name"]
