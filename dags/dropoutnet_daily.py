"""The daily DropoutNet cold-start recall pipeline: wiring only, the logic is in dropoutnet.pipeline.

Parsed again and again by the dag-processor and by every task process, so the top level imports
Airflow's SDK and the standard library only: ``dropoutnet.pipeline`` (and through it TensorFlow)
is imported inside the task functions.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task

DOC_MD = """
### DropoutNet daily cold-start recall

One run processes one **bizdate**: a day whose data is complete. The schedule is a daily
*data-interval* timetable, so a run's data interval *is* its bizdate: the run made just after
midnight UTC on 11-29 processes bizdate 11-28 (its `ds`), and
`airflow backfill create --dag-id dropoutnet_daily --from-date 2026-11-05 --to-date 2026-11-06`
processes bizdates 11-05 and 11-06, in that order.
For a manual run, fill in **bizdate** (`YYYY-MM-DD`) in the trigger form; left empty, a manual
run processes yesterday (UTC).

| task | what it does |
|---|---|
| `resolve_bizdate` | the run's bizdate (the `bizdate` param if given, else the data interval's start); checks the Airflow connection `dropoutnet_db`, the config and the raw tables; takes the model's run lock (setup) |
| `samples` | builds the bizdate's sample, feature-binning and held-out eval partitions (SQL) |
| `train` | trains DropoutNet, warm-starting from the previous bizdate's checkpoint |
| `export` | writes the user-tower and item-tower SavedModels |
| `user_embeddings` | batch-predicts active users' vectors into pgvector (a candidate, not live yet) |
| `item_embeddings` | embeds the served item pool into pgvector with its HNSW index (a candidate, not live yet) |
| `evaluate` | AUC, recall@K and NDCG@K on three held-out splits (cold items, warm items, cold users), with baselines |
| `publish` | makes the version's embeddings and model live in one transaction, if it passes the quality gate (`force_publish` overrides); a bizdate older than the live version's is kept as superseded (`make_live` makes it live) |
| `deploy` | copies the live version's item (and user) tower into the model service's base path as version yyyymmdd (atomic rename) |
| `retention` | drops the versions, sample partitions, checkpoints and leftovers older than the config's `retention` keeps (never the live version or the one before it) |
| `release_run_lock` | ends the run's hold on the model's run lock, whatever happened before (teardown) |

**The database** is the Airflow connection `dropoutnet_db` (a Postgres connection; set
`AIRFLOW_CONN_DROPOUTNET_DB` or add it under Admin > Connections). Every task requires it: a
missing or unusable one fails `resolve_bizdate` with its name and the fix.

One run per model at a time, whatever starts it: besides `max_active_runs=1`, the first task
takes the model's run lock in the database (a backfill or `dropoutnet run` of the same model
waits for it, then fails naming the holder). Every task is idempotent; rerunning a bizdate
replaces its outputs. A backfill of days older than the live version trains, evaluates and
keeps those versions as superseded: it never puts an old model live unless `make_live` is set
(or `dropoutnet rollback --to VERSION`).
"""

DAG_ID = "dropoutnet_daily"


def _config_path() -> str | None:
    return os.environ.get("DROPOUTNET_CONFIG") or None


def _database(check: bool = False) -> None:
    """Point this task process at the pipeline's database: the Airflow connection
    ``airflow_connection.CONN_ID`` (required; ``check`` also connects once, in the run's first
    task)."""
    from airflow.sdk import BaseHook, Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from dropoutnet import airflow_connection

    def lookup(conn_id: str):
        try:
            return BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return None

    def parse(value: str):  # what Airflow makes of an AIRFLOW_CONN_... value, or its error
        if value.lstrip().startswith("{"):
            return Connection.from_json(value, conn_id=airflow_connection.CONN_ID)
        return Connection(conn_id=airflow_connection.CONN_ID, uri=value)

    airflow_connection.use(lookup, parse=parse, check=check)


def _run() -> str:
    """This DAG run's id: the holder of the model's run lock."""
    return get_current_context()["run_id"]


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=1)},
    params={
        "force_publish": Param(
            False,
            type="boolean",
            title="force_publish",
            description="Publish this run's model even if it fails the quality gate (its "
                        "cold-item metric below the active version's times 1 - tolerance).",
        ),
        "make_live": Param(
            False,
            type="boolean",
            title="make_live",
            description="Make this bizdate's version live even when a later bizdate's version "
                        "is active (a rollback; no quality gate applies). Off: a backfilled "
                        "older bizdate is kept as superseded.",
        ),
        "bizdate": Param(
            None,
            type=["null", "string"],
            format="date",
            title="bizdate",
            description="The day to process, YYYY-MM-DD (for example 2026-11-28). It overrides "
                        "the run's own date; leave it empty to process the run's data interval "
                        "(yesterday, for a manual run).",
        ),
    },
    tags=["dropoutnet", "cold-start", "recall"],
    doc_md=DOC_MD,
)
def dropoutnet_daily():
    @task
    def resolve_bizdate() -> str:
        from airflow.sdk.exceptions import AirflowFailException

        from dropoutnet import pipeline
        from dropoutnet.airflow_connection import AirflowConnectionError
        from dropoutnet.config import ConfigError
        from dropoutnet.registry import RunLockError

        ctx = get_current_context()
        try:
            bizdate = pipeline.resolve_bizdate(
                ctx["params"].get("bizdate"),
                ctx.get("data_interval_start"),
                ctx.get("logical_date"),
            )
            # the database connection: a missing or malformed one fails the run now; one whose
            # database does not answer (DatabaseUnreachableError) is retried
            _database(check=True)
            # the config, the bizdate and the raw tables are checked before any task writes;
            # then the run takes the model's run lock (waiting runs.lock_wait_minutes)
            pipeline.check(bizdate, _config_path(), pipeline_run=ctx["run_id"])
        except (pipeline.BizdateError, AirflowConnectionError, ConfigError, RunLockError) as exc:
            # a bad bizdate, connection or config does not get better by retrying, and the
            # lock was already waited for: fail the run now
            raise AirflowFailException(str(exc)) from exc
        return bizdate

    @task
    def samples(bizdate: str) -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.samples(bizdate, _config_path(), pipeline_run=_run())

    @task
    def train(bizdate: str) -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.train(bizdate, _config_path(), pipeline_run=_run())

    @task
    def export(bizdate: str) -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.export(bizdate, _config_path(), pipeline_run=_run())

    @task
    def user_embeddings(bizdate: str) -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.user_embeddings(bizdate, _config_path(), pipeline_run=_run())

    @task
    def item_embeddings(bizdate: str) -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.item_embeddings(bizdate, _config_path(), pipeline_run=_run())

    @task
    def evaluate(bizdate: str) -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.evaluate(bizdate, _config_path(), pipeline_run=_run())

    @task
    def publish(bizdate: str) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from dropoutnet import pipeline
        from dropoutnet.steps.publish import QualityGateError

        _database()
        params = get_current_context()["params"]
        try:
            return pipeline.publish(bizdate, _config_path(),
                                    force_publish=bool(params.get("force_publish")),
                                    make_live=bool(params.get("make_live")),
                                    pipeline_run=_run())
        except QualityGateError as exc:
            # the old version stays active; retrying would measure the same figures again
            raise AirflowFailException(str(exc)) from exc

    @task
    def deploy(bizdate: str) -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.deploy(bizdate, _config_path(), pipeline_run=_run())

    @task
    def retention(bizdate: str) -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.retention(bizdate, _config_path(), pipeline_run=_run())

    @task
    def release_run_lock() -> dict:
        from dropoutnet import pipeline

        _database()
        return pipeline.release(_config_path(), _run())

    day = resolve_bizdate()
    (
        samples(day)
        >> train(day)
        >> export(day)
        >> [user_embeddings(day), item_embeddings(day)]
        >> evaluate(day)
        >> publish(day)
        >> deploy(day)
        >> retention(day)
        >> release_run_lock().as_teardown(setups=day)
    )


dropoutnet_daily()
