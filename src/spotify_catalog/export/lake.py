"""The lake's layout: where a lake is (a directory or ``s3://bucket/prefix``), where a partition goes
(``TO/<table>/dt=YYYY-MM-DD/``), and how a staged partition is put in place of the old one, holding
the lock of its date (:mod:`~spotify_catalog.export.lock`)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from spotify_catalog import extras
from spotify_catalog.errors import SpotifyCatalogError, UsageError, first_line
from spotify_catalog.export import lock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

PARTITION = "dt"


def partition_dir(root: str, table: str, snapshot_date: date) -> str:
    return f"{root}/{table}/{PARTITION}={snapshot_date.isoformat()}"


@dataclass(frozen=True)
class Lake:
    """A lake root: ``fs`` and ``root`` (a path in ``fs``: ``bucket/prefix`` on S3), ``uri`` to show;
    ``s3`` is a boto3 client for what pyarrow's filesystem lacks (multipart copies, marker-free deletes)."""

    fs: pafs.FileSystem
    root: str
    uri: str
    s3: S3Client | None = None

    @property
    def is_s3(self) -> bool:
        return self.s3 is not None

    def publish(self, staged: str, final: str) -> None:
        """Put the staged partition directory ``staged`` in place of ``final`` (paths in :attr:`fs`)."""
        if self.s3 is not None:
            _publish_s3(self.s3, staged, final)
        else:
            _publish_local(Path(staged), Path(final))

    def publishing(
        self, snapshot_date: date, *, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> contextlib.AbstractContextManager[lock.Held]:
        """The lock of ``snapshot_date`` in the lake (``TO/_locks/<date>``), held while publishing:
        exports of one date publish one after the other (:mod:`~spotify_catalog.export.lock`)."""
        name = snapshot_date.isoformat()
        what = partition_dir(self.uri.rstrip("/"), "<table>", snapshot_date)
        if self.s3 is not None:
            bucket, _, prefix = self.root.partition("/")
            key = f"{prefix}/{lock.LOCKS}/{name}" if prefix else f"{lock.LOCKS}/{name}"
            return lock.S3Lease(self.s3, bucket, key, clock=clock, sleep=sleep).holding(what)
        return lock.local_lock(Path(self.root) / lock.LOCKS / name, what=what, sleep=sleep)


def _s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _s3_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def s3_filesystem() -> pafs.S3FileSystem:
    """An S3 filesystem from the usual AWS variables; ``AWS_ENDPOINT_URL(_S3)`` for S3-compatible stores."""
    endpoint, region = _s3_endpoint(), _s3_region()
    kwargs: dict[str, Any] = {}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def open_lake(to: str, *, create: bool = True, filesystem: pafs.FileSystem | None = None) -> Lake:
    """Parse ``--to`` (a directory, ``file://`` or ``s3://bucket/prefix``) and check it can be written."""
    parsed = urlparse(to)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UsageError(f"--to {to!r}: an S3 URL needs a bucket (s3://bucket/prefix)")
        try:
            import boto3
        except ModuleNotFoundError as exc:
            raise extras.missing(f"--to {to}", exc) from None
        root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        fs = filesystem or s3_filesystem()
        if create:
            try:
                bucket = fs.get_file_info(parsed.netloc)
            except OSError as exc:
                raise SpotifyCatalogError(f"cannot reach s3://{parsed.netloc}: {first_line(exc)}") from None
            if bucket.type != pafs.FileType.Directory:
                raise UsageError(f"--to {to}: bucket {parsed.netloc!r} does not exist")
        client = boto3.client("s3", endpoint_url=_s3_endpoint(), region_name=_s3_region())
        return Lake(fs=fs, root=root, uri=f"s3://{root}", s3=client)
    if parsed.scheme not in ("", "file") or (parsed.scheme == "" and "://" in to):
        raise UsageError(f"--to {to!r}: give a directory or an s3://bucket/prefix URL")
    path = Path(parsed.path if parsed.scheme == "file" else to).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--to {path}: not a directory")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpotifyCatalogError(f"cannot create {path}: {exc.strerror or exc}") from None
    return Lake(fs=filesystem or pafs.LocalFileSystem(), root=str(path), uri=str(path))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    errno = ctypes.get_errno()
    log.debug("renameat2 exchange unsupported (%s); falling back to two renames", os.strerror(errno))
    return False


def _publish_local(staged: Path, final: Path) -> None:
    """Put the staged partition directory in place of ``final``; the old one is removed after."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        staged.rename(final)
        return
    if not exchange(staged, final):  # two renames: for an instant the partition is absent
        old = staged.with_name(staged.name + ".old")
        try:
            final.rename(old)
            staged.rename(final)
        except BaseException:  # e.g. SIGTERM between the renames: the old partition goes back
            if old.exists() and not final.exists():
                old.rename(final)
            raise
        staged = old
    shutil.rmtree(staged)


def s3_keys(client: S3Client, prefix_path: str) -> list[str]:
    """Keys below ``bucket/prefix/``."""
    bucket, prefix = prefix_path.split("/", 1)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def s3_delete(client: S3Client, bucket: str, keys: Sequence[str]) -> None:
    """Delete ``keys`` of ``bucket``, a thousand a request."""
    for start in range(0, len(keys), 1000):
        chunk: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})


def _publish_s3(client: S3Client, staged: str, final: str) -> None:
    """Copy every staged object over its final key (each copy is atomic, multipart above 5 GB), then
    delete the keys of the partition that the new export did not write."""
    bucket, final_prefix = final.split("/", 1)
    names = {key.rsplit("/", 1)[1]: key for key in s3_keys(client, staged)}
    if not names:  # never empty a partition because the staged files went missing
        raise SpotifyCatalogError(f"the staged files of s3://{final} are gone (removed by another export?)")
    for name, key in sorted(names.items()):
        client.copy({"Bucket": bucket, "Key": key}, bucket, f"{final_prefix}/{name}")
    stale = [k for k in s3_keys(client, final) if k.rsplit("/", 1)[1] not in names]
    s3_delete(client, bucket, stale)
