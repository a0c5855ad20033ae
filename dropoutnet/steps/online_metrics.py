"""The online_metrics step: what users did with the lists served on the bizdate, per version,
arm and channel (:mod:`dropoutnet.online.metrics`), stored for the bizdate.

It reads only the served log and the bizdate's raw events, so it runs for any bizdate,
backfills included, and beside the training chain; a rerun replaces the bizdate's rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from dropoutnet.config import PipelineConfig
from dropoutnet.online import metrics

log = logging.getLogger(__name__)


def online_metrics(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None
                   ) -> dict[str, Any]:
    """Compute the bizdate's online metrics and replace its stored rows; returns what was
    stored (nothing, and why, without ``online.positive_events``)."""
    if not cfg.online.positive_events:
        message = ("online.positive_events is not set: name the event types that are a "
                   "positive reaction to a served item (e.g. [click]) to compute online "
                   "metrics")
        log.warning("online metrics of %s skipped: %s", bizdate, message)
        return {"bizdate": bizdate.isoformat(), "skipped": message, "groups": []}
    groups = metrics.compute(cfg, metrics.Period.of_bizdate(bizdate), url)
    rows = [{k: g[k] for k in (*metrics.GROUP, "metrics")} for g in groups]
    metrics.save(cfg, bizdate, rows, url)
    log.info("online metrics of %s: %d groups (version, arm, channel)", bizdate, len(rows))
    return {"bizdate": bizdate.isoformat(), "groups": rows}
