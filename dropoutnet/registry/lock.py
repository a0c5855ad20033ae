"""The run lock (``run_lock``): one pipeline run per model at a time, whatever starts it.

A run (an Airflow DAG run, or ``dropoutnet run``) holds the lock from its first task to its
last, renewing it while a task works; another run's first task waits for it up to
``runs.lock_wait_minutes``, then fails naming the holder.  A holder that stopped renewing for
``runs.lock_stale_minutes`` (its workers died), or a ``dropoutnet run`` of this host whose
process is gone, is taken over.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, processes
from dropoutnet.core.errors import RunLockError
from dropoutnet.registry.tables import ensure_tables, execute

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60.0
POLL_SECONDS = 5.0


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
            execute(cur, cfg, "lock_row")
            row = cur.fetchone()
            holder = None if row is None else row[0]
            free = holder is None or holder == pipeline_run
            if not free and (row[4] > stale or _dead_cli_holder(holder)):
                log.warning("taking over the run lock of %s from %s (bizdate %s), idle for "
                            "%.0f s", cfg.model_name, holder, row[1], row[4])
                free = True
            if free:
                execute(cur, cfg, "take_lock", pipeline_run=pipeline_run, bizdate=bizdate)
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
        execute(cur, cfg, "release_lock", pipeline_run=pipeline_run)
        return cur.rowcount > 0


def _renew(cfg: PipelineConfig, pipeline_run: str, url: str | None) -> None:
    with db.transaction(url) as cur:
        execute(cur, cfg, "renew_lock", pipeline_run=pipeline_run)


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
