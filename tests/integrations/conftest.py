"""Fixtures of the integrations suite: a copy of the checkout as a user's clone, the wheel and sdist
built from it, and the suite's environments (:mod:`envs`). Unless ``SPOTIFY_CATALOG_REQUIRE_INTEGRATIONS=1``
none of its modules is collected, and the run ends with one line saying so (a skip raised here would
stop pytest when this directory is given on its command line)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import envs
import pytest
from userland import Dist, checkout_copy, run

HERE = Path(__file__).parent
SKIPPED = envs.unavailable()


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if SKIPPED is not None and collection_path.parent == HERE and collection_path.name.startswith("test_"):
        return True
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SKIPPED is not None:
        terminalreporter.write_line(f"SKIPPED {HERE.relative_to(envs.REPO)}: {SKIPPED}")


def ready(environment: Callable[[bool], Path]) -> Path:
    """The python of one of :mod:`envs`' environments, installed if missing; what cannot be had fails."""
    try:
        return environment(True)
    except envs.Missing as exc:
        pytest.fail(f"integrations: {exc}")


@pytest.fixture(scope="session")
def tools_python() -> Path:
    return ready(envs.tools_python)


@pytest.fixture(scope="session")
def dlt_python() -> Path:
    return ready(envs.dlt_python)


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    return ready(envs.airflow_python)


@pytest.fixture(scope="session")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's clone, with what a developer's checkout also holds and no package should carry: a
    virtual environment, a crawl database, compiled files."""
    tree = checkout_copy(tmp_path_factory.mktemp("clone") / "spotify-catalog")
    (tree / ".venv" / "bin").mkdir(parents=True)
    (tree / ".venv" / "bin" / "python").write_text("not a python\n")
    (tree / "spotify-demo.db").write_bytes(b"SQLite format 3\0")
    (tree / "src" / "spotify_catalog" / "__pycache__").mkdir(exist_ok=True)
    (tree / "src" / "spotify_catalog" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    return tree


@pytest.fixture(scope="session")
def dist(clone: Path, tools_python: Path) -> Dist:
    """``python -m build`` in the clone, as the README says: the sdist, then the wheel built from it."""
    run([str(tools_python), "-m", "build"], cwd=clone)
    wheels, sdists = sorted((clone / "dist").glob("*.whl")), sorted((clone / "dist").glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == 1, (wheels, sdists)
    return Dist(wheels[0], sdists[0])
