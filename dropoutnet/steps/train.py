"""The train step: a new training run of the bizdate.

Every run gets a folder of its own (:mod:`dropoutnet.registry.artifacts`), warm-starts from the
newest complete checkpoint of an earlier bizdate within ``training.warm_start_max_gap_days``
(:func:`dropoutnet.registry.warm_start_source`), and becomes the bizdate's current run by one atomic
rename once its checkpoint and report are written; the registry records it from start to end.  A run
killed midway leaves the previous run current and is marked failed when the next one starts.

On a cluster (:mod:`dropoutnet.training.cluster`) the same task trains on several processes:

* ``TF_CONFIG`` set by a platform: this process is one member; its chief does all of the
  above, the other workers only train along (no run folder, registry or report of theirs);
* ``training.cluster.worker.count`` > 1 and no ``TF_CONFIG``: this process launches the
  workers on this machine and waits for them; the chief among them writes the run's
  checkpoint, and the report gains the cluster's figures.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db
from dropoutnet.core.failpoints import failpoint
from dropoutnet.data import partitions
from dropoutnet.registry import artifacts
from dropoutnet.training import cluster

log = logging.getLogger(__name__)

REPORTED = ("run_id", "rows", "positives", "steps", "loss", "warm_started", "warm_start_from",
            "warm_start_run", "restored_variables", "not_restored_variables", "warm_start")


def train(cfg: PipelineConfig, bizdate: dt.date, pipeline_run: str,
          url: str | None = None) -> dict[str, Any]:
    """Train a new run of the bizdate on its samples, warm-started when an earlier checkpoint
    is close enough, and make it the bizdate's current run; ``pipeline_run`` is recorded as
    the run's origin.  Returns the train report's headline figures.  A non-chief member of a
    platform's cluster only trains along (no run folder or registry row of its own)."""
    from dropoutnet.training.source import PartitionSource

    member = cluster.from_environment()
    if member is not None and not member.chief:
        return _train_along(cfg, bizdate, member, url)
    with db.transaction(url) as cur:
        boundaries = partitions.load_boundaries(cur, cfg, bizdate)
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
            stats = _fit(cfg, bizdate, url, samples, boundaries, paths.checkpoints,
                         warm.checkpoints if warm else None, member)
        stats["loss_per_epoch"] = stats.pop("history", {}).get("loss")
        stats.update(run_id=run_id, warm_start_from=warm.bizdate.isoformat() if warm else None,
                     warm_start_run=warm.run_id if warm else None)
        (paths.root / "train_report.json").write_text(json.dumps(stats, indent=1))
        failpoint("train.before_current")
        artifacts.set_current_run(cfg.model_name, bizdate, run_id)
    except BaseException:
        registry.finish_run(cfg, run_id, succeeded=False, url=url)
        raise
    registry.finish_run(cfg, run_id, succeeded=True, url=url)
    return {"bizdate": bizdate.isoformat(), **{k: stats[k] for k in REPORTED},
            **({"cluster": stats["cluster"]} if "cluster" in stats else {})}


def _fit(cfg: PipelineConfig, bizdate: dt.date, url: str | None, samples: Any,
         boundaries: dict[str, list[float]], checkpoints: Path, warm: Path | None,
         member: cluster.Member | None) -> dict[str, Any]:
    """Train in this process (alone, or as the chief of a platform's cluster), or on a
    cluster of local processes this one launches (``training.cluster``)."""
    workers = cfg.training.cluster.workers if cfg.training.cluster else 1
    if member is None and workers > 1:  # the launcher imports no TensorFlow
        return cluster.train_local_cluster(cfg, bizdate, url, boundaries, checkpoints, warm,
                                           workers)
    from dropoutnet.training.fit import train_samples  # TensorFlow only when a task needs it

    return train_samples(cfg, samples, boundaries, checkpoints, warm, member=member)


def _train_along(cfg: PipelineConfig, bizdate: dt.date, member: cluster.Member,
                 url: str | None) -> dict[str, Any]:
    """A non-chief member of a platform's cluster: train the same steps as the chief (same
    samples, same warm start); its checkpoint copy goes to a temporary folder that is
    deleted, and it records nothing (the chief's run is the bizdate's run)."""
    from dropoutnet.training.fit import train_samples
    from dropoutnet.training.source import PartitionSource

    cluster.strategy()  # before any other TensorFlow operation
    with db.transaction(url) as cur:
        boundaries = partitions.load_boundaries(cur, cfg, bizdate)
    warm = registry.warm_start_source(cfg, bizdate)
    with PartitionSource(cfg, bizdate, url) as samples:
        stats = train_samples(cfg, samples, boundaries, Path("unused-by-non-chief"),
                              warm.checkpoints if warm else None, member=member)
    log.info("%s of the cluster done: the chief writes the run", member.name)
    return {"bizdate": bizdate.isoformat(), "chief": False, "rows": stats["rows"],
            "steps": stats["steps"], "cluster": stats["cluster"]}


def report(cfg: PipelineConfig, bizdate: dt.date) -> dict[str, Any] | None:
    """The current run's train report (None before the first run of the bizdate)."""
    path = artifacts.paths(cfg.model_name, bizdate).root / "train_report.json"
    return json.loads(path.read_text()) if path.exists() else None
