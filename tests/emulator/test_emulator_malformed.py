"""Requests the HTTP server cannot parse get Spotify's JSON error, not uvicorn's plain text; a token
request whose body never arrives is one log line, not a traceback. Raw sockets: httpx would refuse to
send most of these."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_helpers import token

from spotify_catalog.emulator import EmulatorConfig, serve_in_thread

MALFORMED = {
    "1 MB query": b"GET /v1/search?type=artist&q=" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "Latin-1 byte in the path": b"GET /v1/artists/caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n",
    "Latin-1 byte in the query": b"GET /v1/search?type=artist&q=caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n",
    "ESC in the path": b"GET /v1/artists/\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n",
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n",
}


def _address(url: str) -> tuple[str, int]:
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    return host, int(port)


def exchange(url: str, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is and read one response: (status, headers, body)."""
    with socket.create_connection(_address(url), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading all of a huge request
        received = b""
        while True:
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(params=["auto", "h11"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The emulator with uvicorn's default HTTP parser (httptools here) and with h11."""
    with serve_in_thread(EmulatorConfig(artists=20), http=request.param) as emu:
        yield emu.url


@pytest.mark.parametrize("name", list(MALFORMED))
def test_unparsable_requests_get_spotifys_json_error(server_url: str, name: str) -> None:
    status, headers, body = exchange(server_url, MALFORMED[name])
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)
    assert set(error) == {"error"}
    assert error["error"]["status"] == 400
    assert isinstance(error["error"]["message"], str)
    assert error["error"]["message"]


def test_a_non_utf8_path_is_a_json_error(make_emulator: Any) -> None:
    """Percent-encoded bytes that are not UTF-8 reach the application: an ordinary Spotify error."""
    emu = make_emulator()
    request = f"GET /v1/artists/%ff%fe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token(emu)}\r\n\r\n"
    status, headers, body = exchange(emu.url, request.encode())
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["status"] == 400


def test_the_server_still_answers_after_malformed_requests(make_emulator: Any) -> None:
    emu = make_emulator()
    for data in MALFORMED.values():
        exchange(emu.url, data)
    status, _, body = exchange(emu.url, b"GET /v1/markets HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 401
    assert json.loads(body)["error"]["status"] == 401


def test_a_token_request_cut_short_is_one_log_line(
    make_emulator: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator()
    ours = logging.getLogger("spotify_catalog")  # as the CLI left it, if a CLI test ran before: to caplog
    monkeypatch.setattr(ours, "handlers", [])
    monkeypatch.setattr(ours, "propagate", True)
    caplog.set_level(logging.INFO)
    with socket.create_connection(_address(emu.url), timeout=5) as sock:
        sock.sendall(
            b"POST /api/token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"grant_type=client_cre"
        )
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while not any("disconnected" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # anything else the server would log about it
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in lines] == [
        "POST /api/token: the client disconnected before sending its body (content-length 100)"
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in caplog.text
    assert "ClientDisconnect" not in caplog.text
    assert exchange(emu.url, b"GET /v1/markets HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 401  # still serving
