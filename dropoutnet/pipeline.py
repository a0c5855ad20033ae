"""One function per task of the daily DAG, in order; plain Python, testable without Airflow.

Each task takes the bizdate (``YYYY-MM-DD``) and the pipeline config path, does exactly that
bizdate's work idempotently (a rerun replaces its outputs) and returns a small JSON-able dict
that Airflow keeps as the task's XCom and the CLI prints.  :data:`STEPS` names them in order:
the DAG (``dags/dropoutnet_daily.py``) and :func:`run` call them through it, so a bizdate can be
followed from either into its step (``dropoutnet.steps.<name>``).

Every task runs under the model's run lock (:func:`dropoutnet.registry.holding`): with a
``pipeline_run`` (the Airflow DAG run id, or :func:`run`'s own id) the run's first task
(:func:`check`) takes it, waiting up to ``runs.lock_wait_minutes``, its other tasks keep it
and :func:`release` ends it; a task called on its own holds it for its duration.

The steps are imported inside the functions: a task process imports only its own step (the
``samples`` task never loads TensorFlow), and Airflow's parsers never import this module.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from dropoutnet.config import ConfigError, PipelineConfig, default_config_path, load_config
from dropoutnet.core.dates import BizdateError, parse_bizdate, today_utc
from dropoutnet.core.errors import QualityGateError, RunLockError

log = logging.getLogger(__name__)

MAKE_LIVE_HELP = ("make this bizdate's version live even when a later bizdate's version is "
                  "active (a rollback; no quality gate applies); without it a backfilled "
                  "older bizdate is kept as superseded")
# the errors of the first task that no retry can fix: the DAG fails the run at once on them
CHECK_ERRORS: tuple[type[Exception], ...] = (BizdateError, ConfigError, RunLockError)


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
    return (today_utc() - dt.timedelta(days=1)).isoformat()


def load(config_path: str | None) -> PipelineConfig:
    """The validated pipeline config (``DROPOUTNET_CONFIG`` or the demo one by default)."""
    return load_config(config_path or default_config_path())


@contextmanager
def _task(bizdate: str, config_path: str | None, pipeline_run: str | None,
          wait_seconds: float = 0.0) -> Iterator[tuple[PipelineConfig, dt.date, str]]:
    """The task's validated config and bizdate, and the pipeline run it belongs to, under the
    model's run lock."""
    from dropoutnet import registry

    day, cfg = parse_bizdate(bizdate), load(config_path)
    with registry.holding(cfg, day, pipeline_run, wait_seconds) as holder:
        yield cfg, day, holder


def check(bizdate: str, config_path: str | None = None,
          pipeline_run: str | None = None) -> dict[str, Any]:
    """Validate the bizdate, the config and the raw tables before any task writes anything;
    then take the model's run lock for ``pipeline_run``."""
    from dropoutnet import registry
    from dropoutnet.core import db
    from dropoutnet.steps.samples import check_raw_tables

    day = parse_bizdate(bizdate)
    cfg = load(config_path)
    with db.transaction() as cur:
        check_raw_tables(cur, cfg)
    out = {"bizdate": day.isoformat(), "model_name": cfg.model_name, "config": "ok"}
    if pipeline_run is not None:
        registry.acquire(cfg, pipeline_run, day, cfg.runs.lock_wait_minutes * 60)
        out["pipeline_run"] = pipeline_run
    return out


def release(config_path: str | None, pipeline_run: str) -> dict[str, Any]:
    """Release the model's run lock held by ``pipeline_run`` (the DAG's teardown)."""
    from dropoutnet import registry

    cfg = load(config_path)
    return {"pipeline_run": pipeline_run, "released": registry.release(cfg, pipeline_run)}


def samples(bizdate: str, config_path: str | None = None,
            pipeline_run: str | None = None) -> dict[str, Any]:
    """Training samples, cold-start eval samples and feature boundaries of the bizdate."""
    from dropoutnet.steps.samples import build_samples

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, _):
        return build_samples(cfg, day)


def train(bizdate: str, config_path: str | None = None,
          pipeline_run: str | None = None) -> dict[str, Any]:
    """Train a new run of the bizdate, warm-starting from the newest earlier checkpoint
    within ``training.warm_start_max_gap_days``; the run becomes current when complete.

    A non-chief member of a platform's cluster (``TF_CONFIG``,
    :mod:`dropoutnet.training.cluster`) trains along without the model's run lock: its chief
    holds it for the run."""
    from dropoutnet.steps.train import train as train_run
    from dropoutnet.training import cluster

    member = cluster.from_environment()
    if member is not None and not member.chief:
        return train_run(load(config_path), parse_bizdate(bizdate), pipeline_run or "")
    with _task(bizdate, config_path, pipeline_run) as (cfg, day, holder):
        return train_run(cfg, day, holder)


def export(bizdate: str, config_path: str | None = None,
           pipeline_run: str | None = None) -> dict[str, Any]:
    """The final, user and item SavedModels of the bizdate's current run."""
    from dropoutnet.steps.export import export as export_run

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, _):
        return export_run(cfg, day)


def user_embeddings(bizdate: str, config_path: str | None = None,
                    pipeline_run: str | None = None) -> dict[str, Any]:
    """Every active user's vector of the bizdate's version, into pgvector."""
    from dropoutnet.steps.embeddings import write_embeddings

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, _):
        return write_embeddings(cfg, day, "user")


def item_embeddings(bizdate: str, config_path: str | None = None,
                    pipeline_run: str | None = None) -> dict[str, Any]:
    """The candidate pool's vectors of the bizdate's version, with an HNSW index."""
    from dropoutnet.steps.embeddings import write_embeddings

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, _):
        return write_embeddings(cfg, day, "item")


def evaluate(bizdate: str, config_path: str | None = None,
             pipeline_run: str | None = None) -> dict[str, Any]:
    """AUC and retrieval metrics on the bizdate's three eval splits, with baselines; stored."""
    from dropoutnet.steps.evaluate import evaluate as evaluate_version
    from dropoutnet.steps.train import report

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, _):
        stats = report(cfg, day)
        extra = {"train": {k: stats.get(k) for k in (
            "rows", "positives", "steps", "loss", "train_auc", "warm_started",
            "warm_start_from", "loss_per_epoch")}} if stats else {}
        return evaluate_version(cfg, day, extra=extra)


def publish(bizdate: str, config_path: str | None = None, force_publish: bool = False,
            make_live: bool = False, pipeline_run: str | None = None,
            actor: str | None = None) -> dict[str, Any]:
    """Make the bizdate's version the active one (atomically) if it passes the quality gate;
    an older bizdate than the active version's is kept as superseded unless ``make_live``.
    ``actor`` is the Airflow user (or ``scheduler``, ``backfill``) of the DAG run that
    publishes, for the activation history; without it, this machine's user.
    Warns first when no stream worker keeps the new version's new items coming (its slot is
    missing or stale): they would wait for tomorrow's run."""
    from dropoutnet import registry
    from dropoutnet.steps.publish import publish as publish_version
    from dropoutnet.stream.worker import slot_warning

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, holder):
        warning = slot_warning(cfg)
        if warning:
            log.warning("%s", warning)
        change = (registry.Change(actor, "airflow dag", holder) if actor
                  else registry.Change.cli(holder))
        return publish_version(cfg, day, force=force_publish, make_live=make_live,
                               change=change)


def deploy(bizdate: str, config_path: str | None = None,
           pipeline_run: str | None = None) -> dict[str, Any]:
    """Copy the active version's towers into the model service's base path (atomically);
    nothing to do when the bizdate's version was kept as superseded."""
    from dropoutnet.steps.deploy import deploy as deploy_version

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, _):
        return deploy_version(cfg, day)


def retention(bizdate: str, config_path: str | None = None,
              pipeline_run: str | None = None) -> dict[str, Any]:
    """Drop the versions, partitions, checkpoints and leftovers the config no longer keeps."""
    from dropoutnet.steps.retention import apply_retention

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, _):
        return apply_retention(cfg, day)


def online_metrics(bizdate: str, config_path: str | None = None,
                   pipeline_run: str | None = None) -> dict[str, Any]:
    """What users did with the lists served on the bizdate, per version, arm and channel
    (from the served log and the bizdate's raw events only); stored."""
    from dropoutnet.steps.online_metrics import online_metrics as compute

    with _task(bizdate, config_path, pipeline_run) as (cfg, day, _):
        return compute(cfg, day)


@dataclass(frozen=True)
class Task:
    """A task of the daily DAG: the function that does it, the run options it reads (the DAG's
    params, the CLI's flags), the errors that no retry can fix (the DAG fails the run at
    once on them instead of retrying) and whether it may change the active version (then it
    takes the run's ``actor`` for the activation history)."""

    run: Callable[..., dict[str, Any]]
    options: tuple[str, ...] = ()
    final_errors: tuple[type[Exception], ...] = ()
    audited: bool = False  # it may change the active version: the DAG passes the ``actor``


# The tasks between the DAG's check (:func:`check`) and its teardown (:func:`release`), in the
# order they run.  The DAG wires user_embeddings and item_embeddings side by side, and
# online_metrics beside the whole training chain.
STEPS: dict[str, Task] = {
    "online_metrics": Task(online_metrics),
    "samples": Task(samples),
    "train": Task(train),
    "export": Task(export),
    "user_embeddings": Task(user_embeddings),
    "item_embeddings": Task(item_embeddings),
    "evaluate": Task(evaluate),
    "publish": Task(publish, options=("force_publish", "make_live"),
                    final_errors=(QualityGateError,), audited=True),
    "deploy": Task(deploy),
    "retention": Task(retention),
}
TASKS = tuple(STEPS)


def rollback(to_version: str, config_path: str | None = None, *, actor: str | None = None,
             source: str = "cli", reason: str | None = None) -> dict[str, Any]:
    """Make an earlier published version active again and deploy it: ``dropoutnet rollback``
    and the Airflow UI's Make live.  ``actor`` (default: this machine's user), ``source`` and
    ``reason`` go into the activation history."""
    from dropoutnet import registry
    from dropoutnet.core import db
    from dropoutnet.steps.deploy import deploy as deploy_version
    from dropoutnet.steps.publish import rollback as rollback_version

    cfg = load(config_path)
    with db.transaction() as cur:
        active = registry.active(cur, cfg)
    day = active.bizdate if active else dt.date.today()
    with registry.holding(cfg, day):
        change = registry.Change(actor or registry.cli_actor(), source, None, reason)
        result = rollback_version(cfg, to_version, change=change)
        result["deploy"] = deploy_version(cfg, dt.date.fromisoformat(result["bizdate"]))
    return result


def run(bizdate: str, config_path: str | None = None,
        tasks: tuple[str, ...] = TASKS, force_publish: bool = False,
        make_live: bool = False, wait_seconds: float = 0.0) -> dict[str, Any]:
    """The DAG's task chain in one process, without Airflow (the same functions, in order),
    as one pipeline run holding the model's run lock throughout."""
    from dropoutnet import registry
    from dropoutnet.training import cluster

    member = cluster.from_environment()
    if member is not None and not member.chief:  # the chief runs the pipeline
        if set(tasks) != {"train"}:
            raise ConfigError(
                f"this process is {member.name} of a cluster ({cluster.ENV}) and not its "
                f"chief: it runs the train task only (--tasks train), got {', '.join(tasks)}")
        return {"train": train(bizdate, config_path)}
    holder = registry.cli_pipeline_run()
    cfg, day = load(config_path), parse_bizdate(bizdate)
    check(bizdate, config_path)
    registry.acquire(cfg, holder, day, wait_seconds)
    options = {"force_publish": force_publish, "make_live": make_live}
    results: dict[str, Any] = {}
    try:
        for name, task in STEPS.items():
            if name in tasks:
                log.info("running task %s for bizdate %s", name, bizdate)
                results[name] = task.run(bizdate, config_path, pipeline_run=holder,
                                         **{k: options[k] for k in task.options})
    finally:
        registry.release(cfg, holder)
    return results
