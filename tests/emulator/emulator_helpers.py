"""Small helpers for the emulator tests: a token, an authorized client, a clock to move by hand."""

from __future__ import annotations

from typing import Any

import httpx

from emulated import CLIENT_ID, CLIENT_SECRET

CLIENT = (CLIENT_ID, CLIENT_SECRET)


def token(emu: Any, credentials: tuple[str, str] = CLIENT) -> str:
    response = httpx.post(f"{emu.url}/api/token", data={"grant_type": "client_credentials"}, auth=credentials)
    response.raise_for_status()
    return str(response.json()["access_token"])


def client(emu: Any, credentials: tuple[str, str] = CLIENT) -> httpx.Client:
    """An httpx client for ``emu.url`` that sends a fresh Bearer token (of the client ``credentials``)."""
    return httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {token(emu, credentials)}"})


class FakeClock:
    """The base of an emulator's clock, moved by the test (``clock.now += 3600``)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now
