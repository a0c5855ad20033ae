"""The train step: a new training run of the bizdate.

Every run gets a folder of its own (:mod:`dropoutnet.artifacts`), warm-starts from the newest
complete checkpoint of an earlier bizdate within ``training.warm_start_max_gap_days``
(:func:`dropoutnet.registry.warm_start_source`), and becomes the bizdate's current run by one
atomic rename once its checkpoint and report are written; the registry records it from start
to end.  A run killed midway leaves the previous run current and is marked failed when the
next one starts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from .. import artifacts, db, registry, sample_data
from ..config import PipelineConfig
from ..failpoints import failpoint

log = logging.getLogger(__name__)

REPORTED = ("run_id", "rows", "positives", "steps", "loss", "warm_started", "warm_start_from",
            "warm_start_run", "restored_variables", "not_restored_variables", "warm_start")


def train(cfg: PipelineConfig, bizdate: dt.date, pipeline_run: str,
          url: str | None = None) -> dict[str, Any]:
    from ..sample_input import PartitionSource
    from ..training import train_samples  # TensorFlow only when a task needs it

    with db.transaction(url) as cur:
        boundaries = sample_data.load_boundaries(cur, cfg, bizdate)
    samples = PartitionSource(cfg, bizdate, url)  # streamed: memory flat in the day's rows
    run_id = artifacts.new_run_id(bizdate)
    paths = artifacts.run_paths(cfg.model_name, bizdate, run_id)
    warm = registry.warm_start_source(cfg, bizdate)
    if warm is None:
        log.info("no checkpoint within %d days before %s: training from scratch",
                 cfg.training.warm_start_max_gap_days, bizdate)
    registry.start_run(cfg, bizdate, run_id, pipeline_run, warm, url)
    try:
        with samples:  # deletes the samples' disk cache (training.cache_samples) on leaving
            stats = train_samples(cfg, samples, boundaries, paths.checkpoints,
                                  warm.checkpoints if warm else None)
        stats.pop("history", None)
        stats.update(run_id=run_id, warm_start_from=warm.bizdate.isoformat() if warm else None,
                     warm_start_run=warm.run_id if warm else None)
        (paths.root / "train_report.json").write_text(json.dumps(stats, indent=1))
        failpoint("train.before_current")
        artifacts.set_current_run(cfg.model_name, bizdate, run_id)
    except BaseException:
        registry.finish_run(cfg, run_id, succeeded=False, url=url)
        raise
    registry.finish_run(cfg, run_id, succeeded=True, url=url)
    return {"bizdate": bizdate.isoformat(), **{k: stats[k] for k in REPORTED}}


def report(cfg: PipelineConfig, bizdate: dt.date) -> dict[str, Any] | None:
    """The current run's train report (None before the first run of the bizdate)."""
    path = artifacts.paths(cfg.model_name, bizdate).root / "train_report.json"
    return json.loads(path.read_text()) if path.exists() else None
