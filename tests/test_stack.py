"""The local stack's launcher: `python -m dropoutnet.local.stack airflow ...` runs airflow with
the stack's environment, and the executor is the user's (the Celery mode's broker, backend
and workers come with it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from dropoutnet.core import processes
from dropoutnet.local import celery_mode, stack
from dropoutnet.local.errors import StackError


def test_airflow_passthrough_uses_the_stack_environment(tmp_path):
    env = dict(os.environ, DROPOUTNET_HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "dropoutnet.local.stack", "airflow", "config", "get-value",
         "core", "dags_folder"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("/dags")
    assert (tmp_path / "airflow").is_dir()


def test_the_users_executor_is_kept_and_celery_gets_its_broker_and_backend(tmp_path,
                                                                        monkeypatch):
    """The launcher used to overwrite AIRFLOW__CORE__EXECUTOR with LocalExecutor."""
    monkeypatch.delenv("AIRFLOW__CORE__EXECUTOR", raising=False)
    monkeypatch.delenv("AIRFLOW__CELERY__BROKER_URL", raising=False)
    assert stack.airflow_env(base=tmp_path)["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert stack.components(tmp_path) == list(stack.COMPONENTS)

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("DROPOUTNET_CELERY_WORKERS", "3")
    celery_mode.prepare_broker(stack.run_dir(tmp_path, create=True), tmp_path / "redis")
    env = stack.airflow_env(base=tmp_path)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    port, password = celery_mode.broker_address(stack.run_dir(tmp_path))
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{password}@127.0.0.1:{port}/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == \
        "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert (stack.run_dir(tmp_path) / "redis.conf").stat().st_mode & 0o077 == 0
    assert stack.components(tmp_path)[-3:] == ["worker-1", "worker-2", "worker-3"]

    # the user's own broker and executor path are kept as given
    monkeypatch.setenv("AIRFLOW__CELERY__BROKER_URL", "redis://:pw@broker.example:6379/1")
    path = "airflow.providers.celery.executors.celery_executor.CeleryExecutor"
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", path)
    env = stack.airflow_env(base=tmp_path)
    assert (env["AIRFLOW__CORE__EXECUTOR"], env["AIRFLOW__CELERY__BROKER_URL"]) == \
        (path, "redis://:pw@broker.example:6379/1")

    monkeypatch.setenv("DROPOUTNET_CELERY_WORKERS", "two")
    with pytest.raises(StackError, match="DROPOUTNET_CELERY_WORKERS='two'.*1 to 32"):
        stack.components(tmp_path)


def test_the_celery_mode_starts_a_broker_and_named_workers_and_stops_them(tmp_path,
                                                                          monkeypatch):
    """``make airflow`` with the CeleryExecutor: the stack's Redis broker (with its password)
    and a worker under its own Celery node name, which answers the compose file's health
    check and listens on its own task-log port; ``make stop`` leaves no process of either."""
    log_port = processes.free_port()
    for name, value in (("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor"),
                        ("DROPOUTNET_CELERY_WORKERS", "1"),
                        ("DROPOUTNET_WORKER_LOG_PORT", str(log_port))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AIRFLOW__CELERY__BROKER_URL", raising=False)
    broker = stack.start_broker(tmp_path)
    # Celery's executor needs a server database for its scheduler, not for a worker to start
    env = stack.airflow_env(base=tmp_path, sql_alchemy_conn=f"sqlite:///{tmp_path / 'af.db'}")
    worker = stack.start_component("worker-1", env, tmp_path)
    node = f"worker-1@{socket.gethostname()}"
    ping = [sys.executable, "-m", "celery", "--app",
            "airflow.providers.celery.executors.celery_executor.app", "inspect", "ping",
            "-d", node]
    try:
        deadline = time.monotonic() + 120
        while (answer := subprocess.run(ping, env=env, capture_output=True, text=True,
                                        timeout=60)).returncode != 0:
            assert worker.poll() is None and time.monotonic() < deadline, \
                processes.tail(stack.log_dir(tmp_path) / "airflow-worker-1.log")
            time.sleep(1)
        assert f"{node}: OK" in answer.stdout
        state = stack.status(tmp_path)
        assert (state["executor"], state["broker"], state["airflow"]["worker-1"]) == \
            ("CeleryExecutor", broker, worker.pid)
        while processes.port_free("127.0.0.1", log_port):  # its task-log server
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        tree = processes.tree(worker.pid, processes.table()) | {broker}
    finally:
        stopped = stack.stop_airflow(tmp_path, echo=lambda _: None)
    assert stopped == ["worker-1"]
    assert not {pid for pid in tree if processes.alive(pid)}
    assert stack.status(tmp_path)["broker"] is None
    assert any((tmp_path / "redis").iterdir())  # the append-only file, for the next start
