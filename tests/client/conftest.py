"""Fixtures of the client tests: a fake clock whose sleep advances it, settings pointing at an emulator."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass
class FakeTime:
    """``clock`` and ``sleep`` for the client: sleeping records the wait and moves the clock on."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()
