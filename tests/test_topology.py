"""The production topology as a tested path: ``docker-compose.yml``'s services as local
processes, each started with the command and environment the compose file gives it
(:mod:`dropoutnet.local.topology`, what ``make prod-check`` runs): the pgvector PostgreSQL over
TCP, set up by ``deploy/postgres-init.sh``; Redis with its password; Airflow on the
CeleryExecutor with two workers; the model service, the recall API and the stream worker.

One topology for the module.  A two-bizdate backfill goes through the real scheduler, broker
and workers, with the tasks reaching the pipeline's database through the Airflow connection
the compose file defines (nothing else tells them where it is); one worker is lost during
``train``.  This is also the suite's whole-DAG test: every task of ``dropoutnet_daily`` end to
end, through Airflow, then a recall through the recall API from the published version.
"""

from __future__ import annotations

import datetime as dt
import time

import psycopg2
import pytest
import redis
from helpers import fetch_all

from dropoutnet.core import processes
from dropoutnet.local import demo
from dropoutnet.local.topology import check, model
from dropoutnet.local.topology.supervisor import Topology

TASKS = {"resolve_bizdate", "online_metrics", "samples", "train", "export", "user_embeddings",
         "item_embeddings", "evaluate", "publish", "deploy", "retention", "release_run_lock"}
WORKERS = {"dropoutnet-airflow-worker-1", "dropoutnet-airflow-worker-2"}
RETRY_DELAY_S = 15


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    """The compose file's services, up and healthy, with two Celery workers."""
    home = tmp_path_factory.mktemp("topology")
    topo = Topology(home, scale={"airflow-worker": 2}, echo=lambda _: None, settings={
        "AIRFLOW_API_PORT": str(processes.free_port()),
        "RECALL_API_PORT": str(processes.free_port()),
        # a failed task's retry after 15 s instead of 60: the suite's time (the scheduler
        # still needs the heartbeat timeout, 30 s, to notice a lost worker)
        "DROPOUTNET_TASK_RETRY_DELAY": str(RETRY_DELAY_S)})
    try:
        topo.up(wait=420)
        yield topo
    finally:
        topo.down(timeout=20)


def test_every_service_starts_as_the_compose_file_says(topology):
    """Every service runs (the tools profile's CLI only on demand) and has passed its health
    check; the database and the broker hold the compose file's credentials."""
    assert {name: len(group) for name, group in topology.instances.items()} == {
        "postgres": 1, "redis": 1, "airflow-init": 1, "airflow-apiserver": 1,
        "airflow-scheduler": 1, "airflow-dag-processor": 1, "airflow-triggerer": 1,
        "airflow-worker": 2, "model-service": 1, "recall-api": 1, "stream-worker": 1}
    (init,) = topology.get("airflow-init")
    assert init.proc.returncode == 0  # a one-off: migrated Airflow's database, exited 0
    assert all(inst.healthy_once for inst in topology.all()
               if inst.container.service.healthcheck)

    # PostgreSQL over TCP, as deploy/postgres-init.sh set it up: the pipeline's role is no
    # superuser but may replicate; pgvector is there; the change log is logical
    url = check.database_url(topology)
    assert "@127.0.0.1:" in url
    (role,) = fetch_all(url, "select rolsuper, rolreplication, rolcreaterole from pg_roles "
                             "where rolname = current_user")
    assert role == (False, True, False)
    assert fetch_all(url, "select extname from pg_extension where extname = 'vector'") == [
        ("vector",)]
    assert fetch_all(url, "show wal_level") == [("logical",)]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(url.replace(model.read_env_file(topology.env_file)[
            "DROPOUTNET_DB_PASSWORD"], "wrong"))
    # Redis answers only with its password
    port = topology.port("redis", 6379)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    password = model.read_env_file(topology.env_file)["REDIS_PASSWORD"]
    assert redis.Redis(port=port, password=password).ping()


def _task(api, run_id: str, task_id: str) -> dict | None:
    return next((t for t in demo.task_instances(api, run_id) if t["task_id"] == task_id), None)


def test_a_backfill_survives_a_lost_worker_and_broker_and_database_restarts(topology):
    """Two bizdates backfilled through the scheduler.  The worker running the first one's
    ``train`` is lost mid-task (SIGKILL to all its processes, as a lost host): the scheduler
    notices within the heartbeat timeout and the retry runs on the other worker.  In the
    second run the broker is restarted while a task runs, then the database server while
    ``train`` runs: the cut task is retried.  Both runs end as uninterrupted runs would."""
    last = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=1)
    check.generate_data(topology, last)
    url = check.database_url(topology)
    api = check.airflow_api(topology)
    check.wait_for_dag(api)
    check.backfill(api, first, last)
    deadline = time.monotonic() + 120
    while not (found := check.runs(api, first, first)):
        assert time.monotonic() < deadline, "the backfill made no run"
        time.sleep(1)
    run_id = found[first.isoformat()]["dag_run_id"]

    # lost mid-training: once train has recorded its training run in the registry
    deadline = time.monotonic() + 300
    while not ((train := _task(api, run_id, "train")) and train["state"] == "running"
               and train.get("hostname") and fetch_all(
                   url, "select count(*) from dropoutnet.runs where status = 'running'")[0][0]):
        assert time.monotonic() < deadline, demo.task_instances(api, run_id)
        time.sleep(0.5)
    lost = train["hostname"]
    assert lost in WORKERS, lost  # the task records its worker: the container's host name
    topology.kill(lost)
    lost_at = time.monotonic()
    retried_after = None
    while (train := _task(api, run_id, "train"))["state"] != "success":
        if retried_after is None and train["try_number"] == 2 and train["state"] == "running":
            retried_after = time.monotonic() - lost_at
        assert time.monotonic() - lost_at < 600, train
        time.sleep(1)

    # the second run: the broker restarted while a task runs, then the database server while
    # train runs (once it has recorded its registry run)
    deadline = time.monotonic() + 300
    while not (found := check.runs(api, last, last)):
        assert time.monotonic() < deadline, "no second run"
        time.sleep(0.5)
    second = found[last.isoformat()]["dag_run_id"]
    while not any(t["state"] == "running" for t in demo.task_instances(api, second)):
        assert time.monotonic() < deadline, demo.task_instances(api, second)
        time.sleep(0.5)
    t0 = time.monotonic()
    topology.restart("redis", timeout=10)
    broker_s = time.monotonic() - t0
    # the database server restarted while a task is inside its transaction: a connection of
    # the test holds the registry's runs table locked (only the DAG's tasks use it), so the
    # next task that records its progress there waits in its transaction until the server
    # goes down
    while not ((train := _task(api, second, "train")) and train["state"] == "running"):
        assert time.monotonic() < deadline, demo.task_instances(api, second)
        time.sleep(0.5)
    blocker = psycopg2.connect(url)
    blocker.cursor().execute("lock table dropoutnet.runs in access exclusive mode")
    while not fetch_all(url, "select count(*) from pg_stat_activity where wait_event_type = "
                             "'Lock' and pid <> %s", (blocker.get_backend_pid(),))[0][0]:
        assert time.monotonic() < deadline, demo.task_instances(api, second)
        time.sleep(0.5)
    waiting = {t["task_id"] for t in demo.task_instances(api, second) if t["state"] == "running"}
    t0 = time.monotonic()
    topology.restart("postgres", timeout=10)
    database_s = time.monotonic() - t0
    blocker.close()
    runs = check.wait_for_runs(api, first, last)
    assert {day: run["state"] for day, run in runs.items()} == {
        first.isoformat(): "success", last.isoformat(): "success"}
    retried = {t["task_id"]: t["try_number"] for t in demo.task_instances(api, second)
               if t["try_number"] > 1}
    # the task waiting in its transaction failed and was retried; another task running then
    # without a statement in flight (online_metrics beside train) may go on unharmed
    assert waiting and any(retried.get(task, 1) >= 2 for task in waiting), (waiting, retried)
    restarted = {inst.name: inst.restarts for inst in topology.all() if inst.restarts}
    print(f"lost worker: train running again after {retried_after or 0:.0f} s; broker restarted "
          f"in {broker_s:.1f} s, database in {database_s:.1f} s; cut by the database's "
          f"restart: {waiting}; retried: {retried}; restarted by their policy: {restarted}")

    tis = {t["task_id"]: t for t in demo.task_instances(api, run_id)}
    assert set(tis) == TASKS and {ti["state"] for ti in tis.values()} == {"success"}
    # train's second try ran on the other worker, within the recovery target
    (survivor,) = WORKERS - {lost}
    assert (tis["train"]["try_number"], tis["train"]["hostname"]) == (2, survivor)
    # noticed after the 30-s heartbeat timeout (checked every 10 s), retried after the delay
    assert retried_after is not None and retried_after <= 40 + RETRY_DELAY_S + 20, retried_after
    log = (topology.home / "volumes" / "airflow-logs" / "dag_id=dropoutnet_daily"
           / f"run_id={run_id}" / "task_id=train" / "attempt=2.log")
    assert f"running on worker {survivor}" in log.read_text()
    # both workers served the first run
    assert {ti["hostname"] for ti in tis.values()} == WORKERS

    # as uninterrupted runs end: each registry run published (a cut try's run is marked
    # failed by its retry's, start_run.sql), the last version active and deployed into the
    # shared volume, the lock free
    rows = fetch_all(url, "select pipeline_run, status, decision from dropoutnet.runs "
                          "order by started_at")
    assert rows[:2] == [(run_id, "failed", None), (run_id, "succeeded", "published")]
    assert rows[-1] == (second, "succeeded", "published")
    assert set(rows[2:-1]) <= {(second, "failed", None)}  # a cut train's
    version = last.strftime("%Y%m%d")
    # nothing half-written: every part of the published version is the publishing run's, and
    # no staging table is left
    assert fetch_all(url, "select distinct p.run_id = v.run_id from dropoutnet.version_parts p "
                          "join dropoutnet.model_versions v using (model_name, model_version) "
                          "where model_version = %s", (version,)) == [(True,)]
    assert fetch_all(url, "select count(*) from pg_tables where tablename like %s",
                     ("%\\_stage",)) == [(0,)]
    assert fetch_all(url, "select model_version from dropoutnet.active_version") == [
        (version,)]
    assert fetch_all(url, "select count(*) from dropoutnet.run_lock") == [(0,)]
    for name in ("sv_dropoutnet_item", "sv_dropoutnet_user"):
        assert (topology.home / "volumes" / "dropoutnet-data" / "serving" / name / version
                / "saved_model.pb").exists()
    # the activation history names the DAG runs, not a shell user
    assert fetch_all(url, "select action, source, pipeline_run from dropoutnet.activations "
                          "order by activation_id") == [("publish", "airflow dag", run_id),
                                                       ("publish", "airflow dag", second)]

    # the recall API serves the active version, with the deployment's bearer token
    answer = check.recall(topology, check.an_active_user(topology, last))
    assert answer["model_version"] == version
    assert len({item["item_id"] for item in answer["items"]}) == 5


def test_stopped_services_fail_their_health_checks_and_nothing_is_left(topology):
    """``down`` one service at a time: each health check fails once its service is stopped,
    and no process of any container is left (the lost worker's included)."""
    before = topology.pids()
    assert all(before[name] for name in before if name not in WORKERS
               and name != "dropoutnet-airflow-init-1")
    passed_while_stopped = check.down_with_checks(topology, timeout=20)
    assert set(passed_while_stopped) == {inst.name for inst in topology.all()
                                         if inst.container.service.healthcheck}
    assert not any(passed_while_stopped.values()), passed_while_stopped
    left = {pid for pids in before.values() for pid in pids if processes.alive(pid)}
    assert not left, left
    assert not any(topology.pids().values())
