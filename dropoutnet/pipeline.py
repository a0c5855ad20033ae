"""One function per task of the daily DAG, in order; plain Python, testable without Airflow.

Each task takes the bizdate (``YYYY-MM-DD``) and the pipeline config path, does exactly that
bizdate's work idempotently (a rerun replaces its outputs) and returns a small JSON-able dict
that Airflow keeps as the task's XCom and the CLI prints.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

log = logging.getLogger(__name__)

TASKS = ("samples", "train", "export", "user_embeddings", "item_embeddings", "evaluate", "publish")


class BizdateError(ValueError):
    """A bizdate that is not a real date or lies in the future."""


def parse_bizdate(value: str | dt.date, today: dt.date | None = None) -> dt.date:
    """Validate a bizdate: a real calendar date ``YYYY-MM-DD`` (or ``YYYYMMDD``), not after today."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        day = value
    else:
        text = str(value).strip()
        day = None
        for fmt in ("%Y-%m-%d", "%Y%m%d"):
            try:
                day = dt.datetime.strptime(text, fmt).date()
                break
            except ValueError:
                continue
        if day is None:
            raise BizdateError(f"bizdate {text!r} is not a real date; use YYYY-MM-DD, "
                               "for example 2026-11-28")
    today = today or dt.datetime.now(dt.timezone.utc).date()
    if day > today:
        raise BizdateError(f"bizdate {day.isoformat()} is after today ({today.isoformat()}): "
                           "a bizdate is a day whose data is complete")
    return day


def resolve_bizdate(param: str | None, data_interval_start: dt.datetime | None,
                    logical_date: dt.datetime | None = None) -> str:
    """The bizdate of a DAG run: the ``bizdate`` param when given, else the run's data interval.

    The DAG uses a data-interval timetable, so a scheduled or backfilled run's
    ``data_interval_start`` *is* the day it processes.  A manual run without a param has no
    data interval of its own; it then processes yesterday (UTC).
    """
    if param:
        return parse_bizdate(param).isoformat()
    start = data_interval_start or logical_date
    if start is not None:
        return parse_bizdate(start.date() if isinstance(start, dt.datetime) else start).isoformat()
    return (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()


def _not_yet(task: str, bizdate: str) -> dict[str, Any]:
    day = parse_bizdate(bizdate)
    log.info("task %s for bizdate %s (stub)", task, day)
    return {"task": task, "bizdate": day.isoformat()}


def samples(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    return _not_yet("samples", bizdate)


def train(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    return _not_yet("train", bizdate)


def export(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    return _not_yet("export", bizdate)


def user_embeddings(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    return _not_yet("user_embeddings", bizdate)


def item_embeddings(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    return _not_yet("item_embeddings", bizdate)


def evaluate(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    return _not_yet("evaluate", bizdate)


def publish(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    return _not_yet("publish", bizdate)
