"""Online metrics: what users did with the lists recall served, per version, arm and channel.

For a period (a bizdate: the DAG's ``online_metrics`` task; an experiment: ``dropoutnet
experiment status``), from the served log and the raw events alone (so any bizdate can be
computed, backfills included), per group (version, arm, experiment, channel):

* **requests**, **users**, **items served**;
* **CTR** (served items credited with a positive event / items served) and **CTR by
  position** (positions past ``MAX_POSITION`` pooled);
* **served recall**: of the users' positive events within ``online.attribution_hours`` after
  one of their lists, the share credited to an item of those lists;
* **new-item reach**: of the items created in the period, the share served at least once,
  and the minutes from creation to the first serving and to the first credited click
  (p50 / p90).

Attribution is one SQL definition (``sql_templates/online/_attribution.sql``).  Every figure
has a percentile bootstrap interval (``online.bootstrap_samples`` at ``online.confidence``):
ratios over users (a Poisson bootstrap: each user's lists and events move together, as users
are the unit of an A/B split), reach and its times over the new items.  Two arms' difference
(:func:`compare_arms`) is bootstrapped the same way, each arm resampled on its own (their
users are disjoint), and called significant when its interval excludes zero.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.online.served_log import ensure_tables

log = logging.getLogger(__name__)

MAX_POSITION = 20  # CTR by position for positions 1..20; later ones pooled as 21
GROUP = ("model_version", "arm", "experiment_id", "channel")
WORK_MEM = "256MB"  # the metrics' sorts and hashes, for their transaction only


@dataclass(frozen=True)
class Period:
    """Lists served in ``[served_from, served_to)`` (one experiment's only, when given),
    and the events of ``[served_from, events_to)``."""

    served_from: dt.datetime
    served_to: dt.datetime
    events_to: dt.datetime
    experiment_id: int | None = None

    @classmethod
    def of_bizdate(cls, bizdate: dt.date) -> "Period":
        """A bizdate's UTC day: its lists and its events only."""
        start = dt.datetime.combine(bizdate, dt.time(), tzinfo=dt.timezone.utc)
        end = start + dt.timedelta(days=1)
        return cls(start, end, end)

    def params(self, cfg: PipelineConfig) -> dict[str, Any]:
        """The bind parameters of the online templates."""
        return {"first_day": self.served_from.astimezone(dt.timezone.utc).date(),
                "last_day": (self.served_to - dt.timedelta(microseconds=1)).astimezone(
                    dt.timezone.utc).date(),
                "served_from": self.served_from, "served_to": self.served_to,
                "events_to": self.events_to, "experiment_id": self.experiment_id,
                "positive_events": list(cfg.online.positive_events),
                "window": dt.timedelta(hours=cfg.online.attribution_hours),
                "max_position": MAX_POSITION}


@dataclass
class GroupData:
    """One group's per-user and per-new-item figures, as the SQL returned them."""

    key: tuple
    users: list[str] = field(default_factory=list)
    # user -> [[served], [clicked]] per position
    by_position: dict[str, np.ndarray] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    positives: dict[str, tuple[int, int]] = field(default_factory=dict)  # user -> (all, credited)
    new_items: dict[str, tuple[float, float | None]] = field(default_factory=dict)


def _context(cfg: PipelineConfig, period: Period) -> dict[str, Any]:
    return {"schema": cfg.storage.schema_, "events": cfg.raw.events, "items": cfg.raw.items,
            "has_request_id": "request_id" in cfg.raw.events.columns,
            "experiment": period.experiment_id is not None}


def _prepare(cur, cfg: PipelineConfig, first_day: dt.date, last_day: dt.date) -> None:
    """Fresh statistics for the period's served-log partitions, and the transaction's
    settings (``online/settings.sql`` says why)."""
    schema = cfg.storage.schema_
    days = [first_day + dt.timedelta(days=k) for k in range((last_day - first_day).days + 1)]
    sql.execute(cur, "online/stale_partitions.sql", params={
        "schema": schema, "partitions": [db.partition_name("served_lists", d) for d in days]})
    for (table,) in cur.fetchall():
        sql.execute(cur, "online/analyze.sql", schema=schema, table=table)
    sql.execute(cur, "online/settings.sql", params={"work_mem": WORK_MEM})


def collect(cur, cfg: PipelineConfig, period: Period, by_version: bool = True
            ) -> tuple[dict[tuple, GroupData], int]:
    """Every group's data for ``period`` and the number of items created in it; without
    ``by_version``, a group pools the versions of an arm (an experiment's arms are compared
    by assignment, whichever version served a user that day)."""
    params, context = period.params(cfg), _context(cfg, period)
    _prepare(cur, cfg, params["first_day"], params["last_day"])
    groups: dict[tuple, GroupData] = {}

    def group(row: list) -> GroupData:
        version, arm, experiment, channel = row[:4]
        key = (version if by_version else None, arm, experiment or None, channel)
        return groups.setdefault(key, GroupData(key))

    width = MAX_POSITION + 1
    sql.execute(cur, "online/served_clicks.sql", params=params, **context)
    for *key, user, position, served, clicked in cur.fetchall():
        g = group(key)
        counts = g.by_position.setdefault(user, np.zeros((2, width)))
        counts[:, position - 1] += (served, clicked)
    sql.execute(cur, "online/user_positives.sql", params=params, **context)
    for *key, user, requests, positives, credited in cur.fetchall():
        g = group(key)
        g.requests[user] = g.requests.get(user, 0) + requests
        before = g.positives.get(user, (0, 0))
        g.positives[user] = (before[0] + positives, before[1] + credited)
    sql.execute(cur, "online/new_items.sql", params=params, **context)
    for *key, item, to_served, to_click in cur.fetchall():
        seen = group(key).new_items
        click = None if to_click is None else float(to_click)
        if item in seen:  # the same item under another version of a pooled arm: the first
            before = seen[item]
            click = min(c for c in (before[1], click) if c is not None) \
                if before[1] is not None or click is not None else None
            seen[item] = (min(before[0], float(to_served)), click)
        else:
            seen[item] = (float(to_served), click)
    sql.execute(cur, "online/new_item_count.sql", params=params, **context)
    new_count = int(cur.fetchone()[0])
    for g in groups.values():
        g.users = sorted(g.requests)
    return groups, new_count


class Bootstrap:
    """Percentile intervals from ``samples`` resamples at ``confidence``, seeded."""

    def __init__(self, samples: int, confidence: float, seed: int) -> None:
        self.samples, self.confidence = samples, confidence
        self.rng = np.random.default_rng(seed)

    def interval(self, draws: np.ndarray) -> list[float | None]:
        """The percentile interval of ``draws`` (NaN draws, a resample with no data, left
        out); ``[None, None]`` when there are none."""
        draws = draws[np.isfinite(draws)]
        if draws.size == 0:
            return [None, None]
        tail = (1 - self.confidence) / 2 * 100
        low, high = np.percentile(draws, [tail, 100 - tail])
        return [float(low), float(high)]

    def ratio_draws(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        """Resampled ``sum(num) / sum(den)`` over users (rows); ``num`` and ``den`` may have
        several columns (one ratio per column).  Poisson(1) weights per user, in chunks."""
        num, den = np.atleast_2d(num.T).T, np.atleast_2d(den.T).T
        out = []
        for start in range(0, self.samples, 100):
            w = self.rng.poisson(1.0, size=(min(100, self.samples - start), num.shape[0]))
            with np.errstate(invalid="ignore", divide="ignore"):
                out.append((w @ num) / (w @ den))
        return np.concatenate(out)

    def quantile_draws(self, values: np.ndarray, q: float) -> np.ndarray:
        """Resampled ``q``-quantile of ``values`` (items resampled with replacement)."""
        if values.size == 0:
            return np.array([np.nan])
        idx = self.rng.integers(0, values.size, size=(self.samples, values.size))
        return np.quantile(values[idx], q, axis=1)

    def share_draws(self, hits: np.ndarray) -> np.ndarray:
        """Resampled mean of 0/1 ``hits``."""
        if hits.size == 0:
            return np.array([np.nan])
        return self.rng.binomial(hits.size, hits.mean(), size=self.samples) / hits.size


def _ratio(b: Bootstrap, num: np.ndarray, den: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    total = float(den.sum())
    draws = b.ratio_draws(num, den)[:, 0]
    value = float(num.sum()) / total if total else None
    return {"value": value, "ci": b.interval(draws)}, draws


def summarize(g: GroupData, new_count: int, b: Bootstrap) -> tuple[dict[str, Any], dict]:
    """One group's metrics (JSON-ready) and the bootstrap draws of its headline ratios."""
    users = g.users
    counts = np.stack([g.by_position.get(u, np.zeros((2, MAX_POSITION + 1)))
                       for u in users]) if users else np.zeros((0, 2, MAX_POSITION + 1))
    served, clicked = counts[:, 0, :], counts[:, 1, :]
    positives = np.array([g.positives[u] for u in users], dtype=float).reshape(-1, 2)
    ctr, ctr_draws = _ratio(b, clicked.sum(axis=1), served.sum(axis=1))
    recall, recall_draws = _ratio(b, positives[:, 1], positives[:, 0])
    by_pos_draws = b.ratio_draws(clicked, served)
    by_position = []
    for p in range(MAX_POSITION + 1):
        n = float(served[:, p].sum())
        if n:
            by_position.append({"position": p + 1 if p < MAX_POSITION else f"{p + 1}+",
                                "served": int(n), "clicked": int(clicked[:, p].sum()),
                                "ctr": float(clicked[:, p].sum()) / n,
                                "ci": b.interval(by_pos_draws[:, p])})
    to_served = np.array([t for t, _ in g.new_items.values()], dtype=float)
    to_click = np.array([c for _, c in g.new_items.values() if c is not None], dtype=float)
    reached = np.zeros(new_count)
    reached[: len(g.new_items)] = 1
    reach_draws = b.share_draws(reached)

    def times(values: np.ndarray) -> dict[str, Any]:
        if values.size == 0:
            return {"items": 0, "p50": None, "p90": None, "p50_ci": [None, None],
                    "p90_ci": [None, None]}
        return {"items": int(values.size),
                "p50": float(np.quantile(values, 0.5)), "p90": float(np.quantile(values, 0.9)),
                "p50_ci": b.interval(b.quantile_draws(values, 0.5)),
                "p90_ci": b.interval(b.quantile_draws(values, 0.9))}

    metrics = {
        "requests": int(sum(g.requests.values())),
        "users": len(users),
        "items_served": int(served.sum()),
        "clicked": int(clicked.sum()),
        "ctr": ctr,
        "ctr_by_position": by_position,
        "served_recall": {**recall, "positives": int(positives[:, 0].sum()),
                          "credited": int(positives[:, 1].sum())},
        "new_item_reach": {"new_items": new_count, "served": len(g.new_items),
                           "share": len(g.new_items) / new_count if new_count else None,
                           "ci": b.interval(reach_draws),
                           "minutes_to_served": times(to_served),
                           "minutes_to_click": times(to_click)},
    }
    return metrics, {"ctr": ctr_draws, "served_recall": recall_draws,
                     "new_item_reach": reach_draws}


def compute(cfg: PipelineConfig, period: Period, url: str | None = None,
            by_version: bool = True) -> list[dict[str, Any]]:
    """Every group's metrics for ``period``: ``[{model_version, arm, experiment_id,
    channel, metrics, draws}]`` (``draws``: the headline ratios' bootstrap draws, for
    :func:`compare_arms`; not stored).  ``by_version``: see :func:`collect`."""
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        groups, new_count = collect(cur, cfg, period, by_version)
    o = cfg.online
    b = Bootstrap(o.bootstrap_samples, o.confidence, o.seed)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        metrics, draws = summarize(groups[key], new_count, b)
        out.append({**dict(zip(GROUP, key)), "metrics": metrics, "draws": draws})
    return out


def compare_arms(control: dict[str, Any], challenger: dict[str, Any],
                 confidence: float) -> dict[str, Any]:
    """Challenger minus control for each headline ratio, with the percentile interval of the
    difference of the two arms' independent bootstrap draws and whether it excludes 0."""
    tail = (1 - confidence) / 2 * 100
    out = {}
    for name, draws in challenger["draws"].items():
        a, c = control["draws"][name], challenger["draws"][name]
        n = min(a.size, c.size)
        diff = c[:n] - a[:n]
        diff = diff[np.isfinite(diff)]
        va = _headline(control["metrics"], name)
        vc = _headline(challenger["metrics"], name)
        if diff.size == 0 or va is None or vc is None:
            out[name] = {"difference": None, "ci": [None, None], "significant": False}
            continue
        low, high = np.percentile(diff, [tail, 100 - tail])
        out[name] = {"control": va, "challenger": vc, "difference": vc - va,
                     "ci": [float(low), float(high)],
                     "significant": bool(low > 0 or high < 0)}
    return out


def _headline(metrics: dict[str, Any], name: str) -> float | None:
    m = metrics[name]
    return m["share"] if name == "new_item_reach" else m["value"]


def save(cfg: PipelineConfig, bizdate: dt.date, rows: list[dict[str, Any]],
         url: str | None = None) -> None:
    """Replace the bizdate's stored online metrics with ``rows`` in one transaction."""
    with db.transaction(url) as cur:
        sql.execute(cur, "online/save_metrics.sql",
                    params={"model_name": cfg.model_name, "bizdate": bizdate,
                            "rows": json.dumps(rows)}, schema=cfg.storage.schema_)


def read(cur, cfg: PipelineConfig, first_day: dt.date, last_day: dt.date
         ) -> list[dict[str, Any]]:
    """The stored online metrics of the bizdates from ``first_day`` to ``last_day``, in the
    caller's transaction (empty before the table exists)."""
    if not db.table_exists(cur, cfg.storage.schema_, "online_metrics"):
        return []
    sql.execute(cur, "online/read_metrics.sql",
                params={"model_name": cfg.model_name, "first_day": first_day,
                        "last_day": last_day}, schema=cfg.storage.schema_)
    return db.fetch_dicts(cur)
