"""The console's online view: what each version did once served, beside its offline gate
figure, and the A/B experiments between versions (:mod:`dropoutnet.online`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.online.report import bizdate_report

DEFAULT_DAYS = 7


def online(cur, cfg: PipelineConfig, start: dt.date | None, end: dt.date | None
           ) -> dict[str, Any]:
    """The stored online metrics of ``start``..``end`` (default: the last week, ending
    today, UTC) with each version's offline gate figure, the model's experiments (newest
    first) and the versions an experiment could start on."""
    end = end or dt.datetime.now(dt.timezone.utc).date()
    start = start or end - dt.timedelta(days=DEFAULT_DAYS - 1)
    active = registry.active_version(cur, cfg)
    challengers = [v["model_version"] for v in registry.versions(cur, cfg)
                   if v["retired_at"] is None and v["model_version"] != active]
    return {**bizdate_report(cur, cfg, start, end),
            "experiments": [e.as_dict() for e in registry.list_experiments(cur, cfg, limit=20)],
            "active": active, "challengers": challengers,
            "default_share": cfg.retrieval.experiment.share}
