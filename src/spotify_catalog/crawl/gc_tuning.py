"""The cycle collector tuned for a crawl, for the program that runs it to opt into.

A crawl's parsed answers are thousands of short-lived lists and dicts each, freed by reference
counting; with CPython's default thresholds the cycle collector runs about 3,000 times a crawl and
takes a fifth of its CPU (docs/performance.md). The thresholds belong to the whole process, so the
library leaves them alone: the command line wraps its crawls in :func:`collecting_less`, and a program
that runs :class:`~spotify_catalog.crawl.Crawler` itself may do the same::

    with collecting_less():
        Crawler(engine, client, options).run()
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GC_THRESHOLDS = (50_000, 20, 10)
"""The cycle collector's thresholds while a crawl runs (CPython's default: 700, 10, 10)."""

_lock = threading.Lock()
_crawls = 0  # crawls of this process inside collecting_less()
_before = gc.get_threshold()


@contextmanager
def collecting_less() -> Iterator[None]:
    """Raise the cycle collector's thresholds to :data:`GC_THRESHOLDS` (never lower them) while at
    least one crawl of this process runs inside it; what they were comes back when the last one ends.
    Collection turned off (a first threshold of 0) stays off."""
    global _crawls, _before
    with _lock:
        if _crawls == 0:
            _before = gc.get_threshold()
            if _before[0] > 0:
                gc.set_threshold(*map(max, _before, GC_THRESHOLDS))
        _crawls += 1
    try:
        yield
    finally:
        with _lock:
            _crawls -= 1
            if _crawls == 0:
                gc.set_threshold(*_before)
