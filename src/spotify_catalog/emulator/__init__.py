"""A local emulator of the Spotify Web API (November 2026), in its two profiles.

``development`` answers as a Development-Mode app does since February 2026 (no batch endpoints, small
limits, stripped fields); ``extended`` as an Extended-Quota app (the 2025 API). See docs/emulator.md.
"""

from __future__ import annotations

from spotify_catalog.emulator.app import create_app
from spotify_catalog.emulator.catalog import BTS_ID, Catalog
from spotify_catalog.emulator.config import FAULT_KINDS, Client, EmulatorConfig
from spotify_catalog.emulator.server import RunningEmulator, serve_in_thread
from spotify_catalog.emulator.session import UserLogin
from spotify_catalog.emulator.state import EmulatorState, LoggedRequest
from spotify_catalog.emulator.users import EmulatedUser, Play

__all__ = [
    "BTS_ID",
    "FAULT_KINDS",
    "Catalog",
    "Client",
    "EmulatedUser",
    "EmulatorConfig",
    "EmulatorState",
    "LoggedRequest",
    "Play",
    "RunningEmulator",
    "UserLogin",
    "create_app",
    "serve_in_thread",
]
