"""Small helpers for the emulator tests: a token, an authorized client."""

from __future__ import annotations

from typing import Any

import httpx

from emulated import CLIENT_ID, CLIENT_SECRET

CLIENT = (CLIENT_ID, CLIENT_SECRET)


def token(emu: Any) -> str:
    response = httpx.post(f"{emu.url}/api/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
    response.raise_for_status()
    return str(response.json()["access_token"])


def client(emu: Any) -> httpx.Client:
    """An httpx client for ``emu.url`` that sends a fresh Bearer token."""
    return httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {token(emu)}"})
