"""``kill -9`` of the crawl command at ten random moments (seeded), each followed by a rerun of the
same command: the final database equals an uninterrupted crawl's, holds no duplicate row, and all
runs together sent at most the minimum number of requests plus, per kill, the requests that were in
flight (one per worker). The artists' albums have at most 50 tracks, so that every unit of work is
one request (an album's further track pages belong to the album's unit)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from resilience_helpers import artist_inputs, cli_args, crawl, new_engine, orphans

from emulated import CLIENT_ID, CLIENT_SECRET, contents, differences, wait_for_requests, web_requests
from spotify_catalog.cli import main
from spotify_catalog.cli.report import write_report
from spotify_catalog.storage import schema

pytestmark = pytest.mark.slow

WORKERS = 4
KILLS = 10
SEED = 20261125


def _command(emu: Any, db_url: str, args: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
        emu.url + "/api/token", "crawl", "--db", db_url, "--mode", "development", "--depth", "tracks",
        "--workers", str(WORKERS), "--quiet", *args,
    ]  # fmt: skip


def _bookkeeping(path: Path) -> list[Any]:
    """The rows of ``_runs`` and ``_tasks`` (the file itself changes when reading checkpoints its WAL)."""
    engine = new_engine(path)
    with engine.connect() as conn:
        rows = [
            conn.execute(sa.select(t).order_by(*t.primary_key)).all() for t in (schema.runs, schema.tasks)
        ]
    engine.dispose()
    return rows


def test_kill_9_at_ten_random_moments(make_emulator: Any, tmp_path: Path) -> None:
    inputs = artist_inputs(40, names=10, max_albums=8, max_tracks=50)
    emu = make_emulator(profile="development", artists=2000, latency_ms=3)
    reference = new_engine(tmp_path / "reference.db")
    assert crawl(emu, reference, inputs, mode="development", workers=WORKERS).status == "done"
    minimum = web_requests(emu)
    assert minimum > 200
    want = contents(reference, emu.url)
    emu.reset()

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    env.update({"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET})
    db_path = tmp_path / "killed.db"
    command = _command(emu, f"sqlite:///{db_path}", cli_args(inputs))
    moments = sorted(random.Random(SEED).sample(range(5, minimum - 5), KILLS))
    killed_at = []
    for moment in moments:
        if web_requests(emu) >= moment:  # the previous run overshot this moment: kill soon after start
            moment = web_requests(emu) + 1
        proc = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_for_requests(emu, proc, moment, poll=0.001)
        assert proc.poll() is None, proc.communicate()[1].decode()  # still crawling when killed
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert proc.stderr is not None
        proc.stderr.close()
        killed_at.append(web_requests(emu))

    final = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=120, check=False)
    assert final.returncode == 0, final.stderr.decode()
    total = web_requests(emu)
    assert killed_at == sorted(killed_at)
    assert total <= minimum + KILLS * WORKERS, (total, minimum, killed_at)

    engine = new_engine(db_path)
    diff = differences(contents(engine, emu.url), want)
    assert not diff, "\n".join(diff)
    assert not orphans(engine)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(schema.runs.c.status).order_by(schema.runs.c.id)).scalars().all()
        states = set(conn.execute(sa.select(schema.tasks.c.state)).scalars())
    assert runs == ["abandoned"] * KILLS + ["done"]  # found dead by the next run
    assert states == {"done"}
    engine.dispose()
    reference.dispose()


def test_a_killed_crawl_is_abandoned_in_status_and_report_before_any_crawl_marks_it(
    make_emulator: Any, tmp_path: Path
) -> None:
    """``status`` and ``report`` only read: they show a run whose process is gone (on this host) as
    ``abandoned``, while the database keeps ``running`` until the next crawl marks it (they showed
    ``running``)."""
    emu = make_emulator(profile="development", artists=2000, latency_ms=20)
    db_path = tmp_path / "killed.db"
    url = f"sqlite:///{db_path}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    env.update({"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET})
    command = _command(emu, url, cli_args(artist_inputs(12, names=0)))
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_requests(emu, proc, 10)
    proc.kill()
    proc.communicate(timeout=10)
    before = _bookkeeping(db_path)

    shown = CliRunner().invoke(main, ["status", "--db", url, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    last = json.loads(shown.stdout)["last_run"]
    assert (last["status"], last["reason"]) == ("abandoned", "the process ended without recording its end")
    table = CliRunner().invoke(main, ["status", "--db", url])
    assert "last run: #1 abandoned" in table.stdout
    data = write_report(url, tmp_path / "report.html")
    assert [(run.id, run.status) for run in data.runs] == [(1, "abandoned")]
    assert data.stop_reasons == [("abandoned", "the process ended without recording its end", 1)]
    assert "abandoned" in (tmp_path / "report.html").read_text()

    after = _bookkeeping(db_path)
    assert after == before  # read only: the next crawl marks it
    assert [run.status for run in after[0]] == ["running"]
