"""One export at a time publishes a date into a lake: a lock that lives in the destination.

Exports of one date into one place stage their files at once, each in its own staging directory;
publishing (putting the staged partitions in place of the old ones) is done holding the lock of that
date, so the partitions end as if the exports had run one after the other, in the order in which they
took the lock (``docs/lake.md``).

- **Local**: an ``flock`` on the file ``TO/_locks/<date>``, which the kernel releases when the
  holder's process ends, however it ends. The holder removes the file when done (one left by a killed
  export is taken and removed by the next export of that date).
- **S3**: the object ``TO/_locks/<date>``, a lease. It is created with ``If-None-Match: *`` (only one
  export can create it), renewed by its holder every quarter of :data:`LEASE_SECONDS` (a PUT with
  ``If-Match`` on its ETag, so the ETag changes while the holder lives) and deleted with ``If-Match``
  when done. An export that finds it held waits; once the object's ETag has stayed the same for
  :data:`LEASE_SECONDS` on the waiting export's own clock (no clock skew involved), its holder died
  (``kill -9``, power loss) and the lease is taken over with a PUT ``If-Match`` on that ETag. The store
  must support conditional writes (Amazon S3 and moto do).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from spotify_catalog.errors import SpotifyCatalogError, first_line
from spotify_catalog.export.s3_errors import BotoCoreError, ClientError

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

LOCKS = "_locks"  # TO/_locks/<date>: outside every table's location, ignored by Hive-partition readers
LEASE_SECONDS = 60.0  # an S3 lease not renewed for this long belongs to an export that died
POLL_SECONDS = 0.5  # how often a waiting export looks at the lock again


class Held(Protocol):
    """A lock being held: :meth:`check` raises when it is no longer this export's."""

    def check(self) -> None: ...


def _owner() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


class _Flock:
    def check(self) -> None:
        """An ``flock`` is held until released: nothing can take it away."""


@contextlib.contextmanager
def local_lock(path: Path, *, what: str, sleep: Callable[[float], None]) -> Iterator[Held]:
    """Hold the ``flock`` on ``path``, waiting for the export that holds it; the file (and its folder,
    when empty) is removed when done. Without ``fcntl`` (Windows) there is no lock."""
    if sys.platform == "win32":  # pragma: no cover
        yield _Flock()
        return
    fd = _flock(path, what=what, sleep=sleep)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _owner().encode(), 0)
        yield _Flock()
    finally:
        # removed while still held: an export that locks the old file next sees that it is gone
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # _locks, when no other date is being published
        os.close(fd)  # releases the flock


def _flock(path: Path, *, what: str, sleep: Callable[[float], None]) -> int:
    """An open descriptor of ``path`` holding its ``flock``: created if missing, and locked only if it
    is still the file at ``path`` (the export before may have removed it meanwhile)."""
    waited = False
    while True:
        path.parent.mkdir(exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder was removed meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not waited:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace") or "another export"
                log.info("waiting for the lock %s (held by %s) to publish %s", path, holder, what)
                waited = True
            os.close(fd)
            sleep(POLL_SECONDS)
            continue
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # a file its holder removed when done: take the one at path now


def _condition_failed(exc: ClientError) -> bool:
    """412 (the condition failed), 409 (a concurrent conditional write won) or 404 (``If-Match`` on
    an object that is gone)."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status in (404, 409, 412)


class S3Lease:
    """The lease on ``s3://bucket/key`` (module docstring). ``clock`` (monotonic seconds) and ``sleep``
    are injected; the renewals run in a thread of their own while the lease is held."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        lease: float = LEASE_SECONDS,
    ) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.clock, self.sleep, self.lease = clock, sleep, lease
        self.token = uuid.uuid4().hex
        self.etag: str | None = None
        self.renewed_at = 0.0  # by self.clock, taken before the request that renewed the lease
        self.lost = False
        self._renewals = 0

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _body(self) -> bytes:
        """Unique for every write (token, renewal count), so every renewal changes the ETag."""
        self._renewals += 1
        return json.dumps({"owner": _owner(), "token": self.token, "renewal": self._renewals}).encode()

    def _put(self, **condition: Any) -> str | None:
        """A conditional PUT of the lease: its ETag, or None when the condition failed."""
        try:
            answer = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(), **condition)
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise
        return answer["ETag"]

    def _holder(self) -> tuple[str, str] | None:
        """The current lease's ETag and owner, or None when there is none."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if _condition_failed(exc):
                return None
            raise
        body = answer["Body"].read()
        try:
            owner = str(json.loads(body)["owner"])
        except (ValueError, KeyError, TypeError):
            owner = "another export"
        return answer["ETag"], owner

    def acquire(self, what: str) -> None:
        """Take the lease: create it, or wait until its holder deletes it or stops renewing it (one
        GET per :data:`POLL_SECONDS` while waiting)."""
        seen: tuple[str, float] | None = None  # the holder's ETag, and when it was first seen so
        waited = False
        while True:
            started = self.clock()
            holder = self._holder()
            if holder is None:
                etag = self._put(IfNoneMatch="*")
            else:
                etag = None
                if seen is None or seen[0] != holder[0]:
                    seen = (holder[0], started)
                elif started - seen[1] >= self.lease:
                    etag = self._put(IfMatch=holder[0])
                    if etag is not None:
                        log.warning(
                            "took over %s: its holder (%s) had not renewed it for %.0f s",
                            self.uri,
                            holder[1],
                            started - seen[1],
                        )
                if etag is None and not waited:
                    log.info("waiting for the lock %s (held by %s) to publish %s", self.uri, holder[1], what)
                    waited = True
            if etag is not None:
                self.etag, self.renewed_at = etag, started
                return
            if holder is not None:  # else another export created it meanwhile: look again at once
                self.sleep(POLL_SECONDS)

    def renew(self) -> bool:
        """Renew the lease (PUT ``If-Match`` on its ETag); False when it is no longer ours."""
        started = self.clock()
        etag = self._put(IfMatch=self.etag)
        if etag is None:
            self.lost = True
            log.error("%s was taken over by another export", self.uri)
            return False
        self.etag, self.renewed_at = etag, started
        return True

    def check(self) -> None:
        """Raise unless the lease is still this export's: renewed within :attr:`lease`, never lost."""
        if self.lost or self.clock() - self.renewed_at >= self.lease:
            raise SpotifyCatalogError(
                f"lost the lock {self.uri} (not renewed for {self.lease:.0f} s); stopped publishing"
            )

    def release(self) -> None:
        """Delete the lease if it is still ours (``If-Match``). Best effort: a lease left behind is
        taken over once unrenewed for :attr:`lease`."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=self.etag or "")
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and _condition_failed(exc):
                log.warning("%s had been taken over by another export; left to it", self.uri)
            else:
                log.warning("could not remove %s: %s", self.uri, first_line(exc))

    @contextlib.contextmanager
    def holding(self, what: str) -> Iterator[Held]:
        """Hold the lease (:meth:`acquire`, waiting to publish ``what``), renewed in a thread of its
        own until done, then released."""
        self.acquire(what)
        stop = threading.Event()
        renewing = threading.Thread(target=self.keep_renewed, args=(stop,), name="lake-lease", daemon=True)
        renewing.start()
        try:
            yield self
        finally:
            stop.set()
            renewing.join()
            self.release()

    def keep_renewed(self, stop: threading.Event) -> None:
        """Renew every quarter lease until ``stop`` is set or the lease is lost; a failed request is
        tried again at the next turn (:meth:`check` notices a lease that went unrenewed too long)."""
        while not stop.wait(self.lease / 4):
            try:
                if not self.renew():
                    return
            except (BotoCoreError, ClientError) as exc:
                log.warning("could not renew %s: %s", self.uri, first_line(exc))
