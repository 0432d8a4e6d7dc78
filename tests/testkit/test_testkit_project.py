"""The plugin in a project of someone else's: a fresh virtual environment with nothing but
``pip install spotify-catalog[emulator]`` and pytest, a test file using the fixtures, and pytest run
there (no conftest.py, no ``-p``: the ``pytest11`` entry point loads the plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

USER_TESTS = """
import os
import sys

import httpx


def test_loading_the_plugin_imported_no_emulator():
    assert "spotify_catalog.testing" in sys.modules
    assert "spotify_catalog.emulator" not in sys.modules
    assert sys.modules.get("starlette") is None


def test_my_code_against_the_emulator(spotify_env):
    token = httpx.post(
        os.environ["SPOTIFY_TOKEN_URL"],
        data={"grant_type": "client_credentials"},
        auth=(os.environ["SPOTIFY_CLIENT_ID"], os.environ["SPOTIFY_CLIENT_SECRET"]),
    ).json()["access_token"]
    found = httpx.get(
        os.environ["SPOTIFY_API_URL"] + "/search",
        params={"q": "BTS", "type": "artist", "limit": 1},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert found["artists"]["items"][0]["name"] == "BTS"
    assert [r.status for r in spotify_env.requests()] == [200, 200]


def test_a_slow_spotify(spotify_emulator_factory):
    emu = spotify_emulator_factory(profile="extended", rate_limit=1)
    assert emu.config.profile == "extended"
"""

BLOCK_THE_EXTRA = """
import sys

sys.modules["starlette"] = None  # as if the emulator extra were not installed
"""


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with only spotify-catalog[emulator] (from this checkout) and pytest."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{ROOT}[emulator]",
            "pytest",
        ],
        check=True,
        capture_output=True,
    )
    return python


def _pytest(python: Path, project: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "SPOTIFY", "SPOTIPY"))}
    return subprocess.run(
        [str(python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_throwaway_project_uses_the_fixtures(python: Path, tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(USER_TESTS)
    run = _pytest(python, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


@pytest.mark.slow
def test_without_the_emulator_extra_the_tests_skip_with_the_install_line(
    python: Path, tmp_path: Path
) -> None:
    (tmp_path / "conftest.py").write_text(BLOCK_THE_EXTRA)
    (tmp_path / "test_mine.py").write_text(USER_TESTS)
    run = _pytest(python, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 2 skipped" in run.stdout
    assert "pip install 'spotify-catalog[emulator]'" in run.stdout
    assert "Traceback" not in run.stdout


def test_the_library_does_not_import_the_test_kit() -> None:
    imports = [
        path.relative_to(ROOT)
        for path in (ROOT / "src" / "spotify_catalog").rglob("*.py")
        if path.name != "testing.py" and "spotify_catalog.testing" in path.read_text()
    ]
    assert imports == []
    assert sys.modules.get("spotify_catalog.testing") is not None  # the entry point loaded it here
