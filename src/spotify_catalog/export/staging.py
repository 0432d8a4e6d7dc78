"""Staging: where an export writes its partitions first (``TO/_staging/<run>/``, ignored by
Hive-partition readers as every name starting with ``_``), removed however the export ends, and what
exports that died left behind, removed by the next one."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

from spotify_catalog.errors import first_line
from spotify_catalog.export.lake import Lake, s3_delete, s3_keys
from spotify_catalog.export.s3_errors import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import MultipartUploadTypeDef

log = logging.getLogger(__name__)

STAGING = "_staging"
STALE_STAGING = timedelta(hours=1)  # staging untouched this long was left by an export that died


def staging_root(lake: Lake, snapshot_date: date) -> str:
    """A staging directory of its own for one export: ``TO/_staging/<date>-<random>``."""
    return f"{lake.root}/{STAGING}/{snapshot_date.isoformat()}-{uuid4().hex[:12]}"


def remove_staging(lake: Lake, root: str) -> None:
    """Remove the staging directory ``root`` (on S3: its objects, after aborting its multipart
    uploads). Best effort: a failed removal leaves only hidden ``_staging`` objects behind (removed by a
    later export once they are an hour old)."""
    try:
        if lake.s3 is not None:
            bucket, prefix = root.split("/", 1)
            for upload in _s3_uploads(lake.s3, bucket, prefix + "/"):
                _s3_abort(lake.s3, bucket, upload)
            s3_delete(lake.s3, bucket, s3_keys(lake.s3, root))
        else:
            shutil.rmtree(root, ignore_errors=True)
            with contextlib.suppress(OSError):
                Path(root).parent.rmdir()  # _staging itself, when no other export runs
    except (OSError, BotoCoreError, ClientError) as exc:
        log.warning("could not remove the staging area %s: %s", root, first_line(exc))


def _s3_uploads(client: S3Client, bucket: str, prefix: str) -> list[MultipartUploadTypeDef]:
    """Incomplete multipart uploads of keys starting with ``prefix``."""
    pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
    return [upload for page in pages for upload in page.get("Uploads", [])]


def _s3_abort(client: S3Client, bucket: str, upload: MultipartUploadTypeDef) -> None:
    client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def _s3_upload_activity(
    client: S3Client, bucket: str, upload: MultipartUploadTypeDef, cutoff: datetime
) -> datetime:
    """When an upload last moved: its newest part, or when it was initiated (parts are listed only for
    an upload initiated before ``cutoff``: a live upload of a large file can be older than that)."""
    latest = upload["Initiated"]
    if latest < cutoff:
        pages = client.get_paginator("list_parts").paginate(
            Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        latest = max([latest, *(part["LastModified"] for page in pages for part in page.get("Parts", []))])
    return latest


def _newest_mtime(path: Path) -> float:
    """The newest modification time of ``path`` and everything below it (a file being written is new)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest


def remove_stale_staging(lake: Lake, *, now: datetime, older_than: timedelta = STALE_STAGING) -> list[str]:
    """Remove what exports that died (``kill -9``, power loss) left behind: every entry of
    ``TO/_staging/`` in which nothing changed for ``older_than`` (locally: the newest modification time
    of anything inside; on S3: the newest ``LastModified`` of its objects and parts), and on S3 every
    incomplete multipart upload under the lake's prefix that has not moved for that long. An export
    still running keeps writing and is left alone. Best effort (failures are logged); returns what was
    removed."""
    removed: list[str] = []
    cutoff = now - older_than
    try:
        if lake.s3 is not None:
            removed = _remove_stale_s3(lake.s3, lake.root, cutoff)
        else:
            _remove_stale_local(Path(lake.root) / STAGING, cutoff, removed)
    except (OSError, BotoCoreError, ClientError) as exc:
        log.warning("could not remove stale staging in %s: %s", lake.uri, first_line(exc))
    for what in removed:
        log.info("removed %s, left by an export that did not finish", what)
    return removed


def _remove_stale_local(staging: Path, cutoff: datetime, removed: list[str]) -> None:
    """Remove the entries of ``staging`` unchanged since ``cutoff``, each added to ``removed``."""
    entries = sorted(staging.iterdir()) if staging.is_dir() else []
    for entry in entries:
        try:
            if _newest_mtime(entry) >= cutoff.timestamp():
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:  # another export removed it meanwhile
            continue
        removed.append(str(entry))


def _remove_stale_s3(client: S3Client, root: str, cutoff: datetime) -> list[str]:
    bucket, _, prefix = root.partition("/")
    lake_prefix = f"{prefix}/" if prefix else ""
    staging_prefix = f"{lake_prefix}{STAGING}/"
    newest: dict[str, datetime] = {}  # staging run -> when anything in it last changed
    keys: defaultdict[str, list[str]] = defaultdict(list)
    run_uploads: defaultdict[str, list[MultipartUploadTypeDef]] = defaultdict(list)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=staging_prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            run = obj["Key"][len(staging_prefix) :].split("/", 1)[0]
            keys[run].append(obj["Key"])
            newest[run] = max(newest.get(run, obj["LastModified"]), obj["LastModified"])
    removed: list[str] = []
    for upload in _s3_uploads(client, bucket, lake_prefix):
        activity = _s3_upload_activity(client, bucket, upload, cutoff)
        if upload["Key"].startswith(staging_prefix):
            run = upload["Key"][len(staging_prefix) :].split("/", 1)[0]
            run_uploads[run].append(upload)
            newest[run] = max(newest.get(run, activity), activity)
        elif activity < cutoff:  # e.g. a multipart copy of a publish that died
            _s3_abort(client, bucket, upload)
            removed.append(f"the upload of s3://{bucket}/{upload['Key']}")
    for run, last in sorted(newest.items()):
        if last >= cutoff:
            continue
        for upload in run_uploads[run]:
            _s3_abort(client, bucket, upload)
        s3_delete(client, bucket, keys[run])
        removed.append(f"s3://{bucket}/{staging_prefix}{run}")
    return removed
