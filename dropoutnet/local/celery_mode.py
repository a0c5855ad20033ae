"""The local stack's Celery mode: a Redis broker and Airflow Celery workers as processes, the
way ``docker-compose.yml`` runs them in containers.

The stack (:mod:`dropoutnet.local.stack`) runs the executor Airflow is configured with
(``AIRFLOW__CORE__EXECUTOR``; ``LocalExecutor`` when unset).  With the ``CeleryExecutor`` it
starts, besides Airflow's four components:

* **a Redis broker**, Debian's ``redis-server`` (the real server, the one ``make test``
  installs when missing; the compose file runs Redis 7 in a container), on loopback, on a free
  port chosen at its first start and kept in ``<home>/run/redis.port``, with a generated
  password in its config file (``<home>/run/redis.conf``, mode 0600, so that it never shows on
  a command line) and its append-only file in ``<home>/redis``, as the compose file's
  ``--requirepass ... --appendonly yes``.  A broker the user names
  (``AIRFLOW__CELERY__BROKER_URL``) is used instead, and none is started;
* **``DROPOUTNET_CELERY_WORKERS`` workers** (default 2), each ``airflow celery worker`` with
  its own Celery node name (``worker-K@<host>``), working folder (``<home>/workers/worker-K``),
  task-log server port (``DROPOUTNET_WORKER_LOG_PORT`` + K - 1, default 8793, Airflow's) and
  ``DROPOUTNET_WORKER_NAME``, which Airflow records as the task instance's host
  (:mod:`dropoutnet.airflow_worker`);
* Celery's **result backend on Airflow's metadata database** (``db+`` its URL), as in the
  compose file.

**Recovery settings** (the same values are in ``docker-compose.yml``, with the reason):

* ``[scheduler] task_instance_heartbeat_timeout`` = 30 s (Airflow's default: 300).  A task
  whose worker is lost stops heartbeating; the scheduler fails it 30 to 40 s later (it checks
  every 10 s) and the DAG's retry starts it again after ``DROPOUTNET_TASK_RETRY_DELAY``
  (default 60 s), on a worker that is alive: running again about 100 s after the loss
  (measured: 54 s to the failure with a 45-s timeout, 59 s more to the retry; 52 s in all
  with a 15-s delay) instead of 6 minutes.  A live task
  heartbeats every 5 s (``[workers] min_heartbeat_interval``), so 30 s is six missed beats.
  Airflow 3.3 counts such a failure as a try (the scheduler's heartbeat purge sets
  ``up_for_retry``; no setting spares the try), so a lost worker spends one of the DAG's two
  retries.
* ``[celery_broker_transport_options] visibility_timeout`` = 3,600 s (Celery's default on
  Redis, which Airflow applies with a warning: 24 hours).  Airflow acknowledges a task's
  message when the task ends, so the message of a worker that was lost stays unacknowledged
  and Redis hands it out again after this timeout.  By then the scheduler has retried the
  task, and Airflow's execution API refuses to start a task instance that is no longer queued:
  the late copy is dropped within the hour instead of the next day.  An hour is longer than a
  message waits in a busy worker's prefetch.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

from dropoutnet.airflow_worker import WORKER_ENV
from dropoutnet.core import processes
from dropoutnet.local.errors import StackError

CELERY_EXECUTOR = "CeleryExecutor"
DEFAULT_EXECUTOR = "LocalExecutor"
WORKERS_ENV = "DROPOUTNET_CELERY_WORKERS"
LOG_PORT_ENV = "DROPOUTNET_WORKER_LOG_PORT"
DEFAULT_WORKERS = 2
DEFAULT_LOG_PORT = 8793
HEARTBEAT_TIMEOUT_S = 30
VISIBILITY_TIMEOUT_S = 3600
BROKER_URL_ENV = "AIRFLOW__CELERY__BROKER_URL"


def executor() -> str:
    """The executor Airflow is configured with: ``AIRFLOW__CORE__EXECUTOR`` as the user set
    it, else the local stack's ``LocalExecutor``."""
    return os.environ.get("AIRFLOW__CORE__EXECUTOR", "").strip() or DEFAULT_EXECUTOR


def is_celery(name: str | None = None) -> bool:
    """Whether the executor (``name``, default :func:`executor`) is Airflow's Celery one,
    written short (``CeleryExecutor``) or as its import path."""
    return (name or executor()).rsplit(".", 1)[-1] == CELERY_EXECUTOR


def worker_names() -> list[str]:
    """``worker-1`` .. ``worker-N``, N = ``DROPOUTNET_CELERY_WORKERS`` (default 2)."""
    value = os.environ.get(WORKERS_ENV, "").strip() or str(DEFAULT_WORKERS)
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= 32:
        raise StackError(f"{WORKERS_ENV}={value!r} is not a number of Celery workers: give "
                         "1 to 32 (default 2)")
    return [f"worker-{k}" for k in range(1, count + 1)]


def log_port(index: int) -> int:
    """The task-log server port of the ``index``-th worker (1-based)."""
    value = os.environ.get(LOG_PORT_ENV, "").strip() or str(DEFAULT_LOG_PORT)
    try:
        first = int(value)
    except ValueError:
        first = 0
    if not 0 < first < 65536 - 32:
        raise StackError(f"{LOG_PORT_ENV}={value!r} is not a port number: give the first "
                         f"worker's task-log port (default {DEFAULT_LOG_PORT})")
    return first + index - 1


# --- the broker ----------------------------------------------------------------------------------


def redis_bin() -> str:
    """Debian's ``redis-server``, or a message naming how to get it."""
    found = shutil.which("redis-server")
    if found is None:
        raise StackError("the Celery executor needs a Redis broker and redis-server is not "
                         "installed: run `apt-get install redis-server` (as root; `make test` "
                         f"does it), or name your broker in {BROKER_URL_ENV}")
    return found


def _broker_files(run: Path) -> tuple[Path, Path]:
    return run / "redis.conf", run / "redis.port"


def broker_address(run: Path) -> tuple[int, str] | None:
    """(port, password) of the local broker as configured in ``run``, or None before its
    first start."""
    conf, port_file = _broker_files(run)
    try:
        port = int(port_file.read_text().strip())
        password = next(line.split(None, 1)[1].strip().strip('"')
                        for line in conf.read_text().splitlines()
                        if line.startswith("requirepass "))
    except (FileNotFoundError, ValueError, StopIteration, IndexError):
        return None
    return port, password


def broker_url(run: Path) -> str | None:
    """The Celery broker URL of the local broker (None before its first start)."""
    address = broker_address(run)
    if address is None:
        return None
    port, password = address
    return f"redis://:{password}@127.0.0.1:{port}/0"


def prepare_broker(run: Path, data: Path) -> tuple[list[str], int, str]:
    """The local broker's command, port and password; makes its config file on first use
    (a free loopback port and a new password, kept for later starts)."""
    address = broker_address(run)
    if address is None:
        port = processes.free_port()
        address = (port, secrets.token_hex(24))
    port, password = address
    data.mkdir(parents=True, exist_ok=True)
    conf, port_file = _broker_files(run)
    text = (f"# the local stack's Celery broker (dropoutnet.local.celery_mode)\n"
            f"bind 127.0.0.1\nport {port}\nrequirepass \"{password}\"\n"
            f"appendonly yes\ndir {data}\nsave \"\"\ndaemonize no\n")
    conf.write_text(text)
    conf.chmod(0o600)
    port_file.write_text(f"{port}\n")
    return [redis_bin(), str(conf)], port, password


def broker_answers(port: int, password: str, timeout: float = 2.0) -> bool:
    """Whether the broker answers PING with this password."""
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, password=password,
                                socket_timeout=timeout, socket_connect_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def wait_for_broker(port: int, password: str, alive, wait: float = 30.0) -> None:
    """Until the broker answers; a StackError when it exits or does not answer in time."""
    deadline = time.monotonic() + wait
    while not broker_answers(port, password):
        if not alive():
            raise StackError(f"the Redis broker exited at start (port {port})")
        if time.monotonic() > deadline:
            raise StackError(f"the Redis broker did not answer on port {port} within "
                             f"{wait:.0f} s")
        time.sleep(0.2)


# --- Airflow's environment in Celery mode ---------------------------------------------------------


def settings(env: dict[str, str], run: Path) -> dict[str, str]:
    """The Celery settings every Airflow process gets (the user's own values win): the local
    broker, the result backend on the metadata database, the worker concurrency of the
    compose file, and the broker's visibility timeout."""
    out: dict[str, str] = {}
    if not env.get(BROKER_URL_ENV):
        url = broker_url(run)
        if url:
            out[BROKER_URL_ENV] = url
    if not env.get("AIRFLOW__CELERY__RESULT_BACKEND"):
        out["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + env[
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    out["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = env.get(
        "AIRFLOW__CELERY__WORKER_CONCURRENCY") or "2"
    out["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"] = env.get(
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT") or str(
        VISIBILITY_TIMEOUT_S)
    return out


def worker_env(env: dict[str, str], name: str, index: int) -> dict[str, str]:
    """One worker's environment: its name (recorded as the task's host) and log-server port."""
    return dict(env, **{WORKER_ENV: name,
                        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port(index))})


def worker_command(airflow: str, name: str) -> list[str]:
    """``airflow celery worker`` with the worker's own Celery node name."""
    return [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h"]
