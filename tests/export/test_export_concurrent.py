"""Exports of one date into one place at once end as if they had run one after the other: each
partition holds the files of one export, the same export for every table (the last to publish), and
nothing any of them wrote is lost. They publish one after the other under a lock in the destination
(``TO/_locks/<date>``: an ``flock`` locally, a lease on S3) that an export which died does not hold
for ever."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import cast

import boto3
import pytest
import sqlalchemy as sa
from lake_helpers import fill, small_metadata

from spotify_catalog import export as lake_export
from spotify_catalog.errors import SpotifyCatalogError
from spotify_catalog.export import lock as lake_lock
from spotify_catalog.storage.schema import metadata

DAY = date(2026, 11, 25)
FORMATS = ("parquet", "csv", "jsonl")
ROUNDS = 6  # on the code without the lock 3 to 6 rounds of 6 went wrong (docs/resilience.md)
MOTO_EPOCH = datetime(2010, 11, 10, tzinfo=UTC)  # before moto's "Initiated" of every upload
TIMEOUT = 120.0  # a bound on waiting for another thread, never reached when the code is right


def _compression(fmt: str) -> str:
    return "zstd" if fmt == "parquet" else "none"


def _s3_keys(bucket: str, prefix: str = "") -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _partition_files(keys: list[str]) -> dict[str, list[str]]:
    """``table -> file names`` of the date's partitions, from the keys of a lake at ``lake/``."""
    files: dict[str, list[str]] = {}
    for key in keys:
        parts = key.split("/")
        if len(parts) == 4 and parts[2] == f"dt={DAY.isoformat()}" and not parts[1].startswith("_"):
            files.setdefault(parts[1], []).append(parts[3])
    return files


def _at_once(run: Callable[[str], object]) -> None:
    """``run(fmt)`` for the three formats in three threads let go at the same moment."""
    start = threading.Barrier(len(FORMATS))
    errors: list[BaseException] = []

    def one(fmt: str) -> None:
        start.wait()
        try:
            run(fmt)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(fmt,)) for fmt in FORMATS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


@pytest.mark.slow
def test_three_formats_exported_at_once_to_s3_end_as_one_after_the_other(
    s3_bucket: str, sqlite_engine: sa.Engine
) -> None:
    """Concurrent exports: parquet, csv and jsonl of every table, one date, one prefix, at once, six
    times. Without the lock each export deleted the other formats' objects after copying its own:
    most rounds left tables with no object at all (docs/resilience.md has the figures)."""
    fill(sqlite_engine, metadata, 3)
    tables = sorted(t.name for t in lake_export.select_tables(metadata, None))
    lake = lake_export.open_lake(f"s3://{s3_bucket}/lake")

    def export(fmt: str) -> None:
        # moto lists every multipart upload as initiated in 2010: by the real clock an export starting
        # would take another's fresh upload (no part yet) for a dead export's and abort it
        lake_export.export(
            sqlite_engine, metadata, lake, DAY, fmt=fmt, compression=_compression(fmt), now=lambda: MOTO_EPOCH
        )

    outcomes, wrong = [], 0
    for number in range(1, ROUNDS + 1):
        _at_once(export)
        keys = _s3_keys(s3_bucket)
        files = _partition_files(keys)
        formats = Counter(name.split(".")[1] for names in files.values() for name in names)
        others = [k for k in keys if k.split("/")[1] not in tables]  # staging, the lock
        missing = [t for t in tables if not files.get(t)]
        doubled = [t for t in tables if len(files.get(t, [])) > 1]
        outcomes.append(
            f"round {number}: {len(missing)} of {len(tables)} tables without an object, {len(doubled)} with"
            f" two or more, files {dict(sorted(formats.items()))}, {len(others)} other objects"
        )
        # one after the other: every table holds one file, all of the export that published last
        wrong += len(formats) != 1 or sum(formats.values()) != len(tables) or others != []
    assert wrong == 0, "\n".join(outcomes)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> lake_export.Lake:
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return lake_export.open_lake(f"s3://{bucket}/lake")
    return lake_export.open_lake(str(tmp_path / "lake"))


def _lake_files(lake: lake_export.Lake) -> list[str]:
    """Every file of the lake, relative to its root."""
    if lake.s3 is not None:
        bucket, prefix = lake.root.split("/", 1)
        return [k[len(prefix) + 1 :] for k in _s3_keys(bucket, prefix + "/")]
    root = Path(lake.root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_an_export_publishing_meanwhile_waits_for_the_one_that_is(
    lake: lake_export.Lake, sqlite_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export A (Parquet) stops after publishing its first table; export B (CSV) of the same date,
    started then, publishes only after A is done: every table ends as B's CSV, as when A runs before B.
    Without the lock B published all its tables at once and A went on: items CSV, links Parquet."""
    meta = small_metadata()
    fill(sqlite_engine, meta, 4)
    published_one, b_waits_or_is_done, a_done = threading.Event(), threading.Event(), threading.Event()
    publish = lake_export.Lake.publish
    a_thread: list[threading.Thread] = []

    def publish_then_pause(self: lake_export.Lake, staged: str, final: str) -> None:
        publish(self, staged, final)
        if threading.current_thread() in a_thread and not published_one.is_set():
            published_one.set()
            assert b_waits_or_is_done.wait(TIMEOUT)

    def b_sleeps(seconds: float) -> None:  # B waiting for the lock: let A finish
        b_waits_or_is_done.set()
        assert a_done.wait(TIMEOUT)

    monkeypatch.setattr(lake_export.Lake, "publish", publish_then_pause)

    def export_a() -> None:
        try:
            lake_export.export(sqlite_engine, meta, lake, DAY)
        finally:
            a_done.set()

    a_thread.append(threading.Thread(target=export_a))
    a_thread[0].start()
    assert published_one.wait(TIMEOUT)
    lake_export.export(sqlite_engine, meta, lake, DAY, fmt="csv", compression="none", sleep=b_sleeps)
    b_waits_or_is_done.set()
    a_thread[0].join(TIMEOUT)
    assert a_done.is_set()
    assert _lake_files(lake) == [f"{t}/dt={DAY}/part-00000.csv" for t in ("items", "links")]  # no lock left


# ------------------------------------------------------------------------------ an export that died


@pytest.fixture
def coarse_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A waiting export looks at the lease every 5 s of the fake clock: fewer requests to moto."""
    monkeypatch.setattr(lake_lock, "POLL_SECONDS", 5.0)


class FakeClock:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.mark.usefixtures("coarse_polls")
def test_the_lease_of_an_export_that_died_is_taken_over_after_a_minute(
    s3_bucket: str, sqlite_engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    meta = small_metadata()
    fill(sqlite_engine, meta, 4)
    lease = f"lake/_locks/{DAY}"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=lease, Body=b'{"owner": "pid 7 on gone"}')
    lake = lake_export.open_lake(f"s3://{s3_bucket}/lake")
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="spotify_catalog.export.lock"):
        lake_export.export(sqlite_engine, meta, lake, DAY, clock=clock, sleep=clock.sleep)
    assert clock.slept == lake_lock.LEASE_SECONDS
    assert (
        f"waiting for the lock s3://{s3_bucket}/{lease} (held by pid 7 on gone) to publish"
        f" s3://{s3_bucket}/lake/<table>/dt={DAY}" in caplog.text
    )
    assert f"took over s3://{s3_bucket}/{lease}: its holder (pid 7 on gone) had not renewed it" in caplog.text
    assert _s3_keys(s3_bucket) == [f"lake/{t}/dt={DAY}/part-00000.parquet" for t in ("items", "links")]


@pytest.mark.usefixtures("coarse_polls")
def test_a_lease_that_is_renewed_is_waited_for_however_long(s3_bucket: str, sqlite_engine: sa.Engine) -> None:
    """A live export renews its lease (a new ETag every 15 s): the waiting one waits three minutes and
    more without taking it over, then takes it when it is deleted."""
    meta = small_metadata()
    fill(sqlite_engine, meta, 4)
    s3, lease = boto3.client("s3"), f"lake/_locks/{DAY}"
    s3.put_object(Bucket=s3_bucket, Key=lease, Body=b'{"owner": "pid 8 on here", "renewal": 0}')
    clock = FakeClock()

    def the_holder_lives(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.slept >= 3 * lake_lock.LEASE_SECONDS:
            s3.delete_object(Bucket=s3_bucket, Key=lease)  # its export is done
        elif clock.slept % (lake_lock.LEASE_SECONDS / 4) == 0:
            renewed = f'{{"owner": "pid 8 on here", "renewal": {clock.now}}}'
            s3.put_object(Bucket=s3_bucket, Key=lease, Body=renewed.encode())

    lake = lake_export.open_lake(f"s3://{s3_bucket}/lake")
    lake_export.export(sqlite_engine, meta, lake, DAY, clock=clock, sleep=the_holder_lives)
    assert clock.slept == 3 * lake_lock.LEASE_SECONDS
    assert _s3_keys(s3_bucket) == [f"lake/{t}/dt={DAY}/part-00000.parquet" for t in ("items", "links")]


def test_a_lease_taken_over_is_lost_and_left_to_its_new_holder(s3_bucket: str) -> None:
    s3, key = boto3.client("s3"), "lake/_locks/x"
    clock = FakeClock()
    held = lake_lock.S3Lease(s3, s3_bucket, key, clock=clock, sleep=clock.sleep)
    held.acquire("x")
    held.check()
    assert held.renew()
    clock.sleep(lake_lock.LEASE_SECONDS - 1)
    held.check()  # still ours
    clock.sleep(1)
    with pytest.raises(SpotifyCatalogError, match=r"lost the lock s3://\S+/lake/_locks/x \(not renewed"):
        held.check()
    s3.put_object(Bucket=s3_bucket, Key=key, Body=b"another export's")
    assert not held.renew()
    assert held.lost
    held.release()
    assert s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"another export's"


class Turns:
    """Stands for the ``threading.Event`` that stops the renewals: each wait moves ``clock`` on by its
    timeout and notes the lease's ETag; the wait after ``turns`` of them says stop."""

    def __init__(self, clock: FakeClock, turns: int, etag: Callable[[], str]) -> None:
        self.clock, self.turns, self.etag = clock, turns, etag
        self.etags: list[str] = []

    def wait(self, timeout: float) -> bool:
        self.clock.sleep(timeout)
        self.etags.append(self.etag())
        return len(self.etags) > self.turns


def test_the_holder_renews_its_lease_every_quarter_lease(s3_bucket: str) -> None:
    s3, key = boto3.client("s3"), "lake/_locks/x"
    clock = FakeClock()
    held = lake_lock.S3Lease(s3, s3_bucket, key, clock=clock, sleep=clock.sleep)
    held.acquire("x")
    turns = Turns(clock, 3, lambda: s3.head_object(Bucket=s3_bucket, Key=key)["ETag"])
    held.keep_renewed(cast(threading.Event, turns))
    assert clock.slept == 4 * lake_lock.LEASE_SECONDS / 4
    assert len(set(turns.etags)) == 4  # three renewals, each a new ETag
    assert held.etag == turns.etags[-1]
    assert held.renewed_at == clock.now - lake_lock.LEASE_SECONDS / 4
    held.check()
    held.release()
    assert _s3_keys(s3_bucket) == []


def test_an_export_whose_lease_went_unrenewed_stops_publishing(
    s3_bucket: str, sqlite_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its lease may be another export's by then: the partitions published so far stay, no other is
    touched, and the command fails."""
    meta = small_metadata()
    fill(sqlite_engine, meta, 4)
    lake = lake_export.open_lake(f"s3://{s3_bucket}/lake")
    lake_export.export(sqlite_engine, meta, lake, DAY)
    clock = FakeClock()
    publish = lake_export.Lake.publish

    def publish_for_a_minute(self: lake_export.Lake, staged: str, final: str) -> None:
        publish(self, staged, final)
        clock.sleep(lake_lock.LEASE_SECONDS)

    monkeypatch.setattr(lake_export.Lake, "publish", publish_for_a_minute)
    with pytest.raises(SpotifyCatalogError, match="lost the lock"):
        lake_export.export(sqlite_engine, meta, lake, DAY, fmt="csv", compression="none", clock=clock)
    assert _s3_keys(s3_bucket) == [
        f"lake/items/dt={DAY}/part-00000.csv",
        f"lake/links/dt={DAY}/part-00000.parquet",
    ]


@contextlib.contextmanager
def _local_lock_held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock at ``path``."""
    code = (
        "import sys, time; from pathlib import Path; from spotify_catalog.export import lock as lake_lock\n"
        "with lake_lock.local_lock(Path(sys.argv[1]), what='x', sleep=time.sleep):\n"
        "    print('held', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "held\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_local_lock_is_waited_for_and_freed_when_its_holder_is_killed(
    tmp_path: Path, sqlite_engine: sa.Engine
) -> None:
    meta = small_metadata()
    fill(sqlite_engine, meta, 4)
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    waited: list[float] = []
    with _local_lock_held_elsewhere(tmp_path / "lake" / lake_lock.LOCKS / DAY.isoformat()) as proc:

        def kill_the_holder(seconds: float) -> None:
            waited.append(seconds)
            proc.kill()  # kill -9: the kernel releases its flock
            proc.wait()

        lake_export.export(sqlite_engine, meta, lake, DAY, sleep=kill_the_holder)
    assert waited == [lake_lock.POLL_SECONDS]
    # the file the killed export left is taken, then removed with its folder
    assert _lake_files(lake) == [f"{t}/dt={DAY}/part-00000.parquet" for t in ("items", "links")]
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == ["items", "links"]


def test_a_lock_file_removed_by_its_holder_just_before_it_is_locked_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export before removes the file as it finishes; one that opened it just then and locks it
    would hold a lock nobody else sees: it takes the new file at the path instead."""
    path = tmp_path / lake_lock.LOCKS / "2026-11-25"
    path.parent.mkdir()
    path.write_text("pid 9 on here")
    flock = lake_lock.fcntl.flock
    calls = []

    def finished_meanwhile(fd: int, operation: int) -> None:
        calls.append(operation)
        if len(calls) == 1:
            path.unlink()
        flock(fd, operation)

    def never_waits(seconds: float) -> None:
        pytest.fail("waited for a lock that nobody holds")

    monkeypatch.setattr(lake_lock.fcntl, "flock", finished_meanwhile)
    with lake_lock.local_lock(path, what="x", sleep=never_waits):
        assert path.read_text().startswith(f"pid {os.getpid()} on ")
    assert len(calls) == 2
    assert not path.parent.exists()
