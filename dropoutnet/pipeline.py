"""One function per task of the daily DAG, in order; plain Python, testable without Airflow.

Each task takes the bizdate (``YYYY-MM-DD``) and the pipeline config path, does exactly that
bizdate's work idempotently (a rerun replaces its outputs) and returns a small JSON-able dict
that Airflow keeps as the task's XCom and the CLI prints.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from typing import Any

from .config import PipelineConfig, default_config_path, load_config

log = logging.getLogger(__name__)

TASKS = ("samples", "train", "export", "user_embeddings", "item_embeddings", "evaluate", "publish",
         "deploy")


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


def load(config_path: str | None) -> PipelineConfig:
    """The validated pipeline config (``DROPOUTNET_CONFIG`` or the demo one by default)."""
    return load_config(config_path or default_config_path())


def check(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    """Validate the bizdate, the config and the raw tables before any task writes anything."""
    from . import db, samples

    day = parse_bizdate(bizdate)
    cfg = load(config_path)
    with db.transaction() as cur:
        samples.check_raw_tables(cur, cfg)
    return {"bizdate": day.isoformat(), "model_name": cfg.model_name, "config": "ok"}


def samples(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    """Training samples, cold-start eval samples and feature boundaries of the bizdate."""
    from . import samples as samples_mod

    return samples_mod.build_samples(load(config_path), parse_bizdate(bizdate))


def train(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    """Train on the bizdate's samples, warm-starting from bizdate-1's checkpoint when it exists."""
    from . import artifacts, db
    from . import samples as samples_mod
    from .train import train_model

    cfg, day = load(config_path), parse_bizdate(bizdate)
    with db.transaction() as cur:
        if not samples_mod.partition_exists(cur, cfg, "samples", day):
            raise samples_mod.MissingDataError(
                f"samples has no partition for bizdate {day}: run the samples task first")
        data = samples_mod.load_partition(cur, cfg, "samples", day)
        boundaries = samples_mod.load_boundaries(cur, cfg, day)
    paths = artifacts.paths(cfg.model_name, day)
    # yesterday's checkpoint; train_model logs whether it was there (warm or cold start)
    previous = artifacts.paths(cfg.model_name, day - dt.timedelta(days=1)).checkpoints
    if paths.export.exists():  # a rerun: the old export no longer matches the new checkpoint
        shutil.rmtree(paths.export)
    stats = train_model(cfg, data["features"], data["labels"], boundaries, paths.checkpoints,
                        previous, item_ids=data["item_ids"])
    stats.pop("history", None)
    (paths.root / "train_report.json").write_text(json.dumps(stats, indent=1))
    return {"bizdate": day.isoformat(), **{k: stats[k] for k in (
        "rows", "positives", "steps", "loss", "warm_started", "restored_variables",
        "not_restored_variables", "warm_start")}}


def export(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    """The final, user and item SavedModels of the bizdate's checkpoint."""
    from . import artifacts
    from .export import export_models

    cfg, day = load(config_path), parse_bizdate(bizdate)
    paths = artifacts.paths(cfg.model_name, day)
    if not paths.checkpoints.exists():
        from .samples import MissingDataError

        raise MissingDataError(f"no checkpoint for bizdate {day} at {paths.checkpoints}: run "
                               "the train task first")
    return {"bizdate": day.isoformat(), **export_models(cfg, paths.checkpoints, paths.export)}


def user_embeddings(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    """Every active user's vector of the bizdate's version, into pgvector."""
    from .embeddings import write_user_embeddings

    return write_user_embeddings(load(config_path), parse_bizdate(bizdate))


def item_embeddings(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    """The candidate pool's vectors of the bizdate's version, with an HNSW index."""
    from .embeddings import write_item_embeddings

    return write_item_embeddings(load(config_path), parse_bizdate(bizdate))


def evaluate(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    """AUC and retrieval metrics on the bizdate's three eval splits, with baselines; stored."""
    from . import artifacts
    from .evaluate import evaluate as evaluate_version

    cfg, day = load(config_path), parse_bizdate(bizdate)
    extra: dict[str, Any] = {}
    report = artifacts.paths(cfg.model_name, day).root / "train_report.json"
    if report.exists():
        stats = json.loads(report.read_text())
        extra["train"] = {k: stats.get(k) for k in (
            "rows", "positives", "steps", "loss", "train_auc", "warm_started")}
    return evaluate_version(cfg, day, extra=extra)


def publish(bizdate: str, config_path: str | None = None,
            force_publish: bool = False) -> dict[str, Any]:
    """Make the bizdate's version the active one (atomically), if it passes the quality gate."""
    from .publish import publish as publish_version

    return publish_version(load(config_path), parse_bizdate(bizdate), force=force_publish)


def deploy(bizdate: str, config_path: str | None = None) -> dict[str, Any]:
    """Copy the active version's towers into the model service's base path (atomically)."""
    from .deploy import deploy as deploy_version

    return deploy_version(load(config_path), parse_bizdate(bizdate))


def run(bizdate: str, config_path: str | None = None,
        tasks: tuple[str, ...] = TASKS, force_publish: bool = False) -> dict[str, Any]:
    """The DAG's task chain in one process, without Airflow (the same functions, in order)."""
    check(bizdate, config_path)
    results: dict[str, Any] = {}
    for name in TASKS:
        if name in tasks:
            log.info("running task %s for bizdate %s", name, bizdate)
            if name == "publish":
                results[name] = publish(bizdate, config_path, force_publish)
            else:
                results[name] = globals()[name](bizdate, config_path)
    return results
