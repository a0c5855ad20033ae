"""Make a bizdate's model version the active one, atomically, behind a quality gate.

The version must be whole: its exported models on disk and both embedding candidates (or
partitions) in the database.  It must also pass the gate: its cold-item metric
(``evaluation.gate.metric``) must be at least the active version's, measured on the same
users and new items by the evaluate task, times ``1 - tolerance``.  Otherwise the active
version stays and publishing fails with both figures; ``force`` (the DAG's
``force_publish`` param) overrides the gate.

Publishing copies the exported towers to the version's published folder, then, in one
transaction, attaches the user and item candidates as the version's partitions and moves the
``active_version`` row: recall switches from one complete version to the next and never mixes
two, even when the bizdate of the live version is rerun.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from . import artifacts, db, sql
from .config import PipelineConfig
from .embeddings import version_tables
from .evaluate import ensure_tables, read_metrics
from .samples import MissingDataError

log = logging.getLogger(__name__)


class QualityGateError(RuntimeError):
    """The new version is worse than the active one by more than the tolerance."""


def check_gate(cfg: PipelineConfig, version: str, gate: dict[str, Any] | None,
               force: bool) -> dict[str, Any]:
    """Raise :class:`QualityGateError` unless the gate passes (or ``force``); return a verdict."""
    tolerance = cfg.evaluation.gate.tolerance
    metric = cfg.evaluation.gate.metric
    new = (gate or {}).get("new")
    active = (gate or {}).get("active")
    active_version = (gate or {}).get("active_version")
    if active is None or new is None:
        return {"gate": "no comparable active version", "forced": force}
    floor = active * (1 - tolerance)
    if new >= floor:
        return {"gate": "passed", metric: new, f"active {metric}": active, "forced": force}
    live = (f"the published run of {active_version}" if active_version == version
            else f"the active version {active_version}")
    message = (f"quality gate: version {version} has cold-item {metric} {new:.4f}, below "
               f"{live}'s {active:.4f} x (1 - {tolerance}) = {floor:.4f} on the same users "
               f"and items; {active_version} stays active as published")
    if force:
        log.warning("%s — published anyway (force_publish)", message)
        return {"gate": "failed, forced", metric: new, f"active {metric}": active,
                "forced": True}
    raise QualityGateError(message + ". To publish anyway, trigger the run with "
                           "force_publish: true (or `dropoutnet run --force-publish`).")


def publish(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None,
            force: bool = False) -> dict[str, Any]:
    version = artifacts.model_version(bizdate)
    paths = artifacts.paths(cfg.model_name, bizdate)
    for p in (paths.final, paths.user, paths.item):
        if not (p / "saved_model.pb").exists():
            raise MissingDataError(f"version {version} is incomplete: {p} has no saved_model.pb;"
                                   " run the train and export tasks for that bizdate")
    verdict = check_gate(cfg, version, read_metrics(cfg, bizdate, url).get("gate"), force)
    schema = cfg.storage.schema_
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        # both there, from the same run (or a clear error); candidates: a run not yet published
        tables = version_tables(cur, cfg, version)
    fresh = tables["user"] == db.candidate_name("user_embeddings", version)
    published = artifacts.published_paths(cfg.model_name, version)
    if fresh or not (published.user / "saved_model.pb").exists():
        artifacts.copy_dir(paths.export, published.export)
    with db.transaction(url) as cur:
        for side, table in version_tables(cur, cfg, version).items():
            parent = f"{side}_embeddings"
            if table == db.candidate_name(parent, version):
                db.swap_partition(cur, schema, parent, version, table)
        sql.execute(cur, "publish.sql", params={
            "model_name": cfg.model_name, "model_version": version, "bizdate": bizdate,
            "export_path": str(published.export)}, schema=schema)
    log.info("published %s version %s (%s)", cfg.model_name, version, verdict["gate"])
    return {"model_name": cfg.model_name, "model_version": version, "active": True, **verdict}
