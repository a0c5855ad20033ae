"""Integrity of the daily DAG, its plugin and its bizdate rule.

Airflow is imported only in a subprocess (with the environment
``dropoutnet.local.stack.airflow_env`` builds, pointed at a temporary home), so this test process
never reads or writes an Airflow configuration and the DAG file's imports can be inspected from a
clean interpreter.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from dropoutnet import pipeline
from dropoutnet.core.dates import BizdateError
from dropoutnet.local import stack

DAG_ID = "dropoutnet_daily"
TASK_ORDER = ["resolve_bizdate", "online_metrics", "samples", "train", "export", "user_embeddings",
              "item_embeddings", "evaluate", "publish", "deploy", "retention", "release_run_lock"]
HEAVY_MODULES = ("tensorflow", "keras", "dropoutnet.pipeline", "dropoutnet.training.fit",
                 "dropoutnet.steps", "dropoutnet.model")

# Runs in a fresh interpreter: parse the DAG folder, load the plugins, serialize the DAG as the
# dag-processor does, and report what the tests below check, as JSON on the last line.
_PROBE = r"""
import datetime as dt, json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowDagCycleException

bag = DagBag(sys.argv[1])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")
               or m.startswith(("dropoutnet.pipeline", "dropoutnet.training.fit",
                                 "dropoutnet.steps", "dropoutnet.model")))
out = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
       "dag_ids": sorted(bag.dags), "heavy_modules_after_parse": heavy}
dag = bag.dags.get(sys.argv[2])
if dag is not None:
    try:
        dag.check_cycle()
        out["cycle"] = None
    except AirflowDagCycleException as exc:
        out["cycle"] = str(exc)
    param = dag.params.get_param("bizdate")
    out.update(
        tasks={t.task_id: {"retries": t.retries,
                           "retry_delay": t.retry_delay.total_seconds() if t.retry_delay else None,
                           "downstream": sorted(t.downstream_task_ids),
                           "setup": t.is_setup, "teardown": t.is_teardown} for t in dag.tasks},
        timetable=type(dag.timetable).__module__ + "." + type(dag.timetable).__name__,
        catchup=dag.catchup, max_active_runs=dag.max_active_runs, tags=sorted(dag.tags),
        doc_md=bool(dag.doc_md),
        param={"value": param.value, "schema": param.schema, "description": param.description},
        force_publish=dag.params.get_param("force_publish").value,
        make_live=dag.params.get_param("make_live").value,
    )
    # The dag-processor's view: serialize, deserialize, and ask the scheduler-side timetable.
    from airflow.serialization.serialized_objects import DagSerialization
    ser = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    utc = dt.timezone.utc
    infos = list(ser.iter_dagrun_infos_between(dt.datetime(2026, 11, 5, tzinfo=utc),
                                               dt.datetime(2026, 11, 6, tzinfo=utc)))
    out["backfill_5_to_6"] = [[i.logical_date.isoformat(), i.data_interval.start.isoformat(),
                               i.data_interval.end.isoformat()] for i in infos]
    manual = ser.timetable.infer_manual_data_interval(run_after=dt.datetime(2026, 11, 29, 6, 30, tzinfo=utc))
    out["manual_interval_at_11_29_0630"] = [manual.start.isoformat(), manual.end.isoformat()]
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()
plugins, _ = plugins_manager._get_plugins()
out["plugins"] = {p.name: [m.__name__ for m in p.macros] for p in plugins}
out["plugin_errors"] = {str(k): str(v) for k, v in plugins_manager.get_import_errors().items()}
for p in plugins:
    if p.name == "dropoutnet":
        start = dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc)
        out["macro_values"] = [m(None, start) for m in p.macros] + [m("2026-11-05", start) for m in p.macros]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    base = tmp_path_factory.mktemp("dag_probe_home")
    env = stack.airflow_env(base=base, sql_alchemy_conn=f"sqlite:///{base}/airflow.db")
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(stack.DAGS_FOLDER), DAG_ID],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dag_imports_cleanly(probe):
    assert probe["import_errors"] == {}
    assert DAG_ID in probe["dag_ids"]


def test_dag_has_no_cycle_and_the_documented_order(probe):
    assert probe["cycle"] is None
    tasks = probe["tasks"]
    assert sorted(tasks) == sorted(TASK_ORDER)
    # the DAG wires the pipeline's table of steps, between its setup and its teardown
    assert list(pipeline.STEPS) == list(pipeline.TASKS) == TASK_ORDER[1:-1]
    assert tasks["samples"]["downstream"] == ["train"]
    assert tasks["train"]["downstream"] == ["export"]
    assert tasks["export"]["downstream"] == ["item_embeddings", "user_embeddings"]
    assert tasks["user_embeddings"]["downstream"] == ["evaluate"]
    assert tasks["item_embeddings"]["downstream"] == ["evaluate"]
    assert tasks["evaluate"]["downstream"] == ["publish"]
    assert tasks["publish"]["downstream"] == ["deploy"]
    assert tasks["deploy"]["downstream"] == ["retention"]
    assert tasks["retention"]["downstream"] == ["release_run_lock"]
    # online metrics judge the day's serving beside the training chain
    assert tasks["online_metrics"]["downstream"] == ["release_run_lock"]
    # every task gets the bizdate from resolve_bizdate
    assert set(tasks["resolve_bizdate"]["downstream"]) == set(TASK_ORDER) - {"resolve_bizdate"}


def test_the_run_lock_is_taken_by_a_setup_and_released_by_a_teardown(probe):
    # a teardown runs whenever its setup succeeded, even after a failed task, is cleared with
    # any task of the run, and does not decide the run's state
    tasks = probe["tasks"]
    assert tasks["resolve_bizdate"]["setup"] is True
    assert tasks["release_run_lock"]["teardown"] is True
    assert tasks["release_run_lock"]["downstream"] == []
    assert [t for t, v in tasks.items() if v["setup"] or v["teardown"]] == [
        "resolve_bizdate", "release_run_lock"]


def test_every_task_retries(probe):
    for task_id, task in probe["tasks"].items():
        assert task["retries"] >= 1, task_id
        assert task["retry_delay"] == 60, task_id  # DROPOUTNET_TASK_RETRY_DELAY's default


@pytest.mark.parametrize("value", ["a minute", "-5", "1e9"])
def test_a_wrong_retry_delay_is_refused_by_name(monkeypatch, value):
    """The DAG's import error (shown in the UI) names the setting and the fix."""
    import runpy

    monkeypatch.setenv("DROPOUTNET_TASK_RETRY_DELAY", value)
    with pytest.raises(ValueError, match=f"DROPOUTNET_TASK_RETRY_DELAY='{value}' is not a "
                                         "number of seconds from 0 to 86400: set it to"):
        runpy.run_path(str(stack.DAGS_FOLDER / "dropoutnet_daily.py"))


def test_schedule_is_a_daily_data_interval_timetable(probe):
    assert probe["timetable"].endswith(".CronDataIntervalTimetable")
    assert probe["catchup"] is False
    assert probe["max_active_runs"] == 1
    assert probe["doc_md"] and "dropoutnet" in probe["tags"]


def test_backfill_range_means_those_bizdates_in_order(probe):
    # `airflow backfill create --from-date 2026-11-05 --to-date 2026-11-06` creates these runs:
    # one per bizdate, whose data interval starts on that bizdate.
    assert probe["backfill_5_to_6"] == [
        ["2026-11-05T00:00:00+00:00", "2026-11-05T00:00:00+00:00", "2026-11-06T00:00:00+00:00"],
        ["2026-11-06T00:00:00+00:00", "2026-11-06T00:00:00+00:00", "2026-11-07T00:00:00+00:00"],
    ]
    # a run made on 11-29 (scheduled or manual without a bizdate) covers 11-28: yesterday
    assert probe["manual_interval_at_11_29_0630"] == ["2026-11-28T00:00:00+00:00",
                                                      "2026-11-29T00:00:00+00:00"]


def test_bizdate_param_for_the_trigger_form(probe):
    param = probe["param"]
    assert param["value"] is None
    assert param["schema"]["type"] == ["null", "string"]
    assert "YYYY-MM-DD" in param["description"]


def test_force_publish_param_defaults_to_respecting_the_gate(probe):
    assert probe["force_publish"] is False


def test_make_live_param_defaults_to_keeping_old_bizdates_superseded(probe):
    assert probe["make_live"] is False


def test_dag_file_imports_nothing_heavy(probe):
    assert probe["heavy_modules_after_parse"] == []


def test_plugin_loads_with_its_macros(probe):
    assert probe["plugin_errors"] == {}
    assert probe["plugins"].get("dropoutnet") == ["bizdate", "bizdate_nodash"]
    # the macros apply the DAG's rule: the bizdate param wins, else the data interval's start
    assert probe["macro_values"] == ["2026-11-27", "20261127", "2026-11-05", "20261105"]


def test_dag_file_alone_does_not_import_tensorflow(tmp_path):
    """A fresh interpreter importing just the DAG file: no TensorFlow, no pipeline code."""
    env = stack.airflow_env(base=tmp_path, sql_alchemy_conn=f"sqlite:///{tmp_path}/airflow.db")
    code = ("import importlib.util, json, sys\n"
            f"spec = importlib.util.spec_from_file_location('dag_under_test', {str(stack.DAGS_FOLDER / 'dropoutnet_daily.py')!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') "
            f"or m in {list(HEAVY_MODULES)!r})))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


# --- the bizdate rule (dropoutnet.pipeline.resolve_bizdate, called by the first task) -----------

UTC = dt.timezone.utc


def test_scheduled_run_processes_its_data_interval():
    # the run the scheduler makes at 2026-11-28 00:00 UTC covers [11-27, 11-28): bizdate 11-27
    start = dt.datetime(2026, 11, 27, tzinfo=UTC)
    assert pipeline.resolve_bizdate(None, start, start) == "2026-11-27"


def test_manual_run_with_a_bizdate_param_processes_that_day():
    start = dt.datetime(2026, 11, 27, tzinfo=UTC)
    assert pipeline.resolve_bizdate("2026-11-05", start, start) == "2026-11-05"
    assert pipeline.resolve_bizdate("2026-11-05", None, None) == "2026-11-05"


def test_manual_run_without_param_and_without_dates_processes_yesterday():
    yesterday = dt.datetime.now(UTC).date() - dt.timedelta(days=1)
    assert pipeline.resolve_bizdate(None, None, None) == yesterday.isoformat()
    assert pipeline.resolve_bizdate("", None, None) == yesterday.isoformat()


def test_manual_run_with_only_a_logical_date():
    assert pipeline.resolve_bizdate(None, None, dt.datetime(2026, 11, 20, 13, 5, tzinfo=UTC)) == "2026-11-20"


@pytest.mark.parametrize("bad", ["2026-02-30", "yesterday", "28/11/2026"])
def test_a_bad_bizdate_param_is_a_clear_error(bad):
    with pytest.raises(BizdateError, match="YYYY-MM-DD"):
        pipeline.resolve_bizdate(bad, None, None)


def test_a_future_bizdate_is_refused():
    tomorrow = dt.datetime.now(UTC).date() + dt.timedelta(days=1)
    with pytest.raises(BizdateError, match="after today"):
        pipeline.resolve_bizdate(tomorrow.isoformat(), None, None)

