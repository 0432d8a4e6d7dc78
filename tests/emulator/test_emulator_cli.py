"""``spotify-catalog emulator``: one line on stdout when ready, request logs on stderr, clean errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import httpx
import pytest

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
