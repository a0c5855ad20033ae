"""Quality over time: one split's recall@K across bizdates, as the evaluate task stored it.

Each bizdate's point is that day's version scored on that day's held-out exposures, with its
bootstrap interval; beside it the day's strongest baseline (with its interval) and the
oracle where the config names one (synthetic data).  On the split the gate judges (cold
items, the gate's metric) each day also has the gate's threshold: the active version's
figure on the same users times ``1 - tolerance``.  ``live`` is the version that served after
the day's run: the day's own when it was published, else the one that stayed active.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql

GATE_SPLIT = "cold_items"
DEFAULT_DAYS = 60


def _live_after(decision: str | None, version: str, gate: dict[str, Any]) -> str | None:
    if decision == "published":
        return version
    return gate.get("active_version")  # rejected or superseded: the active one stayed


def quality(cur, cfg: PipelineConfig, split: str, k: int, date_from: dt.date | None = None,
            date_to: dt.date | None = None) -> dict[str, Any]:
    """The points of ``split``'s recall@``k`` from ``date_from`` to ``date_to`` (default: the
    last :data:`DEFAULT_DAYS` days with metrics), oldest first."""
    metric = f"recall@{k}"
    out: dict[str, Any] = {"split": split, "metric": metric, "points": [],
                           "gate_metric": cfg.evaluation.gate.metric}
    schema = cfg.storage.schema_
    if not db.table_exists(cur, schema, "metrics"):
        return out
    if date_to is None or date_from is None:
        sql.execute(cur, "console/newest_metrics.sql", schema=schema)
        newest = cur.fetchone()[0]
        if newest is None:
            return out
        date_to = date_to or newest
        date_from = date_from or date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    sql.execute(cur, "console/quality.sql", params={"date_from": date_from, "date_to": date_to},
                schema=schema)
    rows = cur.fetchall()
    decisions = {r["run_id"]: r["decision"] for r in registry.runs(cur, cfg)}
    gated = split == GATE_SPLIT and metric == cfg.evaluation.gate.metric
    for bizdate, version, splits, gate, run_id in rows:
        figures = (splits or {}).get(split) or {}
        gate = gate or {}
        strongest = (figures.get("strongest_baseline") or {}).get(metric)
        baseline = (figures.get("baselines") or {}).get(strongest) or {}
        oracle = (figures.get("baselines") or {}).get("oracle") or {}
        threshold = None
        if gated and gate.get("active") is not None:
            threshold = gate["active"] * (1 - gate.get("tolerance", 0))
        out["points"].append({
            "bizdate": bizdate, "model_version": version, "run_id": run_id,
            "value": figures.get(metric), "ci": figures.get(f"{metric}_ci"),
            "users": figures.get("users"),
            "baseline": {"name": strongest, "value": baseline.get(metric),
                         "ci": baseline.get(f"{metric}_ci")} if strongest else None,
            "oracle": oracle.get(metric),
            "threshold": threshold,
            "decision": decisions.get(run_id),
            "live": _live_after(decisions.get(run_id), version, gate),
        })
    return out
