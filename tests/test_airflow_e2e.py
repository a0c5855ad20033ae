"""The whole daily DAG, end to end, through Airflow: ``airflow dags test`` on tiny data.

One subprocess runs every task of ``dropoutnet_daily`` in order (no scheduler needed) with the
environment ``dropoutnet.local.stack.airflow_env`` builds, pointed at a per-test home and an SQLite
metadata database; the application data lives in a fresh database of the session's Postgres,
which the tasks reach through the Airflow connection ``dropoutnet_db`` (an environment-variable
connection, ``AIRFLOW_CONN_DROPOUTNET_DB``). Then ``dropoutnet recall`` (outside Airflow:
``DROPOUTNET_DATABASE_URL``) must return a user's top-5 new items from the published version.
A missing or wrong connection fails the first task, naming it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from helpers import fetch_all

from dropoutnet.data import synthetic
from dropoutnet.local import stack

DAG_ID = "dropoutnet_daily"
BIZDATE = dt.date(2026, 11, 20)
TINY = dict(n_users=300, n_items=400, n_authors=30, days=16, new_items_per_day=40, seed=11)
TASKS = {"resolve_bizdate", "online_metrics", "samples", "train", "export", "user_embeddings", "item_embeddings",
         "evaluate", "publish", "deploy", "retention", "release_run_lock"}


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def e2e_database(database_url, admin_database_url):
    """A fresh database (with pgvector) on the session's server, owned by the pipeline's role
    and dropped afterwards."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    (owner,), = fetch_all(database_url, "select current_user")
    admin = psycopg2.connect(_with_database(admin_database_url, "postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'create database "{name}" owner "{owner}"')
        conn = psycopg2.connect(_with_database(admin_database_url, name))
        conn.autocommit = True
        with conn.cursor() as cur:  # only a superuser can create it
            cur.execute("create extension if not exists vector")
        conn.close()
        yield _with_database(database_url, name)
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
    finally:
        admin.close()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """An Airflow metadata database (SQLite) migrated once for the module: every test runs on
    a copy of it, as if it had run ``airflow db migrate`` itself."""
    base = tmp_path_factory.mktemp("airflow_metadata")
    metadata = base / "airflow.db"
    env = stack.airflow_env(base=base / "home", sql_alchemy_conn=f"sqlite:///{metadata}")
    proc = _run([stack.airflow_bin(), "db", "migrate"], env, 300, base / "db-migrate.log")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return metadata


def _metadata(migrated: Path, tmp_path: Path) -> Path:
    """A fresh copy of the migrated metadata database for one test."""
    return Path(shutil.copy(migrated, tmp_path / "airflow.db"))


def _run(cmd: list[str], env: dict[str, str], timeout: float, log: Path) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(stack.REPO))
    log.write_text(f"$ {' '.join(cmd)}\n({time.monotonic() - t0:.1f}s, exit {proc.returncode})\n"
                   f"{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc


def _active_user(url: str, day: dt.date) -> str:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("select user_id from sv_events where event_time >= %s and "
                        "event_time < %s::date + 1 group by 1 order by count(*) desc, 1 limit 1",
                        (day, day))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_daily_dag_end_to_end(e2e_database, migrated, tmp_path):
    summary = synthetic.generate(e2e_database, end_date=BIZDATE, **TINY)
    assert summary["rows"]["sv_events"] > 0

    home = tmp_path / "home"
    metadata = _metadata(migrated, tmp_path)
    env = stack.airflow_env(base=home, sql_alchemy_conn=f"sqlite:///{metadata}")
    # inside Airflow the database is the connection; nothing else tells the tasks where it is
    env["AIRFLOW_CONN_DROPOUTNET_DB"] = e2e_database
    env.pop("DROPOUTNET_DATABASE_URL", None)
    env.pop("DROPOUTNET_CONFIG", None)  # the shipped demo config
    airflow = stack.airflow_bin()


    day = BIZDATE.isoformat()
    proc = _run([airflow, "dags", "test", DAG_ID, day, "-c", json.dumps({"bizdate": day})], env, 900,
                tmp_path / "dags-test.log")
    output = proc.stdout[-4000:] + proc.stderr[-4000:]

    with sqlite3.connect(metadata) as db:
        states = dict(db.execute("select task_id, state from task_instance where dag_id = ?",
                                 (DAG_ID,)).fetchall())
        run_states = [r[0] for r in db.execute("select state from dag_run where dag_id = ?", (DAG_ID,))]
    assert set(states) == TASKS, output
    failed = {t: s for t, s in states.items() if s != "success"}
    assert not failed, f"tasks not successful: {failed}; log: {tmp_path / 'dags-test.log'}\n{output}"
    assert run_states == ["success"]
    assert proc.returncode == 0, output
    # the registry recorded the training run under the Airflow run, and the run lock is free
    with sqlite3.connect(metadata) as db:
        (run_id,), = db.execute("select run_id from dag_run where dag_id = ?", (DAG_ID,))
    runs = fetch_all(e2e_database, "select pipeline_run, status, decision from dropoutnet.runs")
    assert runs == [(run_id, "succeeded", "published")]
    # the activation history names the DAG run and its triggering user, not a shell user
    (action, source, pipeline_run, actor), = fetch_all(
        e2e_database, "select action, source, pipeline_run, actor from dropoutnet.activations")
    assert (action, source, pipeline_run) == ("publish", "airflow dag", run_id)
    assert actor and "@" not in actor
    assert fetch_all(e2e_database, "select count(*) from dropoutnet.run_lock") == [(0,)]

    # the deploy task put both towers in TF Serving's layout under the serving root
    for model in ("sv_dropoutnet_item", "sv_dropoutnet_user"):
        assert (home / "serving" / model / "20261120" / "saved_model.pb").exists(), model

    user = _active_user(e2e_database, BIZDATE)
    cli_env = dict(env, DROPOUTNET_DATABASE_URL=e2e_database)  # outside Airflow
    proc = _run([stack.dropoutnet_bin(), "recall", "--user-id", user, "--top-n", "5", "--json"],
                cli_env, 300, tmp_path / "recall.log")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result["items"]) == 5
    assert len({item["item_id"] for item in result["items"]}) == 5


def test_a_bizdate_after_today_fails_the_run_at_once(migrated, tmp_path):
    """A bad bizdate is not retried: the first task fails, nothing downstream runs."""
    home = tmp_path / "home"
    metadata = _metadata(migrated, tmp_path)
    env = stack.airflow_env(base=home, sql_alchemy_conn=f"sqlite:///{metadata}")
    env["DROPOUTNET_DATABASE_URL"] = "postgresql://postgres@/unused?host=/nonexistent"
    airflow = stack.airflow_bin()

    future = (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=2)).isoformat()
    proc = _run([airflow, "dags", "test", DAG_ID, "-c", json.dumps({"bizdate": future})], env, 300,
                tmp_path / "dags-test.log")
    assert proc.returncode != 0
    assert "is after today" in proc.stdout + proc.stderr
    with sqlite3.connect(metadata) as db:
        states = dict(db.execute("select task_id, state from task_instance where dag_id = ?",
                                 (DAG_ID,)).fetchall())
        tries = db.execute("select try_number from task_instance where task_id = 'resolve_bizdate'"
                           ).fetchone()[0]
    assert states.pop("resolve_bizdate") == "failed"
    assert tries == 1  # no retry
    assert set(states.values()) == {"upstream_failed"}


def _first_task_fails(migrated: Path, tmp_path: Path, connection: str | None,
                      database_url: str | None = None) -> str:
    """Run the DAG for yesterday with ``AIRFLOW_CONN_DROPOUTNET_DB`` = ``connection`` (unset
    when None); assert that its first task failed without a retry and nothing else ran; return
    the run's output."""
    home = tmp_path / "home"
    metadata = _metadata(migrated, tmp_path)
    env = stack.airflow_env(base=home, sql_alchemy_conn=f"sqlite:///{metadata}")
    env.pop("AIRFLOW_CONN_DROPOUTNET_DB", None)
    env.pop("DROPOUTNET_DATABASE_URL", None)
    if connection is not None:
        env["AIRFLOW_CONN_DROPOUTNET_DB"] = connection
    if database_url is not None:
        env["DROPOUTNET_DATABASE_URL"] = database_url
    airflow = stack.airflow_bin()

    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    proc = _run([airflow, "dags", "test", DAG_ID, "-c", json.dumps({"bizdate": yesterday})], env,
                300, tmp_path / "dags-test.log")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    with sqlite3.connect(metadata) as db:
        states = dict(db.execute("select task_id, state from task_instance where dag_id = ?",
                                 (DAG_ID,)).fetchall())
        tries = db.execute("select try_number from task_instance where task_id = 'resolve_bizdate'"
                           ).fetchone()[0]
    assert states.pop("resolve_bizdate") == "failed", output[-3000:]
    assert tries == 1  # a connection that is not there or not Postgres is not retried
    assert set(states.values()) == {"upstream_failed"}
    return output


def test_a_missing_connection_fails_the_first_task_with_its_name(migrated, tmp_path,
                                                                 database_url):
    # DROPOUTNET_DATABASE_URL is set to a real database, and still not used inside Airflow:
    # without the connection a worker must not guess where the data goes
    output = _first_task_fails(migrated, tmp_path, None, database_url=database_url)
    assert "the Airflow connection 'dropoutnet_db' is not defined" in output
    assert "AIRFLOW_CONN_DROPOUTNET_DB=" in output  # the fix


@pytest.mark.parametrize("connection, message", [
    ("http://127.0.0.1:9/recsys", "the Airflow connection 'dropoutnet_db' has type 'http'"),
    ("postgresql://dropoutnet@127.0.0.1:9", "the Airflow connection 'dropoutnet_db' names no database"),
    ('{"conn_type": "postgres", "host": "db", "port": "five"}',
     "the Airflow connection 'dropoutnet_db' (AIRFLOW_CONN_DROPOUTNET_DB) cannot be read: "
     "Expected integer value for `port`"),
])
def test_a_wrong_connection_fails_the_first_task_with_its_name(migrated, tmp_path, connection,
                                                               message):
    output = _first_task_fails(migrated, tmp_path, connection)
    assert message in output
    assert "AIRFLOW_CONN_DROPOUTNET_DB=" in output


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
