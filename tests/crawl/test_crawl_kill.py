"""``kill -9`` of a crawl at several points, then a rerun: the same tables as an uninterrupted crawl,
and never a half-written album in between."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from crawl_helpers import crawl, new_engine, pick

from emulated import contents, differences, wait_for_requests, web_requests
from spotify_catalog.crawl import Depth
from spotify_catalog.storage import schema

pytestmark = pytest.mark.slow


def _albums_whole(engine: sa.Engine) -> None:
    """Every album whose task is done is full and has all its tracks: never half written."""
    t, a, tr = schema.tasks, schema.albums, schema.tracks
    with engine.connect() as conn:
        done = set(conn.execute(sa.select(t.c.key).where(t.c.kind == "album", t.c.state == "done")).scalars())
        full = {
            row.id: row.total_tracks
            for row in conn.execute(sa.select(a.c.id, a.c.total_tracks).where(a.c.detail == "full"))
        }
        counts = dict(conn.execute(sa.select(tr.c.album_id, sa.func.count()).group_by(tr.c.album_id)).all())
    assert done == set(full)
    for album_id, total in full.items():
        assert counts.get(album_id, 0) == total, album_id


def test_kill_9_at_several_points_then_rerun(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development", latency_ms=2)
    reference_db = new_engine(tmp_path / "ref.db")
    crawl(emu, reference_db, mode="development", depth=Depth.TRACK_DETAILS, workers=2)
    reference = contents(reference_db)
    total = web_requests(emu)
    assert total > 300

    args = pick().args()
    env = {
        **os.environ,
        "SPOTIFY_CLIENT_ID": "emulator-client-id",
        "SPOTIFY_CLIENT_SECRET": "emulator-client-secret",
    }
    env.pop("SPOTIFY_CATALOG_MODE", None)
    for n, kill_after in enumerate([3, total // 3, (2 * total) // 3]):
        url = f"sqlite:///{tmp_path / f'kill{n}.db'}"
        command = [
            sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
            emu.url + "/api/token", "crawl", "--db", url, "--mode", "development", "--depth",
            "track-details", "--workers", "2", "--quiet", *args,
        ]  # fmt: skip
        start = web_requests(emu)
        proc = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_for_requests(emu, proc, start + kill_after)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        if proc.stderr:
            proc.stderr.close()

        engine = new_engine(tmp_path / f"kill{n}.db")
        _albums_whole(engine)
        before = contents(engine)
        assert before != reference  # the kill did stop it half-way
        crawl(emu, engine, mode="development", depth=Depth.TRACK_DETAILS, workers=2)
        diff = differences(contents(engine), reference)
        assert not diff, "\n".join(diff)
        engine.dispose()
    reference_db.dispose()


def test_ctrl_c_exits_130_and_records_the_run(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development", latency_ms=50)  # still crawling when Ctrl-C comes
    env = {
        **os.environ,
        "SPOTIFY_CLIENT_ID": "emulator-client-id",
        "SPOTIFY_CLIENT_SECRET": "emulator-client-secret",
    }
    command = [
        sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
        emu.url + "/api/token", "crawl", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--mode", "development",
        "--depth", "track-details", *pick().args(),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_requests(emu, proc, 20)
    assert proc.poll() is None, proc.communicate()[1]  # still crawling: Ctrl-C stops it midway
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err.lower()
    engine = new_engine(tmp_path / "c.db")
    with engine.connect() as conn:
        status = conn.execute(sa.select(schema.runs.c.status)).scalars().all()
    engine.dispose()
    assert status == ["interrupted"]
