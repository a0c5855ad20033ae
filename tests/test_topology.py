"""The production topology as a tested path: the local stack's Celery mode (a Redis broker, two
Airflow Celery workers, the result backend on the metadata database) runs the daily DAG.

One stack for the module, in its own home with its own embedded Postgres, as a user starts it
(``AIRFLOW__CORE__EXECUTOR=CeleryExecutor make airflow``); the daily run goes through the real
scheduler, broker and workers, and the tasks find the pipeline's database through the Airflow
connection the stack defines (nothing else tells them where it is).  This is also the suite's
whole-DAG test: every task of ``dropoutnet_daily`` end to end, through Airflow, then a recall
from the published version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from helpers import fetch_all

from dropoutnet.core import processes
from dropoutnet.data import synthetic
from dropoutnet.local import demo, embedded_pg, stack

DAG_ID = "dropoutnet_daily"
TINY = dict(n_users=300, n_items=400, n_authors=30, days=16, new_items_per_day=40, seed=11)
TASKS = {"resolve_bizdate", "online_metrics", "samples", "train", "export", "user_embeddings",
         "item_embeddings", "evaluate", "publish", "deploy", "retention", "release_run_lock"}


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory):
    """The stack in Celery mode with tiny data: (home, app database URL, REST client, pids,
    the data's last day)."""
    base = tmp_path_factory.mktemp("celery_home")
    env = pytest.MonkeyPatch()
    env.setenv("DROPOUTNET_HOME", str(base))
    env.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    env.setenv("DROPOUTNET_CELERY_WORKERS", "2")
    env.setenv("DROPOUTNET_AIRFLOW_PORT", str(processes.free_port()))
    env.setenv("DROPOUTNET_WORKER_LOG_PORT", str(processes.free_port()))
    for name in ("DROPOUTNET_DATABASE_URL", "DROPOUTNET_CONFIG", "AIRFLOW_CONN_DROPOUTNET_DB",
                 "AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        env.delenv(name, raising=False)
    try:
        info = stack.start(base, echo=lambda _: None)
        url = embedded_pg.app_url(stack.postgres_socket_dir(base))
        # the daily schedule's run after the unpause processes yesterday (UTC)
        bizdate = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        synthetic.generate(url, end_date=bizdate, **TINY)
        pids = {**{c: stack._component_pid(c, base) for c in stack.components(base)},
                "redis": processes.pid_from_file(stack.run_dir(base) / "redis.pid")}
        api = demo.AirflowAPI(stack.api_port(base), info.user, info.password)
        yield base, url, api, pids, bizdate
    finally:
        stack.stop(base, echo=lambda _: None)
        env.undo()


def _task(api: demo.AirflowAPI, run_id: str, task_id: str) -> dict | None:
    return next((t for t in demo.task_instances(api, run_id) if t["task_id"] == task_id), None)


def _lose_worker(base: Path, name: str) -> None:
    """What a lost container is: the worker, its pool and the task's processes, SIGKILLed."""
    pid = stack._component_pid(name, base)
    for member in processes.tree(pid, processes.table()):
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_lost_worker_costs_the_run_one_retry_within_two_minutes(celery_stack):
    """The daily DAG on two Celery workers; the worker running ``train`` is lost mid-task.
    The scheduler notices within the heartbeat timeout, the retry runs on the other worker,
    and the run ends as an uninterrupted one would."""
    base, url, api, pids, bizdate = celery_stack
    assert all(pids.values()), pids  # the broker, the four components and two workers

    demo.ensure_dag(stack.airflow_env(base=base))
    # unpaused, the scheduler starts the daily run of the last complete day (the data's last)
    api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    deadline = time.monotonic() + 60
    while not (runs := demo.runs_for(api, [bizdate.isoformat()])):
        assert time.monotonic() < deadline, "the scheduler made no run for the last day"
        time.sleep(0.5)
    run_id = runs[bizdate.isoformat()]["dag_run_id"]
    run_path = f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    # lost mid-training: once train has recorded its training run in the registry
    deadline = time.monotonic() + 300
    while not ((train := _task(api, run_id, "train")) and train["state"] == "running"
               and train.get("hostname") and fetch_all(
                   url, "select count(*) from dropoutnet.runs where status = 'running'")[0][0]):
        assert time.monotonic() < deadline, demo.task_instances(api, run_id)
        time.sleep(0.5)
    lost = train["hostname"]
    _lose_worker(base, lost)
    lost_at = time.monotonic()

    retried_after = None
    while (run := api.call("GET", run_path))["state"] not in ("success", "failed"):
        train = _task(api, run_id, "train")
        if retried_after is None and train["try_number"] == 2 and train["state"] == "running":
            retried_after = time.monotonic() - lost_at
        assert time.monotonic() - lost_at < 600, train
        time.sleep(1)
    tis = {t["task_id"]: t for t in demo.task_instances(api, run_id)}
    assert run["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert set(tis) == TASKS and {ti["state"] for ti in tis.values()} == {"success"}

    # train's second try ran on the other worker, within the recovery target
    survivor = {"worker-1": "worker-2", "worker-2": "worker-1"}[lost]
    assert (tis["train"]["try_number"], tis["train"]["hostname"]) == (2, survivor)
    assert retried_after is not None and retried_after <= 120, retried_after
    log = (base / "airflow" / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
           / "task_id=train" / "attempt=2.log")
    assert f"running on worker {survivor}" in log.read_text()
    # every task instance records the worker that ran it, and both served this run
    assert {ti["hostname"] for ti in tis.values()} == {"worker-1", "worker-2"}

    # as an uninterrupted run ends: the registry's run published, its version active and
    # deployed; the tasks reached the database through the Airflow connection only, and the
    # model went from worker to worker through the shared home
    version = bizdate.strftime("%Y%m%d")
    # the lost try's training run is marked failed by the retry's (start_run.sql), which
    # published
    assert fetch_all(url, "select pipeline_run, status, decision from dropoutnet.runs "
                          "order by started_at") == [(run_id, "failed", None),
                                                     (run_id, "succeeded", "published")]
    assert fetch_all(url, "select model_version from dropoutnet.active_version") == [
        (version,)]
    assert fetch_all(url, "select count(*) from dropoutnet.run_lock") == [(0,)]
    for model in ("sv_dropoutnet_item", "sv_dropoutnet_user"):
        assert (base / "serving" / model / version / "saved_model.pb").exists()
    # the activation history names the DAG run and its trigger (the schedule), not a shell user
    (action, source, pipeline_run, actor), = fetch_all(
        url, "select action, source, pipeline_run, actor from dropoutnet.activations")
    assert (action, source, pipeline_run) == ("publish", "airflow dag", run_id)
    assert actor and "@" not in actor

    # outside Airflow, the CLI recalls a user's top-5 items from the published version
    (user,), = fetch_all(url, "select user_id from sv_events where event_time >= %s and "
                              "event_time < %s::date + 1 group by 1 order by count(*) desc, 1 "
                              "limit 1", (bizdate, bizdate))
    proc = subprocess.run([stack.dropoutnet_bin(), "recall", "--user-id", user, "--top-n", "5",
                           "--json"], env=dict(os.environ, DROPOUTNET_DATABASE_URL=url),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    items = json.loads(proc.stdout.strip().splitlines()[-1])["items"]
    assert len({item["item_id"] for item in items}) == 5


def test_stopping_the_stack_leaves_no_process_behind(celery_stack):
    """Every process the stack started is gone (the lost worker's too), the broker included."""
    base, _, _, pids, _ = celery_stack
    stack.stop(base, echo=lambda _: None)
    left = {name: pid for name, pid in pids.items() if processes.alive(pid)}
    assert not left, left
    assert stack.status(base)["broker"] is None
    status = stack.status(base)["airflow"]
    assert set(status) >= {"worker-1", "worker-2"} and not any(status.values()), status
