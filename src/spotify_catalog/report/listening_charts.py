"""The charts of the Listening section (a :class:`~spotify_catalog.report.listening.Listening`), one
function each, built as :mod:`~spotify_catalog.report.charts` builds the others: a Vega-Lite
specification and its numbers as a table, or ``None`` when the data has none."""

from __future__ import annotations

from typing import Any

from spotify_catalog.report.charts import Chart, top_artists_chart, vl_axis, vl_bar, vl_spec
from spotify_catalog.report.listening import SAVED, TOP_PLAYED, Listening


def listening_charts(listening: Listening) -> list[Chart]:
    """The charts of the Listening section that its data has."""
    makers = (plays_per_day_chart, plays_per_hour_chart, top_played_chart, saved_per_month_chart)
    return [chart for make in makers if (chart := make(listening)) is not None]


def _by_user(listening: Listening) -> dict[str, Any]:
    """The colour of a user's plays; one legend entry a user, in the order of their ids."""
    names = list(listening.users.values())
    return {"field": "user", "type": "nominal", "title": "user", "sort": names}


def plays_per_day_chart(listening: Listening) -> Chart | None:
    """Plays per UTC day of the period, stacked by user."""
    if not listening.plays_per_day:
        return None
    users = listening.users
    rows = [(day, users.get(user, user), n) for day, user, n in listening.plays_per_day]
    spec = vl_spec(
        "Plays per day",
        [{"day": day, "user": user, "plays": n} for day, user, n in rows],
        subtitle=_period(listening),
        mark=vl_bar(),
        encoding={
            "x": vl_axis("day (UTC)", "temporal", field="day", timeUnit="utcyearmonthdate"),
            "y": vl_axis("plays", "quantitative", field="plays", stack=True),
            "color": _by_user(listening),
        },
    )
    return Chart("plays-per-day", "Plays per day", spec, ("day (UTC)", "user", "plays"), rows)


def plays_per_hour_chart(listening: Listening) -> Chart | None:
    """Plays of the period per UTC hour of the day, stacked by user."""
    if not listening.plays_per_hour:
        return None
    users = listening.users
    rows = [(f"{hour:02d}:00", users.get(user, user), n) for hour, user, n in listening.plays_per_hour]
    spec = vl_spec(
        "Plays per hour of the day",
        [{"hour": hour, "user": user, "plays": n} for hour, user, n in rows],
        subtitle=f"the hour (UTC) each play ended; {_period(listening)}",
        mark=vl_bar(),
        encoding={
            "x": vl_axis(
                "hour of the day (UTC)",
                "ordinal",
                field="hour",
                scale={"domain": [f"{h:02d}:00" for h in range(24)]},
                axis={"labelAngle": -45},
            ),
            "y": vl_axis("plays", "quantitative", field="plays", stack=True),
            "color": _by_user(listening),
        },
    )
    return Chart("plays-per-hour", "Plays per hour of the day", spec, ("hour (UTC)", "user", "plays"), rows)


def top_played_chart(listening: Listening) -> Chart | None:
    """The artists credited on the most plays of the period."""
    return top_artists_chart("top-artists-plays", listening.top_played, "plays", TOP_PLAYED)


def saved_per_month_chart(listening: Listening) -> Chart | None:
    """Saved tracks, albums, shows and episodes by the UTC month they were added, stacked by kind."""
    if not listening.saved_per_month:
        return None
    spec = vl_spec(
        "Saved per month",
        [{"month": month, "kind": kind, "items": n} for month, kind, n in listening.saved_per_month],
        subtitle="what is in the library now, by the month it was added (added_at, UTC)",
        mark=vl_bar(),
        encoding={
            "x": vl_axis("month added (UTC)", "temporal", field="month", timeUnit="utcyearmonth"),
            "y": vl_axis("items saved", "quantitative", field="items", stack=True),
            "color": {"field": "kind", "type": "nominal", "title": "saved", "sort": list(SAVED)},
        },
    )
    columns = ("month (UTC)", "saved", "items")
    return Chart("saved-per-month", "Saved per month", spec, columns, listening.saved_per_month)


def _period(listening: Listening) -> str:
    """The days charted: from the period's first day to the newest play's."""
    if listening.period_start is None or listening.last_play is None:
        return ""
    first = listening.first_play or listening.period_start
    start, end = max(listening.period_start, first).date(), listening.last_play.date()
    return f"{start.isoformat()} to {end.isoformat()}"
