"""Context and bind parameters for the point-in-time feature templates (``data/_features.sql``).

The templates need the config's features grouped by tower and by aggregate, and bind
parameters for every value (event types, separators, the event window).  This module builds
both, so the sample, user-embedding and item-embedding queries render from one definition.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql

SIDES = ("user", "item")


def template_context(cfg: PipelineConfig, sides: Iterable[str] = SIDES) -> dict[str, Any]:
    """The Jinja context: raw tables, content and preference features per side."""
    sides = tuple(sides)
    content = {s: [f for f in cfg.features_of(side=s) if f.preference is None] for s in SIDES}
    pref: dict[str, dict[str, Any]] = {}
    for s in SIDES:
        prefs = [f for f in cfg.features_of(side=s) if f.preference is not None]
        pref[s] = {
            "counts": [f for f in prefs if f.preference.agg in ("count", "rate")],
            "collects": [f for f in prefs if f.preference.agg == "collect"],
            "max_window": max((f.preference.window_days for f in prefs), default=1),
        }
    return {
        "raw": cfg.raw,
        "content": content,
        "pref": pref,
        "sides": sides,
        "schema": cfg.storage.schema_,
        "label": cfg.label_name,
        "feature_list": [f for f in cfg.features if f.side in sides],
    }


def max_preference_window(cfg: PipelineConfig) -> int:
    """The longest preference window in days (1 without preference features): how far back
    before the first as-of day the feature queries must read events."""
    return max((f.preference.window_days for f in cfg.features if f.preference), default=1)


def feature_params(cfg: PipelineConfig, as_of_first: dt.date, as_of_last: dt.date) -> dict[str, Any]:
    """Bind parameters for rows as of ``as_of_first`` .. ``as_of_last`` (start of each day)."""
    params: dict[str, Any] = {
        "as_of_first": as_of_first,
        "as_of_last": as_of_last,
        # events strictly before the last as-of day, back to the longest window before the first
        "pref_from": as_of_first - dt.timedelta(days=max_preference_window(cfg)),
        "pref_to": as_of_last,
    }
    for f in cfg.features:
        params[f"sep_{f.name}"] = f.separator
        if f.preference is not None:
            params[f"ev_{f.name}"] = list(f.preference.events)
            if f.preference.denominator_events:
                params[f"den_{f.name}"] = list(f.preference.denominator_events)
    return params


def features_query(cfg: PipelineConfig, side: str, bizdate: dt.date,
                   extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The statement and bind parameters of :func:`read_features` (to stream it instead)."""
    params = feature_params(cfg, bizdate, bizdate)
    params.update(extra, bizdate=bizdate)
    filter_columns = list(cfg.retrieval.filter_columns) if side == "item" else []
    params["filter_columns"] = filter_columns
    text = sql.render(f"data/{side}_features.sql", by_id="item_ids" in extra,
                      filter_columns=filter_columns, **template_context(cfg, [side]))
    return text, params


def read_features(cur, cfg: PipelineConfig, side: str, bizdate: dt.date,
                  extra: dict[str, Any]) -> dict[str, list]:
    """One tower's raw features as of the start of ``bizdate`` (``data/user_features.sql`` or
    ``data/item_features.sql``; ``extra`` binds the user activity or item creation range, or
    ``item_ids``: those items, whenever created).  Items also get ``attributes``: their
    values of ``retrieval.filter_columns`` (a dict), stored with their vectors."""
    return db.fetch_columns(cur, *features_query(cfg, side, bizdate, extra))
