"""The daily DAG's first task refuses what retrying cannot fix, through Airflow: ``airflow dags
test`` (no scheduler needed) with the environment ``dropoutnet.local.stack.airflow_env`` builds,
pointed at a per-test home and an SQLite metadata database.  A bizdate after today, and a
missing or wrong Airflow connection ``dropoutnet_db``, fail the first task at once, naming the
problem, and nothing downstream runs.  The whole DAG end to end (every task, through the
scheduler and Celery workers, then a recall) is ``test_topology.py``'s.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dropoutnet.local import stack

DAG_ID = "dropoutnet_daily"


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


def test_a_wrong_connection_fails_the_first_task_with_its_name(migrated, tmp_path):
    """One that Airflow's own parser refuses (a wrong type or no database are refused by
    ``dropoutnet.airflow_connection`` alike: test_airflow_connection.py)."""
    output = _first_task_fails(migrated, tmp_path,
                               '{"conn_type": "postgres", "host": "db", "port": "five"}')
    assert ("the Airflow connection 'dropoutnet_db' (AIRFLOW_CONN_DROPOUTNET_DB) cannot be "
            "read: Expected integer value for `port`") in output
    assert "AIRFLOW_CONN_DROPOUTNET_DB=" in output


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
