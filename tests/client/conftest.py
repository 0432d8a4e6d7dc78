"""Fixtures of the client tests: a fake clock whose sleep advances it (and the emulator's clock),
settings and clients pointing at an emulator, and a clean ``spotify_catalog`` logger per test."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from emulated import emulator_settings
from spotify_catalog.client import SpotifyClient


@dataclass
class FakeTime:
    """``clock`` and ``sleep`` for the client: sleeping records the wait and moves the clock on;
    ``on_sleep`` callbacks run on every sleep (e.g. move the emulator's clock, clear a fault)."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: list[Callable[[float], None]] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
        for callback in self.on_sleep:
            callback(seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(autouse=True)
def _restore_package_logger() -> Iterator[None]:
    """The CLI reconfigures the ``spotify_catalog`` logger; put it back so caplog keeps working."""
    logger = logging.getLogger("spotify_catalog")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def connect(fake_time: FakeTime) -> Iterator[Callable[..., SpotifyClient]]:
    """``connect(emu, **settings)``: a client of the emulator on fake time (its sleeps move the
    emulator's clock too); closed at the end of the test."""
    clients: list[SpotifyClient] = []

    def make(emu: Any, *, request_budget: int | None = None, **extra: Any) -> SpotifyClient:
        if emu.advance not in fake_time.on_sleep:
            fake_time.on_sleep.append(emu.advance)
        client = SpotifyClient(
            emulator_settings(emu, **extra),
            clock=fake_time.clock,
            sleep=fake_time.sleep,
            request_budget=request_budget,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
