"""Partition swap and DDL under concurrency, on the real Postgres."""

from __future__ import annotations

import threading

import psycopg2

from dropoutnet import embeddings
from helpers import make_config


def test_parallel_tasks_create_the_same_tables_without_colliding(database_url):
    # user and item embeddings run in parallel in the DAG and both ensure the same tables
    schema = "ddl_race"
    cfg = make_config(storage={"schema": schema})
    errors: list[BaseException] = []

    def ensure():
        try:
            embeddings.ensure_tables(database_url, cfg)
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
            cur.execute("select count(*) from pg_tables where schemaname = %s", (schema,))
            assert cur.fetchone()[0] == 2
            cur.execute(f"drop schema {schema} cascade")
        conn.close()
    assert errors == []
