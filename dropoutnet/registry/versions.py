"""Published versions and the active one: what recall, deploy and the quality gate read.

A version is a bizdate's model once published (``model_versions``): the run whose embeddings
are attached as its partitions and the never-overwritten copy of its towers.  One of them is
the model's active version (``active_version``); publish and rollback move it, in the
transaction that attaches the version's partitions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.registry.tables import execute


@dataclass(frozen=True)
class ActiveVersion:
    """The model's live version: its bizdate, the run that wrote it, the published copy of
    its towers and when it was made live (older rows may lack the run and the path)."""

    model_version: str
    bizdate: dt.date | None
    run_id: str | None
    export_path: Path | None
    published_at: dt.datetime


def active(cur, cfg: PipelineConfig) -> ActiveVersion | None:
    """The model's active version, or None before its first publish."""
    if not db.table_exists(cur, cfg.storage.schema_, "active_version"):
        return None
    execute(cur, cfg, "active_version")
    row = cur.fetchone()
    return None if row is None else active_of_row(row)


def active_of_row(row: tuple) -> ActiveVersion:
    """An :class:`ActiveVersion` from ``(model_version, bizdate, run_id, export_path,
    published_at)``, as ``registry/active_version.sql`` reads them."""
    version, bizdate, run_id, export_path, published_at = row
    if bizdate is None:  # published before model_versions recorded it
        bizdate = dt.datetime.strptime(version, "%Y%m%d").date()
    return ActiveVersion(version, bizdate, run_id, Path(export_path) if export_path else None,
                         published_at)


def active_version(cur, cfg: PipelineConfig) -> str | None:
    """The active version's name (``yyyymmdd``), or None before the first publish."""
    found = active(cur, cfg)
    return None if found is None else found.model_version


def versions(cur, cfg: PipelineConfig, version: str | None = None) -> list[dict[str, Any]]:
    """The published versions (one of them when ``version`` is given), newest first."""
    if not db.table_exists(cur, cfg.storage.schema_, "model_versions"):
        return []
    sql.execute(cur, "registry/versions.sql",
                params={"model_name": cfg.model_name, "model_version": version},
                schema=cfg.storage.schema_, version=version)
    return db.fetch_dicts(cur)


def version_metrics(cur, cfg: PipelineConfig, version: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics the evaluate task stored for a version (a row of :func:`versions`): its
    bizdate's, if that bizdate's current metrics are of this version; else None."""
    if not db.table_exists(cur, cfg.storage.schema_, "metrics"):
        return None
    sql.execute(cur, "registry/read_metrics.sql", params={"bizdate": version["bizdate"]},
                schema=cfg.storage.schema_)
    row = cur.fetchone()
    if row is None or row[0].get("model_version") != version["model_version"]:
        return None
    return row[0]


def record_version(cur, cfg: PipelineConfig, version: str, bizdate: dt.date, run_id: str,
                   export_path: Path) -> None:
    """Record a published version in the caller's transaction: the run whose embeddings
    were attached as its partitions and the never-overwritten copy of its towers."""
    execute(cur, cfg, "record_version", model_version=version, bizdate=bizdate,
             run_id=run_id, export_path=str(export_path))


def read_metrics(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    """The stored metrics of a bizdate (the evaluate task's result)."""
    with db.transaction(url) as cur:
        if not db.table_exists(cur, cfg.storage.schema_, "metrics"):
            raise MissingDataError(
                "no metrics are stored yet: run the daily DAG for a bizdate first")
        sql.execute(cur, "registry/read_metrics.sql", params={"bizdate": bizdate},
                    schema=cfg.storage.schema_)
        row = cur.fetchone()
    if row is None:
        raise MissingDataError(
            f"no metrics for bizdate {bizdate}: run the daily DAG (or `dropoutnet run "
            f"--bizdate {bizdate}`) for that bizdate")
    return row[0]
