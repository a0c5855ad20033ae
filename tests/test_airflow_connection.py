"""The pipeline's database inside Airflow (:mod:`dropoutnet.airflow_connection`), without Airflow:
connections are plain objects with an Airflow connection's fields, the database is the session's
real Postgres. The DAG's use of it through Airflow is in ``test_airflow_e2e.py``."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest

from dropoutnet import airflow_connection as ac
from dropoutnet.local import embedded_pg, stack


def conn(**fields):
    base = dict(conn_type="postgres", host="db.internal", port=5432, login="dropoutnet",
                password=None, schema="recsys", extra_dejson={})
    base.update(fields)
    return SimpleNamespace(**base)


def as_connection(url: str):
    """The fields Airflow makes of a libpq URL (host, port, login, password, schema, extras)."""
    parts = urlsplit(url)
    extra = {k: v[0] for k, v in parse_qs(parts.query).items()}
    host = extra.pop("host", None) or parts.hostname or ""
    return conn(host=host, port=parts.port, login=parts.username, password=parts.password,
                schema=parts.path.lstrip("/"), extra_dejson=extra)


def test_the_url_carries_every_field_quoted():
    url = ac.url_from_connection(conn(login="app user", password="p@ss:w/rd", port=5433,
                                      extra_dejson={"sslmode": "require",
                                                    "options": "-csearch_path=x"}))
    parts = urlsplit(url)
    assert parts.scheme == "postgresql"
    assert (parts.username, parts.password) == ("app%20user", "p%40ss%3Aw%2Frd")
    assert (parts.hostname, parts.port, parts.path) == ("db.internal", 5433, "/recsys")
    assert parse_qs(parts.query) == {"sslmode": ["require"], "options": ["-csearch_path=x"]}


def test_the_postgres_providers_own_extras_stay_out_of_the_url():
    url = ac.url_from_connection(conn(extra_dejson={"cursor": "dictcursor", "sslmode": "verify-full",
                                                    "sqlalchemy_scheme": "postgresql+psycopg"}))
    assert parse_qs(urlsplit(url).query) == {"sslmode": ["verify-full"]}


def test_a_socket_folder_host_goes_into_the_query():
    url = ac.url_from_connection(conn(host="/run/pg sock", port=None, login="u"))
    assert url == "postgresql://u@/recsys?host=/run/pg%20sock"


def test_a_connection_reaches_the_real_database(database_url):
    url = ac.url_from_connection(as_connection(database_url))
    with psycopg2.connect(url) as c, c.cursor() as cur:
        cur.execute("select current_user, current_database()")
        expected = psycopg2.connect(database_url)
        with expected.cursor() as cur2:
            cur2.execute("select current_user, current_database()")
            assert cur.fetchone() == cur2.fetchone()
        expected.close()
    ac.check_reachable(url)


def test_a_missing_connection_names_itself_and_the_fix():
    with pytest.raises(ac.AirflowConnectionError) as err:
        ac.resolve(lambda conn_id: None)
    text = str(err.value)
    assert "the Airflow connection 'dropoutnet_db' is not defined" in text
    assert "AIRFLOW_CONN_DROPOUTNET_DB='postgresql://USER:PASSWORD@HOST:5432/DATABASE'" in text
    assert "Admin > Connections" in text


@pytest.mark.parametrize("fields, message", [
    ({"conn_type": "mysql"}, "has type 'mysql': the pipeline's database must be a Postgres"),
    ({"conn_type": None}, "has type None"),
    ({"schema": ""}, "names no database"),
    ({"extra_dejson": {"iam": True}}, "asks for token authentication (iam)"),
])
def test_a_wrong_connection_names_itself_and_what_is_wrong(fields, message):
    with pytest.raises(ac.AirflowConnectionError, match="the Airflow connection 'dropoutnet_db'") as err:
        ac.resolve(lambda conn_id: conn(**fields))
    assert message in str(err.value)


def test_an_unreadable_definition_is_reported_with_airflows_reason(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DROPOUTNET_DB", '{"port": "five"}')

    def parse(value):
        raise ValueError("Expected integer value for `port`, but got 'five' instead.")

    with pytest.raises(ac.AirflowConnectionError) as err:
        ac.resolve(lambda conn_id: None, parse=parse)
    assert ("the Airflow connection 'dropoutnet_db' (AIRFLOW_CONN_DROPOUTNET_DB) cannot be read: "
            "Expected integer value for `port`, but got 'five' instead. Fix:") in str(err.value)


def test_a_database_that_does_not_answer_names_the_connection(admin_database_url):
    if "host=" not in admin_database_url:
        pytest.skip("needs the embedded server (a Unix socket) to name a database it lacks")
    url = ac.url_from_connection(conn(host=parse_qs(urlsplit(admin_database_url).query)["host"][0],
                                      port=None, login=urlsplit(admin_database_url).username,
                                      password="not-shown", schema="no_such_database"))
    with pytest.raises(ac.DatabaseUnreachableError) as err:
        ac.check_reachable(url)
    text = str(err.value)
    assert "cannot connect to the database of the Airflow connection 'dropoutnet_db'" in text
    assert 'database "no_such_database" does not exist' in text
    assert "not-shown" not in text and ":***@" in text
    assert "AIRFLOW_CONN_DROPOUTNET_DB" in text


def test_use_points_this_process_at_the_connection(monkeypatch, caplog, database_url):
    monkeypatch.setenv("DROPOUTNET_DATABASE_URL", "postgresql://someone:else@elsewhere/db")
    with caplog.at_level(logging.WARNING, logger="dropoutnet.airflow_connection"):
        url = ac.use(lambda conn_id: as_connection(database_url), check=True)
    import os
    assert os.environ["DROPOUTNET_DATABASE_URL"] == url
    assert "differs from the Airflow connection 'dropoutnet_db'" in caplog.text
    assert "else@" not in caplog.text  # passwords are redacted


def test_redact_hides_only_the_password():
    assert ac.redact("postgresql://u:secret@h:5432/d?sslmode=require") == \
        "postgresql://u:***@h:5432/d?sslmode=require"
    assert ac.redact("postgresql://u@/d?host=/x") == "postgresql://u@/d?host=/x"


# --- the local stack defines the connection, so `make demo` needs nothing set --------------------


def test_the_local_stack_defines_the_connection(tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DROPOUTNET_DB", raising=False)
    monkeypatch.delenv("DROPOUTNET_DATABASE_URL", raising=False)
    env = stack.airflow_env(base=tmp_path, sql_alchemy_conn="sqlite:///x.db")
    assert env["AIRFLOW_CONN_DROPOUTNET_DB"] == embedded_pg.app_url(str(tmp_path / "pgdata"))

    monkeypatch.setenv("DROPOUTNET_DATABASE_URL", "postgresql://app:pw@db.internal/recsys")
    env = stack.airflow_env(base=tmp_path, sql_alchemy_conn="sqlite:///x.db")
    assert env["AIRFLOW_CONN_DROPOUTNET_DB"] == "postgresql://app:pw@db.internal/recsys"

    monkeypatch.setenv("AIRFLOW_CONN_DROPOUTNET_DB", "postgresql://mine@db/other")
    env = stack.airflow_env(base=tmp_path, sql_alchemy_conn="sqlite:///x.db")
    assert env["AIRFLOW_CONN_DROPOUTNET_DB"] == "postgresql://mine@db/other"
