"""Start, stop and inspect the local stack: the embedded Postgres and Airflow's four components
(with the Celery executor, also a Redis broker and Celery workers:
:mod:`dropoutnet.local.celery_mode`).

Airflow is never imported here: its components run as background processes
(``airflow api-server | scheduler | dag-processor | triggerer``), each in its own process group,
with a pid file in ``$DROPOUTNET_HOME/run/`` and a log in ``$DROPOUTNET_HOME/logs/``.
``stop`` signals each pid's process group (SIGTERM, then SIGKILL for leftovers) and then stops
Postgres, so nothing is left behind (``airflow standalone`` leaks its children on SIGTERM).

    python -m dropoutnet.local.stack start     # Postgres + Airflow; prints the UI address and login
    python -m dropoutnet.local.stack status
    python -m dropoutnet.local.stack stop

Settings (environment):

* ``DROPOUTNET_HOME``: the project home (default ``./.dropoutnet``); Airflow lives in ``airflow/``.
* ``DROPOUTNET_AIRFLOW_PORT`` (default 8080) and ``DROPOUTNET_AIRFLOW_HOST`` (default 127.0.0.1):
  where the API server / UI listens.
* ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``: Airflow's metadata database; by default the
  ``airflow`` database of the embedded server.
* ``AIRFLOW__CORE__EXECUTOR``: kept as set (default ``LocalExecutor``); ``CeleryExecutor``
  starts the Celery mode (``DROPOUTNET_CELERY_WORKERS`` workers, default 2, and a Redis broker
  unless ``AIRFLOW__CELERY__BROKER_URL`` names one).
* ``DROPOUTNET_CONFIG``, ``DROPOUTNET_DATABASE_URL``: passed through to every task.
* ``AIRFLOW_CONN_DROPOUTNET_DB``: the Airflow connection the DAG's tasks read the pipeline's
  database from (:mod:`dropoutnet.airflow_connection`); unless set, the stack defines it as
  ``DROPOUTNET_DATABASE_URL``, else the embedded server's application database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dropoutnet import airflow_connection
from dropoutnet.core import locations, processes
from dropoutnet.core.locations import REPOSITORY
from dropoutnet.local import celery_mode, embedded_pg
from dropoutnet.local.errors import StackError

REPO = REPOSITORY
DAGS_FOLDER = REPO / "dags"
PLUGINS_FOLDER = REPO / "plugins"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
ADMIN_USER = "admin"
HEALTH_PATH = "/api/v2/monitor/health"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


# --- paths -------------------------------------------------------------------------------------


def home() -> Path:
    """The stack's home: the project home (``DROPOUTNET_HOME``)."""
    return locations.home()


def run_dir(base: Path | None = None, *, create: bool = False) -> Path:
    """``<home>/run``: pid files; also the embedded server's ``XDG_RUNTIME_DIR`` (mode 0700)."""
    path = (base or home()) / "run"
    if create and not path.is_dir():
        path.mkdir(parents=True)
        path.chmod(0o700)
    return path


def log_dir(base: Path | None = None, *, create: bool = False) -> Path:
    """Where the stack's components write their logs (``<home>/logs``)."""
    path = (base or home()) / "logs"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def airflow_home(base: Path | None = None) -> Path:
    """Airflow's own home (``AIRFLOW_HOME``) under the project home."""
    return (base or home()) / "airflow"


def airflow_bin() -> str:
    """The ``airflow`` script of the interpreter running us (the project's venv)."""
    for candidate in (Path(sys.executable).parent / "airflow", REPO / ".venv" / "bin" / "airflow"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("airflow")
    if found:
        return found
    raise StackError("the airflow command is not installed: run `make venv` first")


def dropoutnet_bin() -> str:
    """The ``dropoutnet`` command of this virtual environment (or on the PATH)."""
    for candidate in (Path(sys.executable).parent / "dropoutnet", REPO / ".venv" / "bin" / "dropoutnet"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("dropoutnet") or "dropoutnet"


# --- the environment every Airflow process gets ---------------------------------------------------


def api_port(base: Path | None = None) -> int:
    """``DROPOUTNET_AIRFLOW_PORT``, else the port a running API server was started on, else 8080."""
    value = os.environ.get("DROPOUTNET_AIRFLOW_PORT")
    if value:
        try:
            port = int(value)
        except ValueError:
            raise StackError(f"DROPOUTNET_AIRFLOW_PORT={value!r} is not a port number") from None
        if not 0 < port < 65536:
            raise StackError(f"DROPOUTNET_AIRFLOW_PORT={value!r} is not a port number (1-65535)")
        return port
    recorded = run_dir(base) / "api-server.port"
    if recorded.exists() and _component_pid("api-server", base) is not None:
        try:
            return int(recorded.read_text().strip())
        except ValueError:
            pass
    return DEFAULT_PORT


def api_host() -> str:
    """The address Airflow's api-server listens on (``DROPOUTNET_AIRFLOW_HOST``, else loopback)."""
    return os.environ.get("DROPOUTNET_AIRFLOW_HOST") or DEFAULT_HOST


def postgres_socket_dir(base: Path | None = None) -> str:
    """The embedded server's socket folder (from its ``postmaster.pid``, else ``pgdata``)."""
    pgdata = (base or home()) / "pgdata"
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        lines = pidfile.read_text().splitlines()
        if len(lines) > 4 and lines[4].strip():
            return lines[4].strip()
    return str(pgdata)


def metadata_conn(base: Path | None = None) -> str:
    """Airflow's metadata database: the user's setting, else the embedded server's ``airflow`` db."""
    user = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if user:
        return user
    return embedded_pg.socket_url(postgres_socket_dir(base), embedded_pg.AIRFLOW_DATABASE,
                                  driver="postgresql+psycopg2", user=embedded_pg.SUPERUSER)


def pipeline_connection_uri(base: Path | None = None) -> str:
    """The local stack's value of the DAG's database connection (``AIRFLOW_CONN_DROPOUTNET_DB``):
    ``DROPOUTNET_DATABASE_URL`` when set, else the embedded server's application database (as
    the pipeline role), so that ``make demo`` needs no set-up."""
    return (os.environ.get("DROPOUTNET_DATABASE_URL")
            or embedded_pg.app_url(postgres_socket_dir(base)))


def airflow_env(*, base: Path | None = None, sql_alchemy_conn: str | None = None,
                port: int | None = None) -> dict[str, str]:
    """The environment for every ``airflow`` command and component (and so every task process)."""
    base = base or home()
    port = port or api_port(base)
    ahome = airflow_home(base)
    ahome.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "DROPOUTNET_HOME": str(base),
        "XDG_RUNTIME_DIR": env.get("XDG_RUNTIME_DIR") or str(run_dir(base, create=True)),
        "AIRFLOW_HOME": str(ahome),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn or metadata_conn(base),
        # the user's executor is kept (docker-compose.yml's is Celery); local by default
        "AIRFLOW__CORE__EXECUTOR": celery_mode.executor(),
        "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        # the user's own list wins (e.g. admin:admin,viewer:viewer for a read-only login)
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS":
            env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS") or f"{ADMIN_USER}:admin",
        "AIRFLOW__API__HOST": api_host(),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": env.get("AIRFLOW__API__WORKERS", "1"),
        # Task processes report to the execution API of *our* API server, on our port.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "KERAS_HOME": str(base / "keras"),
        # a task whose worker is lost is failed (and retried) after 30 s, not 300: see
        # dropoutnet.local.celery_mode
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT":
            env.get("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT")
            or str(celery_mode.HEARTBEAT_TIMEOUT_S),
        # a task instance records the worker that ran it (dropoutnet.airflow_worker)
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": env.get("AIRFLOW__CORE__HOSTNAME_CALLABLE")
            or "dropoutnet.airflow_worker.name",
    })
    if celery_mode.is_celery(env["AIRFLOW__CORE__EXECUTOR"]):
        env.update(celery_mode.settings(env, run_dir(base)))
    # DROPOUTNET_CONFIG / DROPOUTNET_DATABASE_URL pass through unchanged when set (dict(os.environ)).
    for key in ("DROPOUTNET_CONFIG", "DROPOUTNET_DATABASE_URL"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    # inside Airflow the tasks read the database from this connection (required there); the
    # user's own definition wins
    conn_env = airflow_connection.env_var()
    if not os.environ.get(conn_env):
        env[conn_env] = pipeline_connection_uri(base)
    return env


# --- processes -----------------------------------------------------------------------------------


def _pid_file(component: str, base: Path | None = None) -> Path:
    return run_dir(base) / f"airflow-{component}.pid"


def _log_file(component: str, base: Path | None = None) -> Path:
    return log_dir(base) / f"airflow-{component}.log"


def _is_airflow(cmdline: str, comm: str) -> bool:
    # Airflow rewrites its process titles (setproctitle); mid-rewrite the cmdline can read empty.
    # A Celery worker's title names Celery ("[celeryd: worker-1@host:MainProcess] ...").
    return not cmdline.strip() or any(word in text for word in ("airflow", "celery")
                                      for text in (cmdline, comm))


def _is_redis(cmdline: str, comm: str) -> bool:
    return "redis-server" in cmdline or "redis-server" in comm


def _component_pid(component: str, base: Path | None = None) -> int | None:
    return processes.pid_from_file(_pid_file(component, base), _is_airflow)


def components(base: Path | None = None) -> list[str]:
    """The Airflow processes of the stack: the four components, then the Celery workers when
    the executor is Celery (or, to stop them, when their pid files are there)."""
    workers = celery_mode.worker_names() if celery_mode.is_celery() else []
    found = sorted((p.name[len("airflow-"):-len(".pid")]
                    for p in run_dir(base).glob("airflow-worker-*.pid")),
                   key=lambda name: int(name.rsplit("-", 1)[1]))
    return [*COMPONENTS, *workers, *(w for w in found if w not in workers)]


def _is_worker(component: str) -> bool:
    return component.startswith("worker-")


def _launch(component: str, env: dict[str, str], base: Path) -> tuple[list[str], dict, Path]:
    """The command, environment and working folder of one Airflow process."""
    if not _is_worker(component):
        return [airflow_bin(), component], env, REPO
    index = int(component.rsplit("-", 1)[1])
    port = celery_mode.log_port(index)
    if not processes.port_free("127.0.0.1", port):
        raise StackError(f"port {port}, the task-log server port of Celery {component}, is "
                         f"in use: set {celery_mode.LOG_PORT_ENV} to a free range (worker K "
                         "listens on it + K - 1)")
    folder = base / "workers" / component
    folder.mkdir(parents=True, exist_ok=True)
    return (celery_mode.worker_command(airflow_bin(), component),
            celery_mode.worker_env(env, component, index), folder)


def start_component(component: str, env: dict[str, str], base: Path, *,
                    echo=print) -> subprocess.Popen:
    """Start one Airflow process of the stack (``scheduler``, ``worker-2``, ...) in a session
    of its own, with its log under the stack's logs and its pid file, and return it."""
    run_dir(base, create=True)
    log_dir(base, create=True)
    logfile = _log_file(component, base)
    command, component_env, folder = _launch(component, env, base)
    with open(logfile, "ab") as out:
        out.write(f"\n===== starting airflow {component} at {time.ctime()} =====\n".encode())
        out.flush()
        proc = subprocess.Popen(command, env=component_env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(folder), start_new_session=True)
    _pid_file(component, base).write_text(f"{proc.pid}\n")
    echo(f"  started airflow {component} (pid {proc.pid}, log {logfile})")
    return proc


def start_broker(base: Path | None = None, *, echo=print) -> int | None:
    """Start the local Redis broker of the Celery mode (or find it running) and wait until it
    answers; None when the user named a broker (``AIRFLOW__CELERY__BROKER_URL``)."""
    if os.environ.get(celery_mode.BROKER_URL_ENV):
        return None
    base = base or home()
    run = run_dir(base, create=True)
    pidfile = run / "redis.pid"
    command, port, password = celery_mode.prepare_broker(run, base / "redis")
    pid = processes.pid_from_file(pidfile, _is_redis)
    if pid is None:
        if not processes.port_free("127.0.0.1", port):
            raise StackError(f"port {port}, kept for the stack's Redis broker in "
                             f"{run / 'redis.port'}, is in use by another program: delete that "
                             "file and start again to pick a free one")
        logfile = log_dir(base, create=True) / "redis.log"
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=str(base / "redis"),
                                    start_new_session=True)
        pid = proc.pid
        pidfile.write_text(f"{pid}\n")
        echo(f"  started the Redis broker (pid {pid}, port {port}, log {logfile})")
    celery_mode.wait_for_broker(port, password, lambda: processes.alive(pid, _is_redis))
    return pid


def stop_broker(base: Path | None = None, *, timeout: float = 10, echo=print) -> int | None:
    """Stop the local Redis broker (its append-only file stays for the next start)."""
    pidfile = run_dir(base) / "redis.pid"
    pid = processes.pid_from_file(pidfile, _is_redis)
    if pid is not None:
        _stop_trees({"redis": pid}, timeout, echo)
        echo(f"  stopped the Redis broker (pid {pid})")
    pidfile.unlink(missing_ok=True)
    return pid


def run_airflow(args: list[str], env: dict[str, str], *, log_name: str | None = None,
                timeout: float | None = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run one ``airflow`` CLI command to completion; on failure raise with its output's tail."""
    proc = subprocess.run([airflow_bin(), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))
    if log_name:
        (log_dir(Path(env["DROPOUTNET_HOME"]), create=True) / log_name).write_text(proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise StackError(f"`airflow {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc


# --- start / stop ----------------------------------------------------------------------------------


@dataclass
class AirflowInfo:
    """Where the running Airflow answers and the login its UI asks for."""
    url: str
    user: str
    password: str | None
    passwords_file: Path


def start_postgres(base: Path | None = None) -> str:
    """Start the embedded Postgres (or find it running); return its socket folder."""
    run_dir(base, create=True)
    return embedded_pg.start(base)


def login_info(base: Path | None = None, port: int | None = None) -> AirflowInfo:
    """The UI's address and login: the admin user and its generated password."""
    base = base or home()
    port = port or api_port(base)
    shown_host = "localhost" if api_host() in ("127.0.0.1", "0.0.0.0", "") else api_host()
    pwfile = airflow_home(base) / PASSWORDS_FILE
    password = None
    try:
        password = json.loads(pwfile.read_text()).get(ADMIN_USER)
    except (FileNotFoundError, ValueError):
        pass
    return AirflowInfo(url=f"http://{shown_host}:{port}", user=ADMIN_USER, password=password,
                       passwords_file=pwfile)


def health(port: int, timeout: float = 3.0) -> dict | None:
    """The API server's health document, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=timeout) as resp:
            return json.loads(resp.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def start_airflow(base: Path | None = None, *, wait: float = 240, echo=print) -> AirflowInfo:
    """Start the Airflow processes that are not running (the four components, and with the
    Celery executor the broker and the workers); wait for the API server."""
    base = base or home()
    port = api_port(base)
    host = api_host()
    if celery_mode.is_celery():
        start_broker(base, echo=echo)
    missing = [c for c in components(base) if _component_pid(c, base) is None]
    run_dir(base, create=True)
    log_dir(base, create=True)
    recorded = run_dir(base) / "api-server.port"
    if "api-server" not in missing and recorded.exists() and recorded.read_text().strip() != str(port):
        raise StackError(f"Airflow already runs on port {recorded.read_text().strip()}, not {port}: "
                         "run `make stop` first to change DROPOUTNET_AIRFLOW_PORT")
    if missing:
        if "api-server" in missing and not processes.port_free(host, port):
            raise StackError(
                f"port {port} is already in use by another program, so the Airflow API server "
                f"cannot listen on it. Pick a free port, for example:\n"
                f"    DROPOUTNET_AIRFLOW_PORT=8081 make airflow     (or make demo)")
        env = airflow_env(base=base, port=port)
        echo(f"  airflow db migrate ({_redact(env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'])}) ...")
        t0 = time.monotonic()
        run_airflow(["db", "migrate"], env, log_name="airflow-db-migrate.log")
        echo(f"  airflow db migrate done in {time.monotonic() - t0:.1f}s")
        started = {component: start_component(component, env, base, echo=echo)
                   for component in missing}
        (run_dir(base) / "api-server.port").write_text(f"{port}\n")
    else:
        started = {}
        echo(f"  Airflow is already running ({', '.join(components(base))})")
    deadline = time.monotonic() + wait
    while health(port) is None:
        for component, proc in started.items():
            if proc.poll() is not None:
                raise StackError(f"airflow {component} exited while starting (exit {proc.returncode}); "
                                 f"the end of its log "
                                 f"{_log_file(component, base)}:\n{processes.tail(_log_file(component, base))}")
        if time.monotonic() > deadline:
            raise StackError(f"the Airflow API server did not answer on port {port} within "
                             f"{wait:.0f}s; see {_log_file('api-server', base)}")
        time.sleep(1)
    info = login_info(base, port)
    for _ in range(20):  # the API server writes the password file as it initialises
        if info.password:
            break
        time.sleep(0.5)
        info = login_info(base, port)
    return info


def start(base: Path | None = None, *, echo=print) -> AirflowInfo:
    """Start Postgres and Airflow's components (what ``make airflow`` does); their login."""
    base = base or home()
    t0 = time.monotonic()
    socket_dir = start_postgres(base)
    echo(f"  Postgres is up (socket {socket_dir}) in {time.monotonic() - t0:.1f}s")
    return start_airflow(base, echo=echo)


def _stop_trees(roots: dict[str, int], timeout: float, echo) -> None:
    """SIGTERM the process groups of ``roots`` and of all their descendants (task processes run
    in groups of their own), wait up to ``timeout`` seconds, then SIGKILL what is left."""
    procs = processes.table()
    members: set[int] = set()
    groups: set[int] = set()
    for pid in roots.values():
        tree = processes.tree(pid, procs)
        members |= tree
        groups |= {pid} | {procs[p][1] for p in tree if p in procs}

    def signal_all(sig: int) -> None:
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in members:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def left() -> set[int]:
        now = processes.table()
        for root in list(members):  # a task process started while we were stopping
            if root in now:
                new = processes.tree(root, now) - members
                members.update(new)
                groups.update(now[p][1] for p in new)
        return {p for p, (_, pgid, _) in now.items() if p in members or pgid in groups}

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while left() and time.monotonic() < deadline:
        time.sleep(0.3)
    if left():
        names = ", ".join(roots)
        echo(f"  {len(left())} process(es) of airflow {names} still running after {timeout:.0f}s: "
             "killing them")
        signal_all(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while left() and time.monotonic() < deadline:
            time.sleep(0.2)


def stop_airflow(base: Path | None = None, *, timeout: float = 20, echo=print) -> list[str]:
    """Stop the components: scheduler, dag-processor and triggerer (with their task processes)
    first, so that no task is queued any more; then the Celery workers (a warm shutdown: a
    running task may finish within ``timeout``) while the API server still takes their
    tasks' reports; then the API server, and last the broker."""
    base = base or home()
    running: dict[str, int] = {}
    for component in components(base):
        pid = _component_pid(component, base)
        if pid is None:
            _pid_file(component, base).unlink(missing_ok=True)
        else:
            running[component] = pid
    for stage in ([c for c in COMPONENTS if c != "api-server"],
                  [c for c in running if _is_worker(c)], ["api-server"]):
        group = {c: running[c] for c in stage if c in running}
        if group:
            _stop_trees(group, timeout if stage != ["api-server"] else 10, echo)
    for component, pid in running.items():
        _pid_file(component, base).unlink(missing_ok=True)
        echo(f"  stopped airflow {component} (pid {pid})")
    (run_dir(base) / "api-server.port").unlink(missing_ok=True)
    stop_broker(base, echo=echo)
    return list(running)


def _runs(command: str):
    """A pid check: the process is ``dropoutnet <command>``."""
    return lambda cmdline, comm: "dropoutnet" in cmdline and f" {command}" in cmdline


def _start_background(command: str, ready, what: str, base: Path | None,
                      wait: float) -> tuple[int, Path]:
    """Start ``dropoutnet <command>`` in the background (or find it running), with a pid file
    and a log like Airflow's components, and wait until ``ready()``.  Returns (pid, log)."""
    pidfile, logfile = run_dir(base, create=True) / f"{command}.pid", \
        log_dir(base, create=True) / f"{command}.log"
    ours = _runs(command)
    pid = processes.pid_from_file(pidfile, ours)
    if pid is None:
        env = dict(os.environ, DROPOUTNET_HOME=str(base or home()))
        with open(logfile, "ab") as log:
            proc = subprocess.Popen([dropoutnet_bin(), command], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env, cwd=str(REPO))
        pid = proc.pid
        pidfile.write_text(str(pid))
    embedded_pg.ensure_database_url()  # its database, unless the user named another
    deadline = time.monotonic() + wait
    while not ready():
        if not processes.alive(pid, ours):
            raise StackError(f"the {what} exited at start; its log {logfile} ends "
                             f"with:\n{processes.tail(logfile, 20)}")
        if time.monotonic() > deadline:
            raise StackError(f"the {what} was not ready within {wait:.0f} s; see {logfile}")
        time.sleep(0.2)
    return pid, logfile


def _stop_background(command: str, base: Path | None, timeout: float) -> int | None:
    pidfile = run_dir(base) / f"{command}.pid"
    pid = processes.pid_from_file(pidfile, _runs(command))
    if pid is not None:
        _stop_trees({command: pid}, timeout, lambda _: None)
    pidfile.unlink(missing_ok=True)
    return pid


def start_stream_worker(base: Path | None = None, *, wait: float = 60) -> tuple[int, Path]:
    """Start ``dropoutnet stream`` in the background (or find it running); wait until it
    reads its slot.  Returns (pid, log)."""
    from dropoutnet.config import default_config_path, load_config
    from dropoutnet.stream.worker import status

    cfg = load_config(default_config_path())
    return _start_background("stream", lambda: status(cfg).get("worker_connected"),
                             "stream worker", base, wait)


def stop_stream_worker(base: Path | None = None, *, timeout: float = 20) -> int | None:
    """Stop the background stream worker (its slot stays: the next start goes on from it)."""
    return _stop_background("stream", base, timeout)


def start_recall_api(base: Path | None = None, *, wait: float = 60) -> tuple[int, Path, str]:
    """Start ``dropoutnet recall-api`` in the background (or find it running); wait until it
    answers ``/healthz``.  Returns (pid, log, its address)."""
    from dropoutnet.config import default_config_path, load_config

    api = load_config(default_config_path()).retrieval.api
    address = f"http://{api.host}:{api.port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{address}/healthz", timeout=2):
                return True
        except urllib.error.HTTPError:  # 503 before a version is active: it answers
            return True
        except OSError:
            return False

    pid, logfile = _start_background("recall-api", ready, "recall API", base, wait)
    return pid, logfile, address


def stop_recall_api(base: Path | None = None, *, timeout: float = 20) -> int | None:
    """Stop the background recall API (it flushes its served log on the way out)."""
    return _stop_background("recall-api", base, timeout)


def stop(base: Path | None = None, *, echo=print) -> None:
    """Stop the stream worker, the recall API, the model services, Airflow's components and
    Postgres, each by its pid (what ``make stop`` does)."""
    base = base or home()
    from dropoutnet.serving import service

    if stop_stream_worker(base) is not None:
        echo("  stopped the stream worker")
    if stop_recall_api(base) is not None:
        echo("  stopped the recall API")
    for name in service.stop_all():
        echo(f"  stopped model service {name}")
    stopped = stop_airflow(base, echo=echo)
    if not stopped:
        echo("  no Airflow component was running")
    if embedded_pg.stop(base):
        echo("  stopped Postgres")
    else:
        echo("  Postgres was not running")


def status(base: Path | None = None) -> dict:
    """What of the stack runs now: Postgres's and each Airflow component's pid (None when
    stopped), the UI's address and, when the api-server runs, its health answer."""
    base = base or home()
    running = {c: _component_pid(c, base) for c in components(base)}
    port = api_port(base)
    pg_pid = None
    pidfile = base / "pgdata" / "postmaster.pid"
    if pidfile.exists():
        try:
            pg_pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pg_pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            pg_pid = None
        except PermissionError:
            pass
    broker = processes.pid_from_file(run_dir(base) / "redis.pid", _is_redis)
    return {"home": str(base), "postgres": pg_pid, "executor": celery_mode.executor(),
            "broker": broker, "airflow": running, "url": login_info(base, port).url,
            "healthy": health(port) if running["api-server"] else None}


def _redact(url: str) -> str:
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.split("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def print_login(info: AirflowInfo, echo=print) -> None:
    """Print the UI's address and login, as ``make demo`` ends."""
    echo(f"Airflow UI: {info.url}   (DropoutNet console: {info.url}/plugin/dropoutnet)")
    if info.password:
        echo(f"  log in as {info.user} / {info.password}   (generated; kept in {info.passwords_file})")
    else:
        echo(f"  log in as {info.user}; the generated password is in {info.passwords_file}")


def main(argv: list[str] | None = None) -> int:
    """``python -m dropoutnet.local.stack start|stop|status|airflow ...``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["airflow"]:
        # any airflow command with the stack's environment (AIRFLOW_HOME, DAGs, metadata DB):
        # python -m dropoutnet.local.stack airflow backfill create --dag-id dropoutnet_daily ...
        return subprocess.call([airflow_bin(), *argv[1:]], env=airflow_env(), cwd=str(REPO))
    parser = argparse.ArgumentParser(prog="python -m dropoutnet.local.stack",
                                     description="Start, stop or inspect the local Postgres + Airflow stack.")
    parser.add_argument("command", choices=("start", "stop", "status", "airflow"),
                        help="airflow ARGS... runs an airflow command with the stack's environment")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            t0 = time.monotonic()
            print(f"Starting the local stack in {home()} ...")
            info = start()
            print(f"Stack up in {time.monotonic() - t0:.1f}s.")
            print_login(info)
            print("Stop everything with: make stop")
        elif args.command == "stop":
            print(f"Stopping the local stack in {home()} ...")
            stop()
        else:
            st = status()
            print(f"home: {st['home']}")
            print(f"postgres: {'running, pid %s' % st['postgres'] if st['postgres'] else 'stopped'}")
            print(f"executor: {st['executor']}")
            if celery_mode.is_celery(st["executor"]) or st["broker"]:
                broker = f"running, pid {st['broker']}" if st["broker"] else "stopped"
                print(f"redis broker: {broker}")
            for component, pid in st["airflow"].items():
                print(f"airflow {component}: {'running, pid %s' % pid if pid else 'stopped'}")
            if st["healthy"]:
                print(f"UI: {st['url']}  health: {json.dumps(st['healthy'])}")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
