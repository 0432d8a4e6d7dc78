"""``report``: what a crawl database holds and how its crawl went, as one self-contained HTML page
(docs/report.md).

- :mod:`.data`: :func:`collect` reads the database (read only) into a :class:`Report`, aggregated in SQL;
- :mod:`.sql`: the SQL pieces the sections share (UTC date, month and hour per dialect, top artists);
- :mod:`.listening`: the Listening section's data (a user's own data, ``crawl --me``);
- :mod:`.charts`: the Vega-Lite charts of a report, one function each (:mod:`.listening_charts`: the
  Listening section's);
- :mod:`.page`: :func:`render`, the HTML page (Jinja2 templates in ``templates/``);
- :mod:`.javascript`: :func:`vega_javascript`, the chart library inlined in the page, cached.
"""

from spotify_catalog.report.charts import (
    OPEN_SPOTIFY,
    Chart,
    Link,
    catalog_charts,
    crawl_charts,
    extended_charts,
)
from spotify_catalog.report.data import (
    ALBUM_SIZE_CAP,
    DURATION_BUCKET_MS,
    DURATION_CAP_MS,
    FOLLOWER_BOUNDS,
    MARKET_LISTS,
    RECENT_RUNS,
    RESOLUTIONS,
    SAMPLES,
    TOP,
    Report,
    collect,
)
from spotify_catalog.report.javascript import forget_loaded_javascript, vega_javascript
from spotify_catalog.report.page import render

__all__ = [
    "ALBUM_SIZE_CAP",
    "DURATION_BUCKET_MS",
    "DURATION_CAP_MS",
    "FOLLOWER_BOUNDS",
    "MARKET_LISTS",
    "OPEN_SPOTIFY",
    "RECENT_RUNS",
    "RESOLUTIONS",
    "SAMPLES",
    "TOP",
    "Chart",
    "Link",
    "Report",
    "catalog_charts",
    "collect",
    "crawl_charts",
    "extended_charts",
    "forget_loaded_javascript",
    "render",
    "vega_javascript",
]
