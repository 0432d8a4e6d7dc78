"""An export leaves nothing behind however it ends (an error, Ctrl-C, SIGTERM): no staging directory,
no staging objects, no incomplete multipart upload. And every export removes what exports that died
left behind (``kill -9``): staging and uploads in which nothing moved for an hour."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa
from lake_helpers import fill, sample_rows, small_metadata

from spotify_catalog import export as lake_export
from spotify_catalog.errors import SpotifyCatalogError
from spotify_catalog.export import lake as lake_layout
from spotify_catalog.storage.schema import metadata, tracks

DAY = date(2026, 11, 25)


def _tracks_database(path: Path, n: int, *, raw_bytes: int = 0) -> str:
    """A SQLite database of the real schema holding ``n`` tracks (copies of one generated row with
    their own ids), each with ``raw_bytes`` of incompressible text in ``raw``; its URL."""
    engine = sa.create_engine(f"sqlite:///{path}")
    fill(engine, metadata, 0)
    template = sample_rows(tracks, 1, dialect="sqlite", seed=3)[0]
    payload = os.urandom(raw_bytes * 3 // 4)

    def row(i: int) -> dict[str, object]:
        values = {**template, "id": f"{i:022d}"}
        if raw_bytes:  # distinct per row, so compression cannot fold it
            values["raw"] = base64.b64encode(payload[i % 97 :] + i.to_bytes(4, "big")).decode()
        return values

    with engine.begin() as conn:
        for start in range(0, n, 5_000):
            conn.execute(tracks.insert(), [row(i) for i in range(start, min(n, start + 5_000))])
    engine.dispose()
    return f"sqlite:///{path}"


def _export_command(db_url: str, to: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "spotify_catalog", "--quiet", "export", "--db", db_url, "--to", to,
        "--tables", "tracks", "--snapshot-date", DAY.isoformat(), "--batch-rows", "1",
        "--row-group-rows", "1", *extra,
    ]  # fmt: skip


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, f"the export ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no {what} within 60 s"
        time.sleep(0.005)


# ------------------------------------------------------------------------------------------ local


@pytest.mark.slow
def test_sigterm_during_a_local_export_leaves_no_staging(tmp_path: Path) -> None:
    db_url = _tracks_database(tmp_path / "catalog.db", 5_000)  # ~10 s to export: stopped long before
    lake = tmp_path / "lake"
    proc = subprocess.Popen(
        _export_command(db_url, str(lake)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def staged_rows() -> bool:  # row groups already in the staged file: the export is midway
        return any(p.stat().st_size > 10_000 for p in lake.glob("_staging/*/tracks/dt=*/part-00000.parquet"))

    _wait_for(staged_rows, proc, "staged rows")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (143, "", "Interrupted by SIGTERM.\n")
    assert list(lake.iterdir()) == []  # no _staging, no partition


def _age(path: Path, seconds: float) -> None:
    """Set the modification time of ``path`` and everything below it to ``seconds`` ago."""
    when = time.time() - seconds
    for item in [path, *path.rglob("*")]:
        os.utime(item, (when, when))


def test_staging_left_by_dead_exports_is_removed_after_an_hour(
    sqlite_engine: sa.Engine, tmp_path: Path
) -> None:
    meta = small_metadata()
    fill(sqlite_engine, meta, 5)
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    staging = tmp_path / "lake" / "_staging"
    dead, running, stray = staging / "2026-11-24-dead", staging / "2026-11-25-running", staging / "stray.tmp"
    for run in (dead, running):
        (run / "items" / "dt=2026-11-24").mkdir(parents=True)
        (run / "items" / "dt=2026-11-24" / "part-00000.parquet").write_bytes(b"PAR1")
    stray.write_bytes(b"x")
    _age(dead, 2 * 3600)
    _age(stray, 2 * 3600)
    _age(running, 60)
    _age(running / "items", 2 * 3600)  # an old directory, but its file is still being written: alive

    lake_export.export(sqlite_engine, meta, lake, DAY)

    assert sorted(p.name for p in staging.iterdir()) == ["2026-11-25-running"]
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == ["_staging", "items", "links"]


def test_remove_stale_staging_takes_the_clock(tmp_path: Path) -> None:
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    run = tmp_path / "lake" / "_staging" / "2026-11-25-abc"
    run.mkdir(parents=True)
    now = datetime.now(UTC)
    assert lake_export.remove_stale_staging(lake, now=now) == []
    assert lake_export.remove_stale_staging(lake, now=now + timedelta(minutes=59)) == []
    assert lake_export.remove_stale_staging(lake, now=now + timedelta(minutes=61)) == [str(run)]
    assert not run.exists()


# ------------------------------------------------------------------------------------------ S3


def _uploads(bucket: str) -> list[str]:
    return [u["Key"] for u in boto3.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def _keys(bucket: str) -> list[str]:
    return sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.mark.slow
def test_sigterm_during_an_s3_upload_leaves_no_staging_and_no_upload(s3_bucket: str, tmp_path: Path) -> None:
    """The Parquet file is large enough for a multipart upload; SIGTERM while it is under way."""
    db_url = _tracks_database(tmp_path / "catalog.db", 3_000, raw_bytes=12_000)  # ~36 MB to upload
    proc = subprocess.Popen(
        _export_command(db_url, f"s3://{s3_bucket}/lake", "--with-raw"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: bool(_uploads(s3_bucket)), proc, "multipart upload")
    assert _uploads(s3_bucket)[0].startswith("lake/_staging/")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (143, "", "Interrupted by SIGTERM.\n")
    assert _keys(s3_bucket) == []
    assert _uploads(s3_bucket) == []


def test_a_failure_mid_upload_leaves_no_staging_and_no_upload(
    s3_bucket: str, sqlite_engine: sa.Engine
) -> None:
    meta = small_metadata()
    fill(sqlite_engine, meta, 40)
    lake = lake_export.open_lake(f"s3://{s3_bucket}/lake")
    staged: list[str] = []

    def fail_in_links(table: str, rows: int) -> None:
        if table == "links" and rows >= 20:
            staged.extend(_keys(s3_bucket))
            raise KeyboardInterrupt  # what SIGTERM raises too (errors.Terminated)

    with pytest.raises(KeyboardInterrupt):
        lake_export.export(
            sqlite_engine, meta, lake, DAY, batch_rows=5, row_group_rows=5, progress=fail_in_links
        )
    assert any("/_staging/" in k for k in staged)
    assert _keys(s3_bucket) == []
    assert _uploads(s3_bucket) == []


def test_stale_staging_and_uploads_on_s3_are_removed_after_an_hour(
    s3_bucket: str, sqlite_engine: sa.Engine
) -> None:
    """moto stamps objects and parts with the real time (and every upload as initiated in 2010, so each
    upload here gets a part, whose time counts): the export is given a clock two hours on."""
    meta = small_metadata()
    fill(sqlite_engine, meta, 5)
    s3 = boto3.client("s3")
    dead_key = "lake/_staging/2026-11-24-dead/items/dt=2026-11-24/part-00000.parquet"
    s3.put_object(Bucket=s3_bucket, Key=dead_key, Body=b"PAR1")
    for key in (
        "lake/_staging/2026-11-24-dead/links/dt=2026-11-24/part-00000.parquet",
        "lake/items/dt=2026-11-20/part-00000.parquet",  # a multipart copy of a publish that died
        "elsewhere/big.bin",  # not the lake's
    ):
        upload = s3.create_multipart_upload(Bucket=s3_bucket, Key=key)["UploadId"]
        s3.upload_part(Bucket=s3_bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part")
    lake = lake_export.open_lake(f"s3://{s3_bucket}/lake")

    lake_export.export(sqlite_engine, meta, lake, DAY)  # an hour has not passed: all kept
    assert dead_key in _keys(s3_bucket)
    assert len(_uploads(s3_bucket)) == 3

    later = datetime.now(UTC) + timedelta(hours=2)
    lake_export.export(sqlite_engine, meta, lake, DAY, now=lambda: later)
    assert _keys(s3_bucket) == [f"lake/{t}/dt=2026-11-25/part-00000.parquet" for t in ("items", "links")]
    assert _uploads(s3_bucket) == ["elsewhere/big.bin"]


def test_staging_removed_under_a_running_export_never_empties_a_partition(
    s3_bucket: str, sqlite_engine: sa.Engine
) -> None:
    """Should another export take this one's staging for dead (nothing moved in it for an hour), the
    publish stops instead of replacing the partition with nothing."""
    meta = small_metadata()
    fill(sqlite_engine, meta, 10)
    lake = lake_export.open_lake(f"s3://{s3_bucket}/lake")
    lake_export.export(sqlite_engine, meta, lake, DAY)
    before = _keys(s3_bucket)

    def staging_vanishes(table: str, rows: int) -> None:
        if table == "links" and rows == 10:  # every table staged, nothing published yet
            staged = [k for k in _keys(s3_bucket) if "/_staging/" in k]
            boto3.client("s3").delete_objects(
                Bucket=s3_bucket, Delete={"Objects": [{"Key": k} for k in staged]}
            )

    with pytest.raises(SpotifyCatalogError, match=r"staged files of .* are gone"):
        lake_export.export(sqlite_engine, meta, lake, DAY, progress=staging_vanishes)
    assert _keys(s3_bucket) == before


def test_an_interrupt_between_the_two_renames_puts_the_old_partition_back(
    sqlite_engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``RENAME_EXCHANGE`` is missing a partition is replaced by two renames; SIGTERM between
    them must not leave the partition absent (the staging clean-up would delete the old one)."""
    meta = small_metadata()
    fill(sqlite_engine, meta, 5, seed=1)
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    lake_export.export(sqlite_engine, meta, lake, DAY)
    before = (tmp_path / "lake" / "items" / "dt=2026-11-25" / "part-00000.parquet").read_bytes()

    monkeypatch.setattr(lake_layout, "exchange", lambda a, b: False)
    rename = Path.rename

    def interrupted_rename(self: Path, target: Path) -> Path:
        if "/_staging/" in str(self) and not self.name.endswith(".old"):  # the second rename
            raise KeyboardInterrupt
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", interrupted_rename)
    fill(sqlite_engine, meta, 9, seed=2)
    with pytest.raises(KeyboardInterrupt):
        lake_export.export(sqlite_engine, meta, lake, DAY)
    monkeypatch.undo()
    assert (tmp_path / "lake" / "items" / "dt=2026-11-25" / "part-00000.parquet").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == ["items", "links"]
