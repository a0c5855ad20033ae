"""The model registry: the one owner of a model's state in the database.

It records

* **training runs** (``runs``): one per train task, with the pipeline run that started it (an
  Airflow DAG run id, or ``cli:<host>:<pid>:<id>`` for ``dropoutnet run``), the hash of the
  config it trained with, the checkpoint it warm-started from, its status, and what publish
  decided about it (``published``, ``superseded``, ``rejected``) with the gate's figures;
* **the parts of a version waiting to be published** (``version_parts``): the run whose model
  wrote its user embeddings, its item embeddings and its metrics.  A run is named on disk by
  the bizdate's ``CURRENT`` file (:mod:`dropoutnet.artifacts`); publish requires every part
  to come from the bizdate's current run;
* **published versions** (``model_versions``): the run whose embeddings are attached as the
  version's partitions and the never-overwritten copy of its towers;
* **the active version** (``active_version``), the one recall, deploy and the gate read;
* **the run lock** (``run_lock``): one pipeline run per model at a time, whatever starts it.

The rules it enforces live with the steps that act (publish, train, rollback); the facts they
decide on come from here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from psycopg2.extras import Json

from . import artifacts, db, processes, sql
from .config import PipelineConfig
from .errors import MissingDataError

log = logging.getLogger(__name__)

PARTS = ("user_embeddings", "item_embeddings", "metrics")
LEGACY_RUN = "legacy"  # a bizdate folder trained before runs were recorded
HEARTBEAT_SECONDS = 60.0
POLL_SECONDS = 5.0


class RunLockError(RuntimeError):
    """Another pipeline run holds the model's run lock."""


class RegistryError(LookupError):
    """A version or run the registry does not have; the message says what it has."""


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    db.ensure_ddl(url, "ddl/model_tables.sql", schema=cfg.storage.schema_)


def config_hash(cfg: PipelineConfig) -> str:
    """A short fingerprint of the whole config, recorded with each training run."""
    text = json.dumps(cfg.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _execute(cur, cfg: PipelineConfig, template: str, **params: Any) -> None:
    sql.execute(cur, f"registry/{template}.sql", params={"model_name": cfg.model_name, **params},
                schema=cfg.storage.schema_)


# --- the active version -----------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveVersion:
    model_version: str
    bizdate: dt.date | None
    run_id: str | None
    export_path: Path | None
    published_at: dt.datetime


def active(cur, cfg: PipelineConfig) -> ActiveVersion | None:
    """The model's active version, or None before its first publish."""
    if not db.table_exists(cur, cfg.storage.schema_, "active_version"):
        return None
    _execute(cur, cfg, "active_version")
    row = cur.fetchone()
    if row is None:
        return None
    version, bizdate, run_id, export_path, published_at = row
    if bizdate is None:  # published before model_versions recorded it
        bizdate = dt.datetime.strptime(version, "%Y%m%d").date()
    return ActiveVersion(version, bizdate, run_id, Path(export_path) if export_path else None,
                         published_at)


def active_version(cur, cfg: PipelineConfig) -> str | None:
    found = active(cur, cfg)
    return None if found is None else found.model_version


def versions(cur, cfg: PipelineConfig, version: str | None = None) -> list[dict[str, Any]]:
    """The published versions (one of them when ``version`` is given), newest first."""
    if not db.table_exists(cur, cfg.storage.schema_, "model_versions"):
        return []
    sql.execute(cur, "registry/versions.sql",
                params={"model_name": cfg.model_name, "model_version": version},
                schema=cfg.storage.schema_, version=version)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def record_version(cur, cfg: PipelineConfig, version: str, bizdate: dt.date, run_id: str,
                   export_path: Path) -> None:
    _execute(cur, cfg, "record_version", model_version=version, bizdate=bizdate,
             run_id=run_id, export_path=str(export_path))


def activate(cur, cfg: PipelineConfig, version: str) -> None:
    _execute(cur, cfg, "activate", model_version=version)


# --- training runs and the parts of a version -------------------------------------------------


@dataclass(frozen=True)
class WarmStart:
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
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        _execute(cur, cfg, "start_run", run_id=run_id, bizdate=bizdate,
                 pipeline_run=pipeline_run, config_hash=config_hash(cfg),
                 warm_start_from=warm.bizdate if warm else None,
                 warm_start_run=warm.run_id if warm else None)


def finish_run(cfg: PipelineConfig, run_id: str, succeeded: bool,
               url: str | None = None) -> None:
    with db.transaction(url) as cur:
        _execute(cur, cfg, "finish_run", run_id=run_id,
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
    if not db.table_exists(cur, cfg.storage.schema_, "runs"):
        return []
    sql.execute(cur, "registry/runs.sql", params={"model_name": cfg.model_name,
                                                  "bizdate": bizdate},
                schema=cfg.storage.schema_, bizdate=bizdate)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def record_part(cur, cfg: PipelineConfig, version: str, part: str, run_id: str) -> None:
    """Record, in the transaction that wrote it, which run wrote a part of ``version``."""
    if part not in PARTS:
        raise ValueError(f"unknown version part {part!r}; one of {PARTS}")
    _execute(cur, cfg, "record_part", model_version=version, part=part, run_id=run_id)


def parts(cur, cfg: PipelineConfig, version: str) -> dict[str, str]:
    _execute(cur, cfg, "version_parts", model_version=version)
    return dict(cur.fetchall())


def record_decision(cfg: PipelineConfig, run_id: str, decision: str,
                    gate: dict[str, Any] | None, url: str | None = None) -> None:
    with db.transaction(url) as cur:
        _execute(cur, cfg, "record_decision", run_id=run_id, decision=decision,
                 gate=Json(gate) if gate is not None else None)


def read_metrics(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    """The stored metrics of a bizdate (the evaluate task's result)."""
    with db.transaction(url) as cur:
        if not db.table_exists(cur, cfg.storage.schema_, "metrics"):
            raise MissingDataError(
                "no metrics are stored yet: run the daily DAG for a bizdate first")
        sql.execute(cur, "read_metrics.sql", params={"bizdate": bizdate},
                    schema=cfg.storage.schema_)
        row = cur.fetchone()
    if row is None:
        raise MissingDataError(
            f"no metrics for bizdate {bizdate}: run the daily DAG (or `dropoutnet run "
            f"--bizdate {bizdate}`) for that bizdate")
    return row[0]


# --- the run lock -----------------------------------------------------------------------------


def cli_pipeline_run() -> str:
    """The pipeline-run id of a run started outside Airflow (``dropoutnet run``, a task
    called directly): ``cli:<host>:<pid>:<random>``."""
    return f"cli:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _dead_cli_holder(holder: str) -> bool:
    """A ``dropoutnet run`` of this host whose process is gone can never release its lock."""
    parts = holder.split(":")
    if len(parts) != 4 or parts[0] != "cli" or parts[1] != socket.gethostname():
        return False
    return parts[2].isdigit() and not processes.alive(int(parts[2]))


def acquire(cfg: PipelineConfig, pipeline_run: str, bizdate: dt.date,
            wait_seconds: float = 0.0, url: str | None = None) -> dict[str, Any]:
    """Hold the model's run lock for ``pipeline_run`` (or keep holding it: every task of the
    run calls this).  While another run holds it, wait up to ``wait_seconds``, then raise
    :class:`RunLockError` naming the holder.  A holder idle for ``runs.lock_stale_minutes``,
    or a ``dropoutnet run`` of this host whose process died, is taken over (logged)."""
    ensure_tables(url, cfg)
    stale = cfg.runs.lock_stale_minutes * 60
    deadline = time.monotonic() + wait_seconds
    while True:
        with db.transaction(url) as cur:
            _execute(cur, cfg, "lock_row")
            row = cur.fetchone()
            holder = None if row is None else row[0]
            free = holder is None or holder == pipeline_run
            if not free and (row[4] > stale or _dead_cli_holder(holder)):
                log.warning("taking over the run lock of %s from %s (bizdate %s), idle for "
                            "%.0f s", cfg.model_name, holder, row[1], row[4])
                free = True
            if free:
                _execute(cur, cfg, "take_lock", pipeline_run=pipeline_run, bizdate=bizdate)
                return {"model_name": cfg.model_name, "pipeline_run": pipeline_run,
                        "bizdate": bizdate.isoformat()}
        if time.monotonic() >= deadline:
            raise RunLockError(
                f"model {cfg.model_name!r} is being run by {holder} (bizdate {row[1]}, since "
                f"{row[2]:%Y-%m-%d %H:%M:%S %Z}, last active {row[4]:.0f} s ago): one run per "
                f"model at a time; wait for it to finish and retry (a run whose workers died "
                f"is taken over after runs.lock_stale_minutes = {cfg.runs.lock_stale_minutes})")
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def release(cfg: PipelineConfig, pipeline_run: str, url: str | None = None) -> bool:
    """Release the lock if ``pipeline_run`` holds it; True if it did."""
    with db.transaction(url) as cur:
        if not db.table_exists(cur, cfg.storage.schema_, "run_lock"):
            return False
        _execute(cur, cfg, "release_lock", pipeline_run=pipeline_run)
        return cur.rowcount > 0


def _renew(cfg: PipelineConfig, pipeline_run: str, url: str | None) -> None:
    with db.transaction(url) as cur:
        _execute(cur, cfg, "renew_lock", pipeline_run=pipeline_run)


@contextmanager
def holding(cfg: PipelineConfig, bizdate: dt.date, pipeline_run: str | None = None,
            wait_seconds: float = 0.0, url: str | None = None) -> Iterator[str]:
    """Run a task under the model's run lock, renewing it while the task runs.

    With ``pipeline_run`` (a task of an Airflow run, or of ``dropoutnet run``) the lock stays
    held afterwards for the run's next task; without, the task is a run of its own and
    releases the lock when it ends.
    """
    own = pipeline_run is None
    holder = cli_pipeline_run() if own else pipeline_run
    acquire(cfg, holder, bizdate, wait_seconds, url)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                _renew(cfg, holder, url)
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat is not fatal
                log.warning("could not renew the run lock: %s", exc)

    thread = threading.Thread(target=beat, name="run-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield holder
    finally:
        stop.set()
        thread.join(timeout=5)
        if own:
            release(cfg, holder, url)
        else:
            _renew(cfg, holder, url)
