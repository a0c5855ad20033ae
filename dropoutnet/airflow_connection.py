"""The pipeline's database inside Airflow: the Airflow connection ``dropoutnet_db``.

**Inside Airflow** (every task of the daily DAG) the application database is the Airflow
connection :data:`CONN_ID`, as users of the Postgres provider expect: set it with the environment
variable ``AIRFLOW_CONN_DROPOUTNET_DB`` (what ``docker-compose.yml`` and the local stack of
``make demo`` / ``make airflow`` do), a secrets backend, or the UI (Admin > Connections). It is
**required** there: a task never falls back to ``DROPOUTNET_DATABASE_URL`` or to the embedded
server, so a worker that lacks the connection fails the run's first task with the conn id and
the fix instead of writing the day's data into a database nobody reads.

**Outside Airflow** (the ``dropoutnet`` command, the model service, the recall API, the stream
worker, the tests) nothing changes: ``DROPOUTNET_DATABASE_URL``, else the embedded server
(:func:`dropoutnet.core.locations.database_url`).

**In the Airflow API server** the DropoutNet console (``plugins/dropoutnet_console.py``) reads
the same connection through :func:`use_in_server`.

Airflow is imported only by :func:`use_in_task` and :func:`use_in_server`, which a task and
the console call: :func:`use` takes the
lookup (``BaseHook.get_connection``) as an argument, so it is tested with any object that has
a connection's fields.  A task process
uses the connection by setting ``DROPOUTNET_DATABASE_URL`` for itself (:func:`use`), so every
part below it (``db``, the steps, the processes they start) reads one URL as before.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable
from urllib.parse import quote, urlsplit, urlunsplit

from dropoutnet.core.locations import DATABASE_URL_ENV

log = logging.getLogger(__name__)

CONN_ID = "dropoutnet_db"
URL_ENV = DATABASE_URL_ENV  # the variable the package reads its database from
POSTGRES_TYPES = ("postgres", "postgresql")
# options of the Postgres provider's hook, not libpq's: never passed to the server
HOOK_ONLY_EXTRAS = frozenset({
    "iam", "redshift", "redshift-serverless", "cursor", "cluster-identifier", "workgroup-name",
    "aws_conn_id", "sqlalchemy_scheme", "sqlalchemy_query", "azure_conn_id",
    "enable_log_db_messages",
})


class AirflowConnectionError(RuntimeError):
    """The connection is missing or cannot describe a Postgres database; retrying does not help."""


class DatabaseUnreachableError(RuntimeError):
    """The connection's database does not answer (down, wrong host, password or database)."""


def env_var(conn_id: str = CONN_ID) -> str:
    """The environment variable that defines ``conn_id``: ``AIRFLOW_CONN_DROPOUTNET_DB``."""
    return "AIRFLOW_CONN_" + conn_id.upper()


def fix(conn_id: str = CONN_ID) -> str:
    """What to do about a missing or unusable connection, for the error messages."""
    return (f"set {env_var(conn_id)}='postgresql://USER:PASSWORD@HOST:5432/DATABASE' in the "
            "environment of every Airflow component (docker-compose.yml builds it from .env; "
            "`make airflow` from DROPOUTNET_DATABASE_URL or the embedded server), or add the "
            f"connection {conn_id!r} (type Postgres) in the Airflow UI under Admin > Connections "
            f"or with `airflow connections add {conn_id} --conn-uri ...`")


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


def url_from_connection(conn: Any, conn_id: str = CONN_ID) -> str:
    """The libpq URL of an Airflow Postgres connection (``conn_type``, ``host``, ``port``,
    ``login``, ``password``, ``schema`` = the database, ``extra`` = libpq parameters such as
    ``sslmode``), as the Postgres provider's hook reads the same fields."""
    conn_type = (getattr(conn, "conn_type", None) or "").lower()
    if conn_type not in POSTGRES_TYPES:
        raise AirflowConnectionError(
            f"the Airflow connection {conn_id!r} has type {getattr(conn, 'conn_type', None)!r}: "
            "the pipeline's database must be a Postgres connection (type postgres, URI "
            f"postgresql://USER:PASSWORD@HOST:5432/DATABASE). Fix: {fix(conn_id)}")
    database = getattr(conn, "schema", None)
    if not database:
        raise AirflowConnectionError(
            f"the Airflow connection {conn_id!r} names no database: in an Airflow Postgres "
            "connection the database is the 'schema' field (the path of the URI, "
            f"postgresql://USER:PASSWORD@HOST:5432/DATABASE). Fix: {fix(conn_id)}")
    extra = dict(getattr(conn, "extra_dejson", None) or {})
    token_auth = [k for k in ("iam", "azure_conn_id") if extra.get(k)]
    if token_auth:
        raise AirflowConnectionError(
            f"the Airflow connection {conn_id!r} asks for token authentication "
            f"({', '.join(token_auth)}), which the pipeline's libpq connections do not do: "
            "give it a login and password (or a client certificate through sslcert / sslkey)")
    query = {k: str(v) for k, v in extra.items() if k not in HOOK_ONLY_EXTRAS and v is not None}
    host = getattr(conn, "host", None) or ""
    if host.startswith("/"):  # a Unix-socket folder goes into the query, as libpq wants it
        query.setdefault("host", host)
        host = ""
    netloc = ""
    login, password = getattr(conn, "login", None), getattr(conn, "password", None)
    if login:
        netloc = quote(login, safe="")
        if password:
            netloc += ":" + quote(password, safe="")
        netloc += "@"
    netloc += f"[{host}]" if ":" in host else host
    port = getattr(conn, "port", None)
    if port:
        netloc += f":{int(port)}"
    query_text = "&".join(f"{quote(k, safe='')}={quote(v, safe='/')}" for k, v in query.items())
    return urlunsplit(("postgresql", netloc, "/" + quote(database, safe=""), query_text, ""))


def resolve(lookup: Callable[[str], Any], conn_id: str = CONN_ID,
            parse: Callable[[str], Any] | None = None) -> str:
    """The database URL of the connection ``conn_id``; ``lookup(conn_id)`` returns the
    connection, or ``None`` when it is not defined.

    Airflow's secrets backends skip an ``AIRFLOW_CONN_...`` value they cannot parse (a bad
    port, broken JSON) as if it were not there; ``parse(value)`` (Airflow's own parser) then
    tells what is wrong with it.
    """
    try:
        conn = lookup(conn_id)
        value = os.environ.get(env_var(conn_id))
        if conn is None and value and parse is not None:
            conn = parse(value)
    except Exception as exc:  # noqa: BLE001 - a malformed definition, named with its fix
        where = f" ({env_var(conn_id)})" if os.environ.get(env_var(conn_id)) else ""
        raise AirflowConnectionError(
            f"the Airflow connection {conn_id!r}{where} cannot be read: "
            f"{str(exc).rstrip('.')}. Fix: {fix(conn_id)}") from exc
    if conn is None:
        raise AirflowConnectionError(
            f"the Airflow connection {conn_id!r} is not defined: inside Airflow the daily "
            f"DAG reads the pipeline's database from it ({URL_ENV} is for commands run "
            f"outside Airflow). Fix: {fix(conn_id)}")
    return url_from_connection(conn, conn_id)


def check_reachable(url: str, conn_id: str = CONN_ID, timeout: int = 10) -> None:
    """Open and close one connection to ``url``; a failure names the connection and the fix."""
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=timeout).close()
    except psycopg2.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnreachableError(
            f"cannot connect to the database of the Airflow connection {conn_id!r} "
            f"({redact(url)}): {reason}. Fix the connection ({env_var(conn_id)}, or Admin > "
            "Connections in the Airflow UI) or make that database reachable") from None


def use(lookup: Callable[[str], Any], conn_id: str = CONN_ID, *,
        parse: Callable[[str], Any] | None = None, check: bool = False) -> str:
    """Make the connection ``conn_id`` this process's pipeline database and return its URL.

    Sets ``DROPOUTNET_DATABASE_URL`` for this process (and the processes it starts); a
    different value already there is overridden with a warning.  With ``check`` (the run's
    first task) the database must also answer.
    """
    url = resolve(lookup, conn_id, parse)
    current = os.environ.get(URL_ENV)
    if current and current != url:
        log.warning("%s (%s) differs from the Airflow connection %r (%s): inside Airflow the "
                    "tasks use the connection", URL_ENV, redact(current), conn_id, redact(url))
    os.environ[URL_ENV] = url
    if check:
        check_reachable(url, conn_id)
    log.info("the pipeline's database: the Airflow connection %r (%s)", conn_id, redact(url))
    return url


def use_in_task(check: bool = False) -> str:
    """:func:`use` inside an Airflow task: the connection as Airflow's SDK looks it up (its
    secrets backends, ``AIRFLOW_CONN_...``, the metadata database) and parses it.  The only
    place in the package that imports Airflow (with :func:`use_in_server`), and only when a
    task calls it.  Every task of the DAG calls it first, so it also logs which worker runs
    the task (:mod:`dropoutnet.airflow_worker`)."""
    from airflow.sdk import BaseHook, Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from dropoutnet import airflow_worker

    log.info("%s", airflow_worker.describe())

    def lookup(conn_id: str) -> Any:
        try:
            return BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            return None

    def parse(value: str) -> Any:  # what Airflow makes of an AIRFLOW_CONN_... value, or its error
        if value.lstrip().startswith("{"):
            return Connection.from_json(value, conn_id=CONN_ID)
        return Connection(conn_id=CONN_ID, uri=value)

    return use(lookup, parse=parse, check=check)


def use_in_server() -> str:
    """:func:`use` in an Airflow server component (the API server serving the console): the
    connection as the server looks it up (its secrets backends, ``AIRFLOW_CONN_...``, the
    metadata database)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    def lookup(conn_id: str) -> Any:
        try:
            return Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            return None

    def parse(value: str) -> Any:
        if value.lstrip().startswith("{"):
            return Connection.from_json(value, conn_id=CONN_ID)
        return Connection(conn_id=CONN_ID, uri=value)

    return use(lookup, parse=parse)
