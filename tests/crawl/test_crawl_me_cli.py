"""``spotify-catalog crawl --me`` as a user runs it: the login read from the config directory, the
history in ``status``, bad input as one line, and ``kill -9`` then a rerun giving the database an
uninterrupted crawl gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_crawl_me import Clock, start_emulator

from emulated import CLIENT_ID, contents, differences, stored_login, wait_for_requests, web_requests
from spotify_catalog.storage.migrate import open_database
from spotify_catalog.users import LoginStore

pytestmark = pytest.mark.slow


@pytest.fixture
def emu() -> Iterator[Any]:
    with start_emulator(Clock(), latency_ms=30) as running:
        yield running


def _env(config: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config), "SPOTIFY_CLIENT_ID": CLIENT_ID}
    for name in ("SPOTIFY_CATALOG_MODE", "SPOTIFY_CLIENT_SECRET"):
        env.pop(name, None)
    return env


def _command(emu: Any, *args: str) -> list[str]:
    api = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    return [sys.executable, "-m", "spotify_catalog", *api, *args]


def _run(emu: Any, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(emu, *args), env=_env(config), capture_output=True, text=True, timeout=120, check=False
    )


def _logged_in(emu: Any, tmp_path: Path, user: str = "alice") -> Path:
    config = tmp_path / "config"
    stored_login(emu, LoginStore(config / "spotify-catalog"), user)
    return config


def test_crawl_me_then_status_shows_the_history(emu: Any, tmp_path: Path) -> None:
    config = _logged_in(emu, tmp_path)
    url = f"sqlite:///{tmp_path / 'me.db'}"
    done = _run(emu, config, "crawl", "--db", url, "--me", "--quiet")
    assert done.returncode == 0, done.stderr
    user_id = emu.users.get("alice").id
    shown = _run(emu, config, "status", "--db", url)
    assert shown.returncode == 0, shown.stderr
    assert f"plays of {user_id}: 50, " in shown.stdout
    assert "; no gap" in shown.stdout

    nobody = _run(emu, config, "crawl", "--db", url, "--me", "--user", "nobody")
    assert (nobody.returncode, nobody.stderr) == (
        2,
        "Error: no user logged in as 'nobody': run spotify-catalog auth login --user nobody\n",
    )
    alone = _run(emu, config, "crawl", "--db", url, "--user", "alice")
    assert alone.returncode == 2
    assert alone.stderr == "Error: --user names the login of --me: give --me too\n"


def test_kill_9_during_crawl_me_then_rerun(emu: Any, tmp_path: Path) -> None:
    config = _logged_in(emu, tmp_path)
    reference = tmp_path / "ref.db"
    start = web_requests(emu)
    done = _run(emu, config, "crawl", "--db", f"sqlite:///{reference}", "--me", "--quiet")
    assert done.returncode == 0, done.stderr
    total = web_requests(emu) - start
    assert total > 12
    engine = open_database(f"sqlite:///{reference}")
    want = contents(engine)
    engine.dispose()

    for n, kill_after in enumerate([3, total // 2, total - 3]):
        db = tmp_path / f"kill{n}.db"
        command = _command(emu, "crawl", "--db", f"sqlite:///{db}", "--me", "--quiet")
        begin = web_requests(emu)
        proc = subprocess.Popen(command, env=_env(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_requests(emu, proc, begin + kill_after)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
        engine = open_database(f"sqlite:///{db}")
        assert contents(engine) != want  # stopped half-way
        again = _run(emu, config, "crawl", "--db", f"sqlite:///{db}", "--me", "--quiet")
        assert again.returncode == 0, again.stderr
        diff = differences(contents(engine), want)
        assert not diff, "\n".join(diff)
        engine.dispose()
