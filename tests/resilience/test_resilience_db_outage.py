"""The database server goes away mid-crawl: PostgreSQL is stopped (``pg_ctlcluster ... stop -m fast``)
while ``spotify-catalog crawl`` writes to it. The crawl stops with one clear line and exit 1, never a
traceback; once the server is back, a rerun completes; nothing committed before the outage is lost.

The server is always started again (``finally``). The test uses its own database (``postgres_url``),
and other tests of this session never run at the same time; it skips where ``pg_ctlcluster`` is not
available, unless ``SPOTIFY_CATALOG_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from resilience_helpers import artist_inputs, cli_args, crawl, new_engine

from emulated import CLIENT_ID, CLIENT_SECRET, contents, differences, wait_for_requests, web_requests
from required import unavailable
from spotify_catalog.storage import schema

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CONFIG_DIR = Path("/etc/postgresql")


def _cluster() -> list[str]:
    """``pg_ctlcluster`` and the version/cluster of the local server, or skip."""
    tool = shutil.which("pg_ctlcluster")
    versions = sorted(p.name for p in CONFIG_DIR.iterdir()) if CONFIG_DIR.is_dir() else []
    if tool is None or not versions:
        unavailable("pg_ctlcluster is not available")
    return [tool, "--skip-systemctl-redirect", versions[-1], "main"]


def _pg(cluster: list[str], action: str, *extra: str) -> None:
    subprocess.run([*cluster, action, *extra], check=True, capture_output=True, timeout=60)


def _wait_until_up(url: str) -> None:
    engine = sa.create_engine(url)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()


def _keys(url: str) -> dict[str, set[tuple[Any, ...]]]:
    """The primary keys of every catalog table and of the finished tasks."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            keys = {
                t.name: {tuple(r) for r in conn.execute(sa.select(*t.primary_key.columns))}
                for t in schema.CATALOG_TABLES
            }
            tasks = schema.tasks
            done = sa.select(tasks.c.kind, tasks.c.key).where(tasks.c.state == "done")
            keys["done tasks"] = {tuple(r) for r in conn.execute(done)}
        return keys
    finally:
        engine.dispose()


def test_postgres_stopped_mid_crawl_then_rerun(make_emulator: Any, postgres_url: str, tmp_path: Path) -> None:
    cluster = _cluster()
    inputs = artist_inputs(30, names=8, max_albums=8)
    emu = make_emulator(profile="development", artists=2000, latency_ms=10)
    reference = new_engine(tmp_path / "reference.db")
    assert crawl(emu, reference, inputs, mode="development", workers=2).status == "done"
    minimum = web_requests(emu)
    want = contents(reference, emu.url)
    reference.dispose()
    emu.reset()

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    env.update({"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET})
    command = [
        sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
        emu.url + "/api/token", "crawl", "--db", postgres_url, "--mode", "development",
        "--workers", "2", "--quiet", *cli_args(inputs),
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_requests(emu, proc, minimum // 3, poll=0.005)
        assert proc.poll() is None, proc.communicate()[1].decode()
        _pg(cluster, "stop", "-m", "fast")
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            _pg(cluster, "start")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _wait_until_up(postgres_url)

    stderr = err.decode()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: database error:"), stderr
    assert "emulator-client-secret" not in stderr
    assert web_requests(emu) < minimum  # it stopped part-way

    before = _keys(postgres_url)
    assert before["artists"]  # something was committed before the outage
    assert before["done tasks"]

    rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()
    engine = sa.create_engine(postgres_url)
    diff = differences(contents(engine, emu.url), want)
    engine.dispose()
    assert not diff, "\n".join(diff)
    after = _keys(postgres_url)
    for table, keys in before.items():  # what was committed is still there
        assert keys <= after[table], table
    assert emu.stats()["requests"] > 0
