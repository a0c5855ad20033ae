"""The daily DropoutNet cold-start recall pipeline: wiring only, the logic is in dropoutnet.pipeline.

Parsed again and again by the dag-processor and by every task process, so the top level imports
Airflow's SDK and the standard library only: ``dropoutnet.pipeline`` (and through it TensorFlow)
is imported inside the task functions.  The tasks' documentation is ``dropoutnet_daily.md``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

DAG_ID = "dropoutnet_daily"
DOC_MD = (Path(__file__).parent / "dropoutnet_daily.md").read_text()


def _config_path() -> str | None:
    return os.environ.get("DROPOUTNET_CONFIG") or None


def _retry_delay() -> dt.timedelta:
    """How long a failed task waits before its retry: ``DROPOUTNET_TASK_RETRY_DELAY`` seconds
    (default 60; docker-compose.yml passes it from .env), read as the DAG is parsed."""
    value = os.environ.get("DROPOUTNET_TASK_RETRY_DELAY", "").strip() or "60"
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:
        raise ValueError(f"DROPOUTNET_TASK_RETRY_DELAY={value!r} is not a number of seconds "
                         "from 0 to 86400: set it to how long a failed task waits before its "
                         "retry (default 60)")
    return dt.timedelta(seconds=seconds)


def _param(title: str, default, kind, description: str, **schema) -> Param:
    return Param(default, type=kind, title=title, description=description, **schema)


@task
def resolve_bizdate() -> str:
    """The run's bizdate; the connection, config and raw tables checked; the run lock taken."""
    from airflow.sdk.exceptions import AirflowFailException

    from dropoutnet import airflow_connection, pipeline
    from dropoutnet.airflow_connection import AirflowConnectionError

    ctx = get_current_context()
    try:
        bizdate = pipeline.resolve_bizdate(ctx["params"].get("bizdate"),
                                           ctx.get("data_interval_start"), ctx.get("logical_date"))
        # a missing or malformed connection fails the run now; an unreachable database retries
        airflow_connection.use_in_task(check=True)
        pipeline.check(bizdate, _config_path(), pipeline_run=ctx["run_id"])
    except (*pipeline.CHECK_ERRORS, AirflowConnectionError) as exc:
        # a bad bizdate, connection or config does not get better by retrying, and the lock
        # was already waited for: fail the run now
        raise AirflowFailException(str(exc)) from exc
    return bizdate


def step(name: str):
    """The DAG task that runs ``dropoutnet.pipeline.STEPS[name]`` for the run's bizdate."""

    @task(task_id=name)
    def run_step(bizdate: str) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from dropoutnet import airflow_connection, pipeline

        spec, ctx = pipeline.STEPS[name], get_current_context()
        airflow_connection.use_in_task()
        options = {k: bool(ctx["params"].get(k)) for k in spec.options}
        if spec.audited:  # who moved the active version: the user who triggered the run
            run = ctx["dag_run"]
            options["actor"] = run.triggering_user_name or str(run.run_type.value)
        try:
            return spec.run(bizdate, _config_path(), pipeline_run=ctx["run_id"], **options)
        except spec.final_errors as exc:  # e.g. the quality gate: a retry measures the same
            raise AirflowFailException(str(exc)) from exc

    return run_step


@task
def release_run_lock() -> dict:
    """End the run's hold on the model's run lock, whatever happened before (teardown)."""
    from dropoutnet import airflow_connection, pipeline

    airflow_connection.use_in_task()
    return pipeline.release(_config_path(), get_current_context()["run_id"])


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": _retry_delay()},
    params={
        "force_publish": _param("force_publish", False, "boolean", "Publish this run's model "
                                "even if it fails the quality gate (its cold-item metric below "
                                "the active version's times 1 - tolerance)."),
        "make_live": _param("make_live", False, "boolean", "Make this bizdate's version live "
                            "even when a later bizdate's version is active (a rollback; no "
                            "quality gate applies). Off: a backfilled older bizdate is kept as "
                            "superseded."),
        "bizdate": _param("bizdate", None, ["null", "string"], "The day to process, "
                          "YYYY-MM-DD (for example 2026-11-28). It overrides the run's own date; "
                          "leave it empty to process the run's data interval (yesterday, for a "
                          "manual run).", format="date"),
    },
    tags=["dropoutnet", "cold-start", "recall"],
    doc_md=DOC_MD,
)
def dropoutnet_daily():
    day = resolve_bizdate()
    online, samples, train, export, users, items, evaluate, publish, deploy, retention = (
        step(name)(day) for name in ("online_metrics", "samples", "train", "export",
                                     "user_embeddings", "item_embeddings", "evaluate",
                                     "publish", "deploy", "retention"))
    # online_metrics judges what the versions served on the bizdate: it needs nothing the
    # training chain makes, so it runs beside it
    release = release_run_lock().as_teardown(setups=day)
    samples >> train >> export >> [users, items] >> evaluate >> publish >> deploy >> retention
    [online, retention] >> release


dropoutnet_daily()
