"""Training runs and the parts of a version waiting to be published.

A run is one train task (``runs``): the pipeline run that started it (an Airflow DAG run id,
or ``cli:<host>:<pid>:<id>`` for ``dropoutnet run``), the hash of its config, the checkpoint it
warm-started from, its status, and what publish decided about it with the gate's figures.  A
version's parts (``version_parts``) name the run whose model wrote its user embeddings, item
embeddings and metrics; publish requires every part to come from the bizdate's current run
(its ``CURRENT`` file, :mod:`dropoutnet.registry.artifacts`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg2.extras import Json

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.registry import artifacts
from dropoutnet.registry.tables import config_hash, ensure_tables, execute

PARTS = ("user_embeddings", "item_embeddings", "metrics")
LEGACY_RUN = "legacy"  # a bizdate folder trained before runs were recorded


@dataclass(frozen=True)
class WarmStart:
    """The checkpoint a train task warm-starts from: an earlier bizdate's current run (None
    for a bizdate folder trained before runs were recorded) and its checkpoint folder."""

    bizdate: dt.date
    run_id: str | None
    checkpoints: Path


def warm_start_source(cfg: PipelineConfig, bizdate: dt.date) -> WarmStart | None:
    """The newest complete checkpoint of an earlier bizdate within
    ``training.warm_start_max_gap_days``; never one of the bizdate itself or a later one."""
    for back in range(1, cfg.training.warm_start_max_gap_days + 1):
        day = bizdate - dt.timedelta(days=back)
        checkpoints = artifacts.paths(cfg.model_name, day).checkpoints
        if (checkpoints / "checkpoint").exists():
            return WarmStart(day, artifacts.current_run(cfg.model_name, day), checkpoints)
    return None


def start_run(cfg: PipelineConfig, bizdate: dt.date, run_id: str, pipeline_run: str,
              warm: WarmStart | None, url: str | None = None) -> None:
    """Record that a train task started a training run of the bizdate, with its pipeline run,
    config (and its hash) and warm start; a run of the model still marked running is marked failed
    (the run lock admits one pipeline run at a time, so it was killed)."""
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        execute(cur, cfg, "start_run", run_id=run_id, bizdate=bizdate,
                 pipeline_run=pipeline_run, config_hash=config_hash(cfg),
                 config=Json(cfg.model_dump(mode="json", by_alias=True)),
                 warm_start_from=warm.bizdate if warm else None,
                 warm_start_run=warm.run_id if warm else None)


def finish_run(cfg: PipelineConfig, run_id: str, succeeded: bool,
               url: str | None = None) -> None:
    """Record a training run's end: succeeded (its checkpoint is complete and current) or
    failed."""
    with db.transaction(url) as cur:
        execute(cur, cfg, "finish_run", run_id=run_id,
                 status="succeeded" if succeeded else "failed")


def current_run(cfg: PipelineConfig, bizdate: dt.date) -> str:
    """The id of the bizdate's current training run (:data:`LEGACY_RUN` for a bizdate
    folder trained before runs were recorded)."""
    return artifacts.current_run(cfg.model_name, bizdate) or LEGACY_RUN


def run_paths(cfg: PipelineConfig, bizdate: dt.date, run_id: str) -> artifacts.ModelPaths:
    """Where a training run of the bizdate keeps its checkpoint, towers and report."""
    if run_id == LEGACY_RUN:
        return artifacts.ModelPaths(artifacts.bizdate_root(cfg.model_name, bizdate))
    return artifacts.run_paths(cfg.model_name, bizdate, run_id)


def runs(cur, cfg: PipelineConfig, bizdate: dt.date | None = None) -> list[dict[str, Any]]:
    """The model's training runs (of one bizdate when given), newest first, as dicts; empty
    before the registry tables exist."""
    if not db.table_exists(cur, cfg.storage.schema_, "runs"):
        return []
    sql.execute(cur, "registry/runs.sql", params={"model_name": cfg.model_name,
                                                  "bizdate": bizdate},
                schema=cfg.storage.schema_, bizdate=bizdate)
    return db.fetch_dicts(cur)


def record_part(cur, cfg: PipelineConfig, version: str, part: str, run_id: str) -> None:
    """Record, in the transaction that wrote it, which run wrote a part of ``version``."""
    if part not in PARTS:
        raise ValueError(f"unknown version part {part!r}; one of {PARTS}")
    execute(cur, cfg, "record_part", model_version=version, part=part, run_id=run_id)


def parts(cur, cfg: PipelineConfig, version: str) -> dict[str, str]:
    """Which run wrote each recorded part of ``version`` (part name -> run id)."""
    execute(cur, cfg, "version_parts", model_version=version)
    return dict(cur.fetchall())


def record_decision(cfg: PipelineConfig, run_id: str, decision: str,
                    gate: dict[str, Any] | None, url: str | None = None) -> None:
    """Record what publish decided about a training run (published, superseded, rejected)
    and the quality gate's figures it decided on."""
    with db.transaction(url) as cur:
        execute(cur, cfg, "record_decision", run_id=run_id, decision=decision,
                 gate=Json(gate) if gate is not None else None)
