"""Several crawl processes on one database: on PostgreSQL and MariaDB they share the work through the
task queue (claims with ``FOR UPDATE SKIP LOCKED``, leases), and end with the tables one clean crawl
writes, each task fetched once; on SQLite a second crawl says which crawl holds the file and exits 75."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from emulated import CLIENT_ID, CLIENT_SECRET, contents, differences, web_requests
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.engine import create_engine
from spotify_catalog.storage.migrate import open_database

pytestmark = pytest.mark.slow


def _small_artists(catalog: Any, count: int) -> list[str]:
    """Artists with small discographies (a quick test), each with at least one album."""
    sizes = []
    for artist_id in catalog.artist_ids()[1:]:
        albums = catalog.artist_album_ids(artist_id)
        if albums:
            sizes.append((sum(catalog.album(a).total_tracks for a in albums), artist_id))
    return [artist_id for _, artist_id in sorted(sizes)[:count]]


def _start(emu: Any, url: str, ids: list[str], workers: int) -> subprocess.Popen[str]:
    env = {**os.environ, "SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}
    env.pop("SPOTIFY_CATALOG_MODE", None)
    command = [
        sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
        emu.url + "/api/token", "crawl", "--db", url, "--depth", "tracks", "--workers", str(workers),
        *[arg for i in ids for arg in ("--artist", i)],
    ]  # fmt: skip (not --quiet: its warnings are read)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _clean(make_emulator: Any, tmp_path: Path, ids: list[str]) -> tuple[dict[str, Any], int]:
    emu = make_emulator(profile="development")
    url = f"sqlite:///{tmp_path / 'clean.db'}"
    proc = _start(emu, url, ids, 2)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    engine = create_engine(url)
    found = contents(engine, emu.url)
    engine.dispose()
    return found, web_requests(emu)


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_four_crawlers_share_one_database(
    make_emulator: Any, request: pytest.FixtureRequest, tmp_path: Path, server: str
) -> None:
    url = str(request.getfixturevalue("postgres_url" if server == "postgresql" else "mysql_url"))
    emu = make_emulator(profile="development", latency_ms=5)
    ids = _small_artists(emu.catalog, 12)
    lists = [ids[0:6], ids[3:9], ids[6:12], ids[0:3] + ids[9:12]]  # every artist in two lists
    want, clean_requests = _clean(make_emulator, tmp_path, ids)

    rng = random.Random(7)
    procs = []
    for artist_list in lists:  # started 0-1.5 s apart, on an empty database: the schema races too
        procs.append(_start(emu, url, artist_list, 2))
        time.sleep(rng.uniform(0, 0.5))
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    engine = create_engine(url)
    got = contents(engine, emu.url)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(schema.runs.c.status, schema.runs.c.requests)).all()
        failed = conn.execute(
            sa.select(sa.func.count()).select_from(schema.tasks).where(schema.tasks.c.state != "done")
        ).scalar_one()
    engine.dispose()
    diff = differences(got, want)
    assert not diff, "\n".join(diff)
    assert failed == 0
    assert [status for status, _ in runs] == ["done"] * 4
    assert sum(requests for _, requests in runs) == web_requests(emu)
    assert web_requests(emu) <= clean_requests + 2 * len(lists)


def test_two_crawlers_into_one_sqlite_file(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development", latency_ms=5)
    ids = _small_artists(emu.catalog, 8)
    want, _clean_requests = _clean(make_emulator, tmp_path, ids)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = _start(emu, url, ids, 2)
    time.sleep(0.3)
    second = _start(emu, url, ids, 2)
    errors = [p.communicate(timeout=300)[1] for p in (first, second)]
    results = [(p.returncode, err) for p, err in zip((first, second), errors, strict=True)]
    for code, err in results:
        assert code in (0, 75), err
        assert "Traceback" not in err
        if code == 75:
            lines = err.splitlines()
            assert len(lines) == 1, err
            assert "another crawl is writing into this SQLite database" in lines[0]
    for code, _err in results:
        if code == 75:  # the one that waited runs again and has nothing left to do
            again = _start(emu, url, ids, 2)
            _out, err = again.communicate(timeout=300)
            assert again.returncode == 0, err
    engine = create_engine(url)
    diff = differences(contents(engine, emu.url), want)
    engine.dispose()
    assert not diff, "\n".join(diff)


SURVIVOR_TIMEOUT = 120  # seconds; the survivor of a kill waited for the lease, 10 minutes
_LOGGED_AT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) WARNING .*marked abandoned", re.MULTILINE)


def _run_of(engine: sa.Engine, pid: int) -> int | None:
    r = schema.runs
    with engine.connect() as conn:
        return conn.execute(sa.select(r.c.id).where(r.c.pid == pid)).scalar()


def _claims_of(engine: sa.Engine, run_id: int) -> int:
    """Pending tasks ``run_id`` holds now."""
    t = schema.tasks
    query = sa.select(sa.func.count()).where(
        t.c.leased_by == str(run_id), t.c.state == state.PENDING, t.c.lease_until > datetime.now(UTC)
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _until(condition: Any, proc: subprocess.Popen[str], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return found


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_a_crawl_killed_beside_another_holds_it_up_for_seconds_not_the_lease(
    make_emulator: Any, request: pytest.FixtureRequest, tmp_path: Path, server: str
) -> None:
    """Two crawls of the same artists share a database; one is killed with SIGKILL while it holds
    claims. The other, on the same host, finds its process gone, marks its run abandoned and takes
    its tasks over at once: it used to sleep until their lease ended (603 s on PostgreSQL, 616 s on
    MariaDB)."""
    url = str(request.getfixturevalue("postgres_url" if server == "postgresql" else "mysql_url"))
    emu = make_emulator(profile="development", latency_ms=50)
    ids = _small_artists(emu.catalog, 24)
    want, clean_requests = _clean(make_emulator, tmp_path, ids)
    engine = open_database(url)  # the schema, so that the runs can be watched from the start
    victim = _start(emu, url, ids, 2)
    survivor: subprocess.Popen[str] | None = None
    try:
        victim_run = _until(lambda: _run_of(engine, victim.pid), victim)
        _until(lambda: _claims_of(engine, victim_run), victim)
        survivor = _start(emu, url, ids, 2)
        survivor_proc = survivor
        _until(lambda: _run_of(engine, survivor_proc.pid), survivor)
        while True:  # frozen, it cannot give its claims back: killed while it holds some
            assert victim.poll() is None, "the crawl to kill ended first"
            victim.send_signal(signal.SIGSTOP)
            held = _claims_of(engine, victim_run)
            if held:
                break
            victim.send_signal(signal.SIGCONT)
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), datetime.now()
        victim.communicate(timeout=10)  # closes its pipes
        _out, err = survivor.communicate(timeout=SURVIVOR_TIMEOUT)
        finished = time.monotonic() - killed_at
    finally:
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert survivor.returncode == 0, err
    assert victim.returncode == -signal.SIGKILL
    logged = _LOGGED_AT.findall(err)
    assert len(logged) == 1, err  # "run N ended without recording it (killed?): marked abandoned"
    taken_over = (datetime.strptime(logged[0], "%Y-%m-%d %H:%M:%S,%f") - killed_wall).total_seconds()
    assert finished < 30, (finished, taken_over)
    assert taken_over < finished
    print(f"{server}: {held} claim(s) held; taken over after {taken_over:.2f} s, done after {finished:.2f} s")

    got = contents(engine, emu.url)
    with engine.connect() as conn:
        runs = dict(conn.execute(sa.select(schema.runs.c.id, schema.runs.c.status)).all())
        states = set(conn.execute(sa.select(schema.tasks.c.state)).scalars())
    engine.dispose()
    diff = differences(got, want)
    assert not diff, "\n".join(diff)
    assert runs[victim_run] == "abandoned"
    assert sorted(runs.values()) == ["abandoned", "done"]
    assert states == {"done"}
    assert web_requests(emu) <= clean_requests + 2  # the killed crawl's requests in flight
