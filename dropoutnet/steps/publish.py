"""Publish a bizdate's version: atomically, behind a quality gate, never backwards in time.

The version must be whole and of one training run: the bizdate's current run (its
``CURRENT``, see :mod:`dropoutnet.registry.artifacts`) exported its towers, and the registry records
that the same run wrote the version's user embeddings, item embeddings and metrics.  A part
written by another run is refused with the task to rerun.

What publishing does depends on the active version's bizdate:

* **none yet, the same or an earlier bizdate**: the version must pass the gate, then goes
  live.  The gate: its cold-item ``evaluation.gate.metric`` must be at least the active
  version's, both scored by the evaluate task on the bizdate's held-out exposures (which
  neither model trained on), times ``1 - tolerance``.  It fails closed: no figure (an empty
  split, active towers that cannot be read) is no pass, and figures measured against a
  version that is no longer the active one are refused (rerun evaluate).  ``force`` (the DAG's
  ``force_publish``) publishes anyway.
* **a later bizdate** (a backfill of an old day): the version is kept as **superseded**: its
  embeddings are attached and its towers copied, so that ``dropoutnet rollback --to VERSION``
  can make it live later, but the active version stays.  ``make_live`` (the DAG's
  ``make_live`` param) makes it live instead: a deliberate rollback, which no gate can judge
  fairly (the active model trained on this day's exposures).

Going live copies the run's towers to ``published/<version>.<run id>`` (a new name, never
written over), then in one transaction attaches the embedding candidates as the version's
partitions, records the version with that path and moves the ``active_version`` row: recall
switches from one complete version to the next and never mixes two.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db
from dropoutnet.core.errors import MissingDataError, QualityGateError
from dropoutnet.core.failpoints import failpoint
from dropoutnet.recall import vectors
from dropoutnet.recall.vectors import version_tables
from dropoutnet.registry import artifacts

log = logging.getLogger(__name__)

PART_TASKS = {"user_embeddings": "user_embeddings", "item_embeddings": "item_embeddings",
              "metrics": "evaluate"}


def _figure(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def check_gate(cfg: PipelineConfig, version: str, gate: dict[str, Any] | None,
               active: registry.ActiveVersion | None, force: bool) -> dict[str, Any]:
    """Raise :class:`QualityGateError` unless the gate passes (or ``force``); return a verdict.

    ``gate`` holds the evaluate task's figures; ``active`` is the active version now.
    """
    tolerance = cfg.evaluation.gate.tolerance
    metric = cfg.evaluation.gate.metric
    gate = gate or {}
    if active is None:
        return {"gate": "first version", "forced": force}
    new, old = _figure(gate.get("new")), _figure(gate.get("active"))
    problem = None
    if (gate.get("active_version"), gate.get("active_run")) != (active.model_version,
                                                                active.run_id):
        problem = (f"the evaluate task compared version {version} with "
                   f"{gate.get('active_version') or 'no version'}, but the active version is "
                   f"now {active.model_version}: rerun the evaluate task for this bizdate")
    elif new is None:
        problem = (f"version {version} has no cold-item {metric} (no user of the bizdate's "
                   "new items clicked one): there is nothing to decide on")
    elif old is None:
        why = gate.get("active_error") or gate.get("not_comparable") or "no figure"
        problem = f"the active version {active.model_version} could not be scored: {why}"
    if problem is not None:
        return _refuse(f"quality gate: {problem}; {active.model_version} stays active", force,
                       {"gate": "no figure, forced", "forced": True, "reason": problem})
    floor = old * (1 - tolerance)
    if new >= floor:
        return {"gate": "passed", metric: new, f"active {metric}": old, "forced": force}
    live = (f"the published run of {active.model_version}" if active.model_version == version
            else f"the active version {active.model_version}")
    return _refuse(f"quality gate: version {version} has cold-item {metric} {new:.4f}, below "
                   f"{live}'s {old:.4f} x (1 - {tolerance}) = {floor:.4f} on the same users "
                   f"and items; {active.model_version} stays active as published", force,
                   {"gate": "failed, forced", metric: new, f"active {metric}": old,
                    "forced": True})


def _refuse(message: str, force: bool, forced_verdict: dict[str, Any]) -> dict[str, Any]:
    """A gate that does not pass: the verdict when ``force``, else :class:`QualityGateError`."""
    if force:
        log.warning("%s — published anyway (force_publish)", message)
        return forced_verdict
    raise QualityGateError(message + ". To publish anyway, trigger the run with "
                           "force_publish: true (or `dropoutnet run --force-publish`).")


def _check_parts(cur, cfg: PipelineConfig, version: str, run: str,
                 tables: dict[str, str]) -> None:
    """Every part of the version comes from ``run`` (candidates), or the version's attached
    partitions are already that run's (a publish rerun)."""
    recorded = registry.parts(cur, cfg, version)
    published = registry.versions(cur, cfg, version)
    attached_run = published[0]["run_id"] if published else None
    for part, task in PART_TASKS.items():
        side = part.split("_")[0]
        if part != "metrics" and tables[side] != db.candidate_name(part, version):
            writer = attached_run  # the attached partition: the run that published it
        else:
            writer = recorded.get(part)
        if writer != run:
            raise MissingDataError(
                f"version {version}'s {part.replace('_', ' ')} come from run "
                f"{writer or 'unknown'}, but its current model is run {run}: rerun the {task} "
                f"task for bizdate {dt.datetime.strptime(version, '%Y%m%d').date()} so that "
                "every part of the version comes from one model")


def publish(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None,
            force: bool = False, make_live: bool = False,
            change: registry.Change | None = None) -> dict[str, Any]:
    """Publish the bizdate's version as described above: behind the quality gate (unless
    ``force``), or kept as superseded when a later bizdate is active (unless ``make_live``).
    ``change`` says who publishes (default: this machine's user); going live appends it to
    the activation history with the gate's verdict.  Returns the decision and the verdict."""
    version = artifacts.model_version(bizdate)
    run = registry.current_run(cfg, bizdate)
    paths = registry.run_paths(cfg, bizdate, run)
    for p in (paths.final, paths.user, paths.item):
        if not (p / "saved_model.pb").exists():
            raise MissingDataError(f"version {version} is incomplete: {p} has no saved_model.pb;"
                                   " run the train and export tasks for that bizdate")
    metrics = registry.read_metrics(cfg, bizdate, url)
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        tables = version_tables(cur, cfg, version)  # both candidates, or both attached
        _check_parts(cur, cfg, version, run, tables)
        active = registry.active(cur, cfg)
    older = active is not None and active.bizdate > bizdate
    if older and not make_live:
        verdict = {"gate": "not applied", "superseded_by": active.model_version}
        decision = "superseded"
    elif older:
        verdict = {"gate": "not applied: make_live (a rollback)",
                   "replaces": active.model_version}
        decision = "published"
    else:
        try:
            verdict = check_gate(cfg, version, metrics.get("gate"), active, force)
        except QualityGateError:
            registry.record_decision(cfg, run, "rejected", metrics.get("gate"), url)
            raise
        decision = "published"

    published = artifacts.published_paths(cfg.model_name, version, run)
    if not (published.user / "saved_model.pb").exists():
        artifacts.copy_dir(paths.export, published.export)
    failpoint("publish.before_transaction")
    with db.transaction(url) as cur:
        for side, table in version_tables(cur, cfg, version).items():
            parent = f"{side}_embeddings"
            if table == db.candidate_name(parent, version):
                db.swap_partition(cur, cfg.storage.schema_, parent, version, table)
        registry.record_version(cur, cfg, version, bizdate, run, published.export)
        if decision == "published":
            registry.activate(cur, cfg, version, change or registry.Change.cli(),
                              "make_live" if older else "publish", gate=verdict)
        failpoint("publish.before_commit")
    registry.record_decision(cfg, run, decision, metrics.get("gate"), url)
    live = decision == "published"
    if live:
        vectors.prewarm(cfg, version, url)
    log.info("%s %s version %s, run %s (%s)", "published" if live else "kept as superseded",
             cfg.model_name, version, run, verdict["gate"])
    return {"model_name": cfg.model_name, "model_version": version, "run_id": run,
            "active": live, "decision": decision, **verdict}


def rollback(cfg: PipelineConfig, to_version: str, url: str | None = None,
             change: registry.Change | None = None) -> dict[str, Any]:
    """Make an earlier published version the active one again (its embeddings and towers
    must still be there); the model service follows at the next deploy.  ``change`` (who and
    why; default: this machine's user) goes into the activation history."""
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        known = registry.versions(cur, cfg)
        found = [v for v in known if v["model_version"] == to_version]
        if not found:
            names = ", ".join(v["model_version"] for v in known) or "none"
            raise MissingDataError(f"version {to_version!r} was never published (published "
                                   f"versions of {cfg.model_name}: {names}); choose one of them")
        row = found[0]
        for parent in ("user_embeddings", "item_embeddings"):
            if not db.table_exists(cur, cfg.storage.schema_,
                                   db.partition_name(parent, to_version)):
                raise MissingDataError(
                    f"version {to_version} has no {parent.replace('_', ' ')} any more (dropped "
                    "by retention): rerun its bizdate with make_live, or choose a newer version")
        towers = artifacts.ModelPaths(Path(row["export_path"]).parent)
        if not all((p / "saved_model.pb").exists() for p in (towers.user, towers.item)):
            raise MissingDataError(f"version {to_version}'s published towers are missing "
                                   f"({row['export_path']}): rerun its bizdate with make_live")
        previous = registry.active_version(cur, cfg)
        registry.activate(cur, cfg, to_version, change or registry.Change.cli(), "rollback")
    log.info("rolled %s back from %s to %s", cfg.model_name, previous, to_version)
    vectors.prewarm(cfg, to_version, url)
    return {"model_name": cfg.model_name, "model_version": to_version,
            "bizdate": row["bizdate"].isoformat(), "run_id": row["run_id"],
            "previous_version": previous}
