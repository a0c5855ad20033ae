"""The local stack's launcher: `python -m dropoutnet.local.stack airflow ...` runs airflow with
the stack's environment, and the executor is the user's (the Celery mode's broker, backend
and workers come with it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
