"""Retention: drop what the model no longer needs, and never what users or a rollback need.

The DAG's last task (under the run lock, so no other run is writing).  Counted back from the
newest bizdate the model has (the run's bizdate, or a later published version's when this
run is a backfill), with ``retention`` of the config:

* **versions**: the newest ``keep_versions`` published versions keep their embedding
  partitions and their published towers; older ones lose both and are marked retired in the
  registry (``dropoutnet versions`` shows it; a rollback to one names why it cannot).
  Embedding candidates that were never published (a run rejected by the gate) go with their
  bizdate's age;
* **samples**: the sample, eval and feature-boundary partitions of bizdates older than
  ``keep_days``, and the served log's partitions of days older than that (the online metrics
  computed from them stay);
* **training runs** on disk: the bizdate folders older than ``keep_days`` (checkpoints,
  exports, reports), and in the others every run folder that is not the bizdate's current run
  (a rerun replaced it, or it failed);
* **leftovers**: ``.tmp-*`` / ``.old-*`` folders and files of interrupted copies and renames,
  once older than ``leftover_hours`` (a younger one may belong to a copy in progress).

Never dropped: the active version, the newest published version before it (the rollback
target), and anything of the run's own bizdate.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.registry import artifacts

log = logging.getLogger(__name__)

EMBEDDING_TABLES = ("user_embeddings", "item_embeddings")
# the tables partitioned by day: the sample step's, and the served log (by the day served)
DAILY_TABLES = ("samples", "eval_samples", "feature_boundaries", "served_lists")
LEFTOVER = re.compile(r"^\..+\.(tmp|old)-[0-9a-f]+$")


def _derived_tables(cur, schema: str, parent: str) -> dict[str, str]:
    """``{table name: yyyymmdd}`` of the parent's partitions, candidates and stages."""
    sql.execute(cur, "steps/retention/derived_tables.sql", params={"schema": schema,
                                                             "prefix": f"{parent}_p"})
    pattern = re.compile(rf"^{re.escape(parent)}_p(\d{{8}})(_candidate|_stage)?$")
    out = {}
    for (name,) in cur.fetchall():
        match = pattern.match(name)
        if match:
            out[name] = match.group(1)
    return out


def _day(yyyymmdd: str) -> dt.date:
    return dt.datetime.strptime(yyyymmdd, "%Y%m%d").date()


def _remove(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return not path.exists()


def _leftovers(root: Path, older_than: float) -> list[Path]:
    """Temporary and replaced folders/files under ``root`` (down to a run's folder) that are
    older than ``older_than`` (a time stamp)."""
    found = []
    for depth in ("*", "*/*", "*/*/*", "*/*/*/*"):
        for path in root.glob(depth):
            if LEFTOVER.match(path.name):
                try:
                    if path.stat().st_mtime < older_than:
                        found.append(path)
                except FileNotFoundError:
                    continue
    return found


def apply_retention(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None,
                    now: float | None = None) -> dict[str, Any]:
    """Drop what ``cfg.retention`` no longer keeps; return what was dropped."""
    keep = cfg.retention
    schema = cfg.storage.schema_
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        versions = registry.versions(cur, cfg)  # newest bizdate first
        active = registry.active(cur, cfg)
    newest = max([bizdate] + [v["bizdate"] for v in versions])
    cutoff = newest - dt.timedelta(days=keep.keep_days - 1)  # the oldest bizdate kept

    protected = {artifacts.model_version(bizdate)}
    if active is not None:
        protected.add(active.model_version)
        before = [v for v in versions if v["bizdate"] < active.bizdate]
        if before:
            protected.add(before[0]["model_version"])
    live = [v for v in versions if v["retired_at"] is None]
    kept_versions = {v["model_version"] for v in live[: keep.keep_versions]} | protected
    retired = [v for v in live if v["model_version"] not in kept_versions]
    published = {v["model_version"] for v in versions}

    dropped_tables: list[str] = []
    with db.transaction(url) as cur:
        for parent in EMBEDDING_TABLES:
            for table, version in _derived_tables(cur, schema, parent).items():
                gone = (version in published and version not in kept_versions) or (
                    version not in published and version not in protected
                    and _day(version) < cutoff)
                if gone:
                    sql.execute(cur, "steps/retention/drop_table.sql", schema=schema, table=table)
                    dropped_tables.append(table)
        for parent in DAILY_TABLES:
            for table, day in _derived_tables(cur, schema, parent).items():
                if _day(day) < cutoff and _day(day) != bizdate:
                    sql.execute(cur, "steps/retention/drop_table.sql", schema=schema, table=table)
                    dropped_tables.append(table)
        for v in retired:
            sql.execute(cur, "registry/retire_version.sql",
                        params={"model_name": cfg.model_name,
                                "model_version": v["model_version"]}, schema=schema)

    removed: list[str] = []
    for v in retired:  # after the commit: a failed transaction leaves the towers in place
        if v["export_path"]:
            folder = Path(v["export_path"]).parent
            if folder.exists() and _remove(folder):
                removed.append(str(folder))
    model_root = artifacts.models_root() / cfg.model_name
    for folder in sorted(model_root.glob("????-??-??")):
        try:
            day = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue
        if day == bizdate:
            continue
        if day < cutoff:
            if _remove(folder):
                removed.append(str(folder))
            continue
        current = artifacts.current_run(cfg.model_name, day)
        for run in sorted((folder / "runs").glob("*")) if current else []:
            if run.name != current and _remove(run):
                removed.append(str(run))
    stamp = (time.time() if now is None else now) - keep.leftover_hours * 3600
    serving = artifacts.serving_root(cfg.serving.base_path)
    for path in _leftovers(model_root, stamp) + _leftovers(serving, stamp):
        if _remove(path):
            removed.append(str(path))
    result = {"oldest_bizdate_kept": cutoff.isoformat(),
              "retired_versions": [v["model_version"] for v in retired],
              "dropped_tables": dropped_tables, "removed_paths": removed}
    log.info("retention for %s: retired versions %s, dropped %d tables, removed %d folders",
             cfg.model_name, result["retired_versions"], len(dropped_tables), len(removed))
    return result
