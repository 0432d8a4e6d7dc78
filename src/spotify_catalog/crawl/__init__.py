"""The crawler: artists in, a complete catalog out, with the fewest requests, resumable.

The crawl runs in phases; each phase queues its work as tasks in the database (``_tasks``) and
drains them, one request per unit of work; each response is written whole with its tasks marked done
(the responses that arrived together share one transaction), so a rerun continues where a stopped or
killed run left off:

1. resolve: names -> one search each (the artist in the result is complete); ids -> ``/artists?ids=``
   in chunks of 50 (extended) or ``/artists/{id}`` (development, or the mode not known yet);
2. (depth albums+) each artist's discography pages, as large as the mode allows;
3. (depth tracks+) full albums (chunks of 20 / one each), each with its first 50 tracks, and in the
   same unit of work the ``/albums/{id}/tracks`` pages of the rest, so an album is written whole;
4. (depth track-details) full tracks (chunks of 50 / one each).

A task finished within ``refresh_after`` is not done again. The minimum request count this reaches
is written down in docs/crawl.md.

A ``429 QUOTA_EXCEEDED`` parks only its quota bucket (:mod:`~spotify_catalog.crawl.parking`, kept in the
account's ledger): the tasks whose requests go to it wait, every other task goes on, and the run stops
(exit 75) when nothing else is left, naming each parked bucket and its time.

The API mode, when not given, is read from the first full artist (album, track) object a response
carries: Development Mode leaves out ``popularity`` and ``followers``. So learning it costs no request
of its own. A given mode (``--mode``) that the answers contradict stops the run (:class:`WrongModeError`).
The mode is saved in ``_state`` in a transaction of its own the moment it is known; when it changes,
tasks that failed under the old one are pending again.

The crawl leaves the process's cycle collector alone; :func:`collecting_less` tunes it for a crawl
(the command line runs its crawls inside it).
"""

from spotify_catalog.crawl.gc_tuning import GC_THRESHOLDS, collecting_less
from spotify_catalog.crawl.mode import check_mode
from spotify_catalog.crawl.options import (
    ACCOUNT_STATE_KEY,
    ALBUM_TRACKS_PAGE,
    DEFAULT_GROUPS,
    DEFAULT_REFRESH,
    MODE_STATE_KEY,
    NOT_FOUND,
    OPTIONS_STATE_KEY,
    WITH_CHOICES,
    CrawlOptions,
    CrawlResult,
    Depth,
    Progress,
)
from spotify_catalog.crawl.run import Crawler
from spotify_catalog.crawl.units import observed_mode, response_problem

__all__ = [
    "ACCOUNT_STATE_KEY",
    "ALBUM_TRACKS_PAGE",
    "DEFAULT_GROUPS",
    "DEFAULT_REFRESH",
    "GC_THRESHOLDS",
    "MODE_STATE_KEY",
    "NOT_FOUND",
    "OPTIONS_STATE_KEY",
    "WITH_CHOICES",
    "CrawlOptions",
    "CrawlResult",
    "Crawler",
    "Depth",
    "Progress",
    "check_mode",
    "collecting_less",
    "observed_mode",
    "response_problem",
]
