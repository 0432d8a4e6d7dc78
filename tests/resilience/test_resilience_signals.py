"""SIGTERM (what systemd, Docker and Kubernetes send) and SIGHUP stop a crawl as Ctrl-C does: the run
is recorded as ``interrupted`` with the signal's name and the requests made, one line goes to stderr,
the exit code is 128 + the signal number, and a rerun ends with the tables of an uninterrupted crawl."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from resilience_helpers import artist_inputs, cli_args, crawl, new_engine

from emulated import CLIENT_ID, CLIENT_SECRET, contents, differences, wait_for_requests, web_requests
from spotify_catalog.emulator.catalog import Catalog
from spotify_catalog.emulator.samples import describe, samples
from spotify_catalog.storage import schema

pytestmark = pytest.mark.slow

WORKERS = 2


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    env.update({"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET})
    return env


def _signal_after(proc: subprocess.Popen[str], emu: Any, requests: int, signum: int) -> tuple[str, str]:
    """Send ``signum`` once the emulator has answered ``requests`` Web API requests; the output."""
    wait_for_requests(emu, proc, requests)
    assert proc.poll() is None, proc.communicate()[1]  # still crawling: the signal stops it midway
    proc.send_signal(signum)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # every thread's stack to stderr: where it is stuck
        time.sleep(1)
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(
            f"{signal.Signals(signum).name} did not stop the crawl within 30 s "
            f"({web_requests(emu)} requests answered); its stderr and threads:\n{err}"
        )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_the_crawl_like_ctrl_c(
    make_emulator: Any, tmp_path: Path, signum: int, code: int
) -> None:
    name = signal.Signals(signum).name
    inputs = artist_inputs(12, names=4, max_albums=6, max_tracks=50)
    emu = make_emulator(profile="development", artists=2000, latency_ms=20)
    reference = new_engine(tmp_path / "reference.db")
    assert crawl(emu, reference, inputs, mode="development", workers=WORKERS).status == "done"
    want = contents(reference, emu.url)
    reference.dispose()
    emu.reset()

    db_path = tmp_path / "signalled.db"
    command = [
        sys.executable, "-m", "spotify_catalog", "--api-url", emu.url + "/v1", "--token-url",
        emu.url + "/api/token", "crawl", "--db", f"sqlite:///{db_path}", "--mode", "development",
        "--depth", "tracks", "--workers", str(WORKERS), "--quiet", *cli_args(inputs),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = _signal_after(proc, emu, 10, signum)

    assert proc.returncode == code, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0] == f"interrupted by {name}; run the same command again to continue"
    engine = new_engine(db_path)
    with engine.connect() as conn:
        runs = conn.execute(sa.select(schema.runs)).mappings().all()
    assert [(r["status"], r["reason"]) for r in runs] == [("interrupted", f"interrupted ({name})")]
    assert runs[0]["requests"] > 0
    assert runs[0]["ended_at"] is not None
    assert contents(engine, emu.url) != want  # it did stop midway

    assert crawl(emu, engine, inputs, mode="development", workers=WORKERS).status == "done"
    diff = differences(contents(engine, emu.url), want)
    assert not diff, "\n".join(diff)
    engine.dispose()


def _waiting_command(*, before: str = "", start: str = "") -> subprocess.Popen[str]:
    """A command of the group (``sleepy``) that waits for signals for ever, in its own process, once it
    has said it is ready: ``before`` runs before the CLI is imported, ``start`` inside the command."""
    code = (
        f"import signal, threading\n{before}"
        "from spotify_catalog.cli import main\n"
        "@main.command('sleepy')\n"
        "def sleepy():\n"
        f"    {start or 'pass'}\n"
        "    print('ready', flush=True)\n"
        "    while True:\n"
        "        signal.pause()\n"
        "main()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "sleepy"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_any_command_stops_on_sigterm_with_one_line() -> None:
    """Outside the crawl's own handling (a command of the group that just waits): the group's
    handler, one line, exit 143, no traceback."""
    proc = _waiting_command()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (143, "", "Interrupted by SIGTERM.\n")


def test_sigusr1_prints_every_threads_stack_and_the_command_goes_on() -> None:
    """``kill -USR1`` on a command that seems stuck: where each thread is, on stderr; it goes on."""
    proc = _waiting_command(start="threading.Thread(target=signal.pause, name='helper', daemon=True).start()")
    assert proc.stderr is not None
    proc.send_signal(signal.SIGUSR1)
    dump = [proc.stderr.readline()]
    while "in sleepy" not in dump[-1] and dump[-1]:
        dump.append(proc.stderr.readline())
    assert proc.poll() is None, dump  # still running
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    lines = dump + err.splitlines()
    threads = [line for line in lines if line.startswith(("Thread 0x", "Current thread 0x"))]
    assert len(threads) == 2, lines  # the main thread and the helper
    assert (proc.returncode, out, err.splitlines()[-1]) == (143, "", "Interrupted by SIGTERM.")


def test_sighup_stays_ignored_under_nohup() -> None:
    proc = _waiting_command(before="signal.signal(signal.SIGHUP, signal.SIG_IGN)\n")
    proc.send_signal(signal.SIGHUP)  # ignored
    time.sleep(0.3)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (143, "Interrupted by SIGTERM.\n")


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_the_emulator_stops_gracefully(signum: int, code: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotify_catalog", "emulator", "--artists", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("http://127.0.0.1:")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    shown = describe(samples(Catalog(42, 50)))  # printed once the URL is
    assert (proc.returncode, out, err) == (
        code,
        "",
        "".join(f"{line}\n" for line in shown) + f"Interrupted by {name}.\n",
    )
