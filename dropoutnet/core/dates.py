"""Days: the one parser of a bizdate, or of any day a user names on the command line.

A bizdate is a day whose data is complete, so it is a real calendar date and not after today
(UTC).  ``YYYY-MM-DD`` is the form users type; ``YYYYMMDD`` (a model version, Airflow's
``ds_nodash``) is read too.
"""

from __future__ import annotations

import datetime as dt

FORMATS = ("%Y-%m-%d", "%Y%m%d")


class BizdateError(ValueError):
    """A day that is not a real date, or lies in the future; the message gives the form."""


def today_utc() -> dt.date:
    """Today's date in UTC, the calendar every bizdate is counted in."""
    return dt.datetime.now(dt.timezone.utc).date()


def parse_bizdate(value: str | dt.date, today: dt.date | None = None,
                  what: str = "bizdate") -> dt.date:
    """``value`` as a day: a real calendar date ``YYYY-MM-DD`` (or ``YYYYMMDD``), not after
    ``today`` (UTC); anything else raises :class:`BizdateError` naming ``what`` it was."""
    today = today or today_utc()
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        day = value
    else:
        text = str(value).strip()
        day = None
        for fmt in FORMATS:
            try:
                day = dt.datetime.strptime(text, fmt).date()
                break
            except ValueError:
                continue
        if day is None:
            raise BizdateError(f"{what} {text!r} is not a real date; use YYYY-MM-DD, for "
                               f"example {(today - dt.timedelta(days=1)).isoformat()}")
    if day > today:
        raise BizdateError(f"{what} {day.isoformat()} is after today ({today.isoformat()} UTC): "
                           f"use a day whose data is complete, "
                           f"{(today - dt.timedelta(days=1)).isoformat()} at the latest")
    return day
