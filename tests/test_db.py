"""Partition swap and DDL under concurrency, on the real Postgres."""

from __future__ import annotations

import os
import threading

import psycopg2
import pytest
from helpers import fetch_all, make_config

from dropoutnet.config import ConfigError
from dropoutnet.core import db
from dropoutnet.core.locations import NoDatabaseError
from dropoutnet.local import embedded_pg
from dropoutnet.recall import vectors

embedded_only = pytest.mark.skipif(bool(os.environ.get("DROPOUTNET_TEST_DATABASE_URL")),
                                   reason="about the embedded server's roles")


def test_parallel_tasks_create_the_same_tables_without_colliding(database_url):
    # user and item embeddings run in parallel in the DAG and both ensure the same tables
    schema = "ddl_race"
    cfg = make_config(storage={"schema": schema})
    errors: list[BaseException] = []

    def ensure():
        try:
            vectors.ensure_tables(database_url, cfg)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    for _ in range(3):
        conn = psycopg2.connect(database_url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"drop schema if exists {schema} cascade")
        threads = [threading.Thread(target=ensure) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with conn.cursor() as cur:
            cur.execute("select tablename from pg_tables where schemaname = %s", (schema,))
            assert {r[0] for r in cur.fetchall()} == {
                "user_embeddings", "item_embeddings", "ddl_applied"}
        conn.close()
    assert errors == []

    # applied once, the DDL is not run again: a task does not wait for (or deadlock with) a
    # reader of the tables, as `alter table ... if not exists` would with its exclusive lock
    reader = psycopg2.connect(database_url)
    with reader.cursor() as cur:
        cur.execute(f"select count(*) from {schema}.item_embeddings")  # holds its lock
        again = threading.Thread(target=ensure)
        again.start()
        again.join(timeout=20)
        assert not again.is_alive() and errors == []
    reader.rollback()
    # a changed template (an upgrade) is applied: the ledger holds another digest
    with reader.cursor() as cur:
        cur.execute(f"update {schema}.ddl_applied set digest = 'older'")
        cur.execute(f"alter table {schema}.item_embeddings drop column attributes")
    reader.commit()
    ensure()
    assert errors == []
    with reader.cursor() as cur:
        cur.execute("select count(*) from information_schema.columns "
                    "where table_schema = %s and column_name = 'attributes'", (schema,))
        assert cur.fetchone()[0] == 1
        cur.execute(f"drop schema {schema} cascade")
    reader.commit()
    reader.close()


def test_a_call_outside_an_entry_point_names_the_missing_database(monkeypatch):
    # the package never starts a server by itself: the entry points set the database
    monkeypatch.delenv("DROPOUTNET_DATABASE_URL", raising=False)
    with pytest.raises(NoDatabaseError, match="set DROPOUTNET_DATABASE_URL=postgresql://"):
        db.connect()


@embedded_only
def test_the_pipeline_connects_as_a_role_that_is_no_superuser(database_url, monkeypatch):
    monkeypatch.delenv("DROPOUTNET_DATABASE_URL", raising=False)  # the embedded default
    conn = db.connect(embedded_pg.ensure_database_url())
    try:
        with conn.cursor() as cur:
            cur.execute("select current_user::text, rolsuper, rolcreaterole, rolcreatedb "
                        "from pg_roles where rolname = current_user")
            assert cur.fetchone() == (embedded_pg.PIPELINE_ROLE, False, False, False)
    finally:
        conn.close()
    # the tests connect as the pipeline does
    assert fetch_all(database_url, "select current_user::text") == [(embedded_pg.PIPELINE_ROLE,)]


@embedded_only
def test_the_embedded_server_runs_with_its_settings(database_url, admin_database_url):
    """Memory sized to the machine and pg_prewarm's autoprewarm, besides the change log."""
    wanted = embedded_pg.server_settings()
    rows = fetch_all(admin_database_url, "select name, setting, unit from pg_settings "
                                         "where name = any(%s)", (list(wanted),))
    assert {name: embedded_pg._same_setting(setting, unit, wanted[name])
            for name, setting, unit in rows} == {name: True for name in wanted}
    assert fetch_all(database_url, "select extname::text from pg_extension where extname = "
                                   "'pg_prewarm'") == [("pg_prewarm",)]


def test_a_shared_buffers_size_that_is_no_size_is_refused(monkeypatch):
    monkeypatch.setenv(embedded_pg.SHARED_BUFFERS_ENV, "lots")
    with pytest.raises(ConfigError, match="DROPOUTNET_PG_SHARED_BUFFERS='lots' is not a size"
                                          ".*e.g. 512MB"):
        embedded_pg.server_settings()
    monkeypatch.setenv(embedded_pg.SHARED_BUFFERS_ENV, "512MB")
    assert embedded_pg.server_settings()["shared_buffers"] == "512MB"


@embedded_only
def test_a_statement_rendered_again_is_remembered_text_for_text():
    """sql.render remembers renders of plain contexts (a request path's statements); the
    text is Jinja's own, and a context with anything else is rendered afresh."""
    from dropoutnet.core import sql

    context = dict(schema="s", table="item_embeddings", vector_type="vector",
                   created_range=True, filtered=False, excluding=False, exact=False,
                   relaxed=False)
    fresh = sql._environment().get_template("recall/retrieve.sql").render(**context)
    hits = sql._render_plain.cache_info().hits
    assert sql.render("recall/retrieve.sql", **context) == fresh
    assert sql.render("recall/retrieve.sql", **context) == fresh
    assert sql._render_plain.cache_info().hits > hits
    calls = sql._render_plain.cache_info()
    listed = sql.render("data/read_partition_chunk.sql", schema="s", table="samples_x",
                        label="label", features=[])
    assert "label" in listed and sql._render_plain.cache_info() == calls  # a list: not kept


def test_the_superusers_schemas_and_tables_are_handed_to_the_pipeline_role(
        database_url, admin_database_url):
    # a data folder from before the pipeline role: its tables belong to the superuser
    admin = psycopg2.connect(admin_database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("create schema legacy_dn")
        cur.execute("create table legacy_dn.samples (dt date, x int) partition by list (dt)")
        cur.execute("create table legacy_dn.samples_p20261110 partition of legacy_dn.samples "
                    "for values in ('2026-11-10')")
        cur.execute("create table public.legacy_events (x int)")
    admin.close()
    embedded_pg.start(embedded_pg.home())  # any start sets the server up again
    owners = fetch_all(database_url, """
        select c.relname::text, pg_get_userbyid(c.relowner)::text
        from pg_class as c
        where c.relname in ('samples', 'samples_p20261110', 'legacy_events')
          and c.relnamespace in ('legacy_dn'::regnamespace, 'public'::regnamespace)
        union all
        select 'legacy_dn', pg_get_userbyid(nspowner)::text
        from pg_namespace where nspname = 'legacy_dn'
        order by 1""")
    role = embedded_pg.PIPELINE_ROLE
    assert owners == [("legacy_dn", role), ("legacy_events", role), ("samples", role),
                      ("samples_p20261110", role)]
    with db.transaction(database_url) as cur:  # the pipeline may now drop them
        cur.execute("drop schema legacy_dn cascade")
        cur.execute("drop table public.legacy_events")
