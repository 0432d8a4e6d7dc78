"""What the suite needs from the machine: without it a test skips, except under CI
(``SPOTIFY_CATALOG_REQUIRE_SERVERS=1``, set by ``.ci/run``), where it fails."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE = "SPOTIFY_CATALOG_REQUIRE_SERVERS"


def unavailable(reason: str) -> NoReturn:
    """Skip for ``reason``; under CI, fail: there a missing server or tool is a fault of the set-up."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason}, but {REQUIRE}=1")
    pytest.skip(reason)
