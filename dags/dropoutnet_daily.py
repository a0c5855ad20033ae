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
| `resolve_bizdate` | the run's bizdate (the `bizdate` param if given, else the data interval's start); checks the config and the raw tables |
| `samples` | builds the bizdate's sample, feature-binning and held-out eval partitions (SQL) |
| `train` | trains DropoutNet, warm-starting from the previous bizdate's checkpoint |
| `export` | writes the user-tower and item-tower SavedModels |
| `user_embeddings` | batch-predicts active users' vectors into pgvector (a candidate, not live yet) |
| `item_embeddings` | embeds the served item pool into pgvector with its HNSW index (a candidate, not live yet) |
| `evaluate` | AUC, recall@K and NDCG@K on three held-out splits (cold items, warm items, cold users), with baselines |
| `publish` | makes the version's embeddings and model live in one transaction, if it passes the quality gate (`force_publish` overrides) |
| `deploy` | copies the live version's item (and user) tower into the model service's base path as version yyyymmdd (atomic rename) |

Runs never overlap (`max_active_runs=1`): warm start needs the previous day's model.
Every task is idempotent; rerunning a bizdate replaces its outputs.
"""

DAG_ID = "dropoutnet_daily"


def _config_path() -> str | None:
    return os.environ.get("DROPOUTNET_CONFIG") or None


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
        from dropoutnet.config import ConfigError

        ctx = get_current_context()
        try:
            bizdate = pipeline.resolve_bizdate(
                ctx["params"].get("bizdate"),
                ctx.get("data_interval_start"),
                ctx.get("logical_date"),
            )
            # the config, the bizdate and the raw tables are checked before any task writes
            pipeline.check(bizdate, _config_path())
        except (pipeline.BizdateError, ConfigError) as exc:
            # a bad bizdate or config does not get better by retrying: fail the run now
            raise AirflowFailException(str(exc)) from exc
        return bizdate

    @task
    def samples(bizdate: str) -> dict:
        from dropoutnet import pipeline

        return pipeline.samples(bizdate, _config_path())

    @task
    def train(bizdate: str) -> dict:
        from dropoutnet import pipeline

        return pipeline.train(bizdate, _config_path())

    @task
    def export(bizdate: str) -> dict:
        from dropoutnet import pipeline

        return pipeline.export(bizdate, _config_path())

    @task
    def user_embeddings(bizdate: str) -> dict:
        from dropoutnet import pipeline

        return pipeline.user_embeddings(bizdate, _config_path())

    @task
    def item_embeddings(bizdate: str) -> dict:
        from dropoutnet import pipeline

        return pipeline.item_embeddings(bizdate, _config_path())

    @task
    def evaluate(bizdate: str) -> dict:
        from dropoutnet import pipeline

        return pipeline.evaluate(bizdate, _config_path())

    @task
    def publish(bizdate: str) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from dropoutnet import pipeline
        from dropoutnet.publish import QualityGateError

        force = bool(get_current_context()["params"].get("force_publish"))
        try:
            return pipeline.publish(bizdate, _config_path(), force_publish=force)
        except QualityGateError as exc:
            # the old version stays active; retrying would measure the same figures again
            raise AirflowFailException(str(exc)) from exc

    @task
    def deploy(bizdate: str) -> dict:
        from dropoutnet import pipeline

        return pipeline.deploy(bizdate, _config_path())

    day = resolve_bizdate()
    (
        samples(day)
        >> train(day)
        >> export(day)
        >> [user_embeddings(day), item_embeddings(day)]
        >> evaluate(day)
        >> publish(day)
        >> deploy(day)
    )


dropoutnet_daily()
