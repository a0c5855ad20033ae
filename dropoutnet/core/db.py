"""Connections, transactions and the partition swap.

Derived tables are list-partitioned by the bizdate (``dt``) or by the model version.  A task
writes its output into a staging table and :func:`swap_partition` replaces the old partition
with it inside one transaction, so a rerun replaces exactly one partition and a reader sees
either the old partition or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import threading
from typing import Any, Callable, Iterator, Sequence, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from pgvector.psycopg2 import register_vector

from dropoutnet.core import sql
from dropoutnet.core.locations import database_url

log = logging.getLogger(__name__)

T = TypeVar("T")


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    """A new connection to the application database, with pgvector types registered."""
    conn = psycopg2.connect(url or database_url())
    with conn.cursor() as cur:
        cur.execute("create extension if not exists vector")
        # dates of timestamps are UTC days everywhere in the pipeline
        cur.execute("set timezone = 'UTC'")
    conn.commit()
    register_vector(conn)
    return conn


@contextlib.contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor inside one transaction: committed on success, rolled back on any error."""
    conn = connect(url)
    try:
        with conn:  # commits or rolls back
            with conn.cursor() as cur:
                yield cur
    finally:
        conn.close()


class ConnectionPool:
    """At most ``size`` database connections, opened on demand and reused (newest first):
    a new connection costs a TCP handshake, authentication and :func:`connect`'s set-up,
    milliseconds that a request or a stream batch should not pay each time.

    :meth:`run` calls ``fn(cursor)`` in one transaction on a pooled connection; a
    connection that fails is closed, and a call that failed on a reused connection (the
    server restarted since it was opened) is run once more on a new one, so ``fn`` must be
    safe to run twice (a read, or an idempotent write).  :meth:`transaction` is the same
    as a ``with`` block, without the second run: the caller retries.
    """

    def __init__(self, url: str | None, size: int) -> None:
        self.url = url
        self._idle: list = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    def run(self, fn: Callable[[Any], T]) -> T:
        """``fn(cursor)`` in one transaction on a pooled connection, waiting for a free slot;
        retried once on a fresh connection when a reused one turns out dead."""
        with self._slots:
            reused = False
            try:
                with self._transaction(reuse=True) as (cur, reused):
                    return fn(cur)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if not reused:
                    raise
            with self._transaction(reuse=False) as (cur, _):
                return fn(cur)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor in one transaction on a pooled connection (as :func:`transaction`):
        committed on success, rolled back on any error; a connection that fails is closed
        and the error raised, for the caller to retry."""
        with self._slots, self._transaction(reuse=True) as (cur, _):
            yield cur

    @contextlib.contextmanager
    def _transaction(self, reuse: bool) -> Iterator[tuple[Any, bool]]:
        """``(cursor, reused)`` in one transaction on an idle connection (``reuse``) or a new
        one; the connection goes back to the pool after, unless it failed: then it is
        closed and the error raised."""
        conn = None
        if reuse:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = connect(self.url)
        try:
            with conn:  # commits, or rolls back on any error
                with conn.cursor() as cur:
                    yield cur, reused
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            conn.close()
            raise
        finally:
            self._give_back(conn)  # (not a closed one)

    def _give_back(self, conn) -> None:
        if conn.closed:
            return
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections (at the API's shutdown)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def ensure_ddl(url: str | None, template: str, **context: Any) -> None:
    """Apply an idempotent DDL template to ``context['schema']`` unless its text is unchanged.

    The templates' ``alter table ... add column if not exists`` takes an ACCESS EXCLUSIVE
    lock even when the column is there, on tables that recall and the registry read on every
    request: run by every task, it stalled readers and could deadlock one (a reader holding
    ``active_version`` and waiting for ``model_versions`` while the DDL held the reverse).  So
    each schema keeps a ledger of the rendered text's digest per template
    (``core/ddl/applied.sql``): a task applies a template only the first time and after it
    changed (an upgrade), in a short transaction under an advisory lock, so that tasks running
    in parallel take turns instead of colliding on ``create ... if not exists``.
    """
    text = sql.render(template, **context)
    digest = hashlib.sha256(text.encode()).hexdigest()
    ledger = {"template": template, "digest": digest}
    schema = context["schema"]
    with transaction(url) as cur:
        try:
            sql.execute(cur, "core/ddl/applied.sql", params=ledger, schema=schema)
            row = cur.fetchone()
        except psycopg2.errors.UndefinedTable:  # no ledger yet: a new schema
            row = None
    if row is not None and row[0] == digest:
        return
    with transaction(url) as cur:
        sql.execute(cur, "core/ddl/lock.sql")
        log.debug("running %s:\n%s", template, text)
        cur.execute(text, {})
        sql.execute(cur, "core/ddl/record.sql", params=ledger, schema=schema)


def replace_tables(url: str, schema: str | None, ddl: dict[str, str],
                   load: Callable[[Any, str, str], int],
                   indexes: Sequence[tuple[str, ...]] = ()) -> dict[str, int]:
    """Drop, create and load raw tables in one transaction; return the rows loaded per table.

    ``ddl`` maps each table to its column definitions, in creation order; ``load(cur,
    qualified_name, table)`` fills one table (a COPY) and returns its row count; ``indexes``
    are ``(table, column, ...)`` tuples, each an index on those columns after the load.  Any
    error rolls everything back, so the previous tables stay as they were.  Used by the
    dataset writers (the synthetic generator, the MovieLens loader).
    """
    def name(table: str) -> str:  # table names are the writers' own constants
        return f"{sql.ident(schema)}.{table}" if schema else table

    counts: dict[str, int] = {}
    conn = psycopg2.connect(url)
    try:
        with conn:  # one transaction: commit on success, roll back on any error
            with conn.cursor() as cur:
                cur.execute("select 1 from pg_extension where extname = 'vector'")
                if cur.fetchone() is None:
                    cur.execute("create extension if not exists vector")
                if schema:
                    cur.execute(f"create schema if not exists {sql.ident(schema)}")
                for table, columns in ddl.items():
                    cur.execute(f"drop table if exists {name(table)}")
                    cur.execute(f"create table {name(table)} ({columns})")
                for table in ddl:
                    counts[table] = load(cur, name(table), table)
                for table, *columns in indexes:
                    index = sql.ident("_".join([table, *columns, "idx"]))
                    cur.execute(f"create index {index} "
                                f"on {name(table)} ({', '.join(map(sql.ident, columns))})")
                for table in ddl:
                    cur.execute(f"analyze {name(table)}")
    finally:
        conn.close()
    return counts


def partition_name(parent: str, value: str | dt.date) -> str:
    """``samples`` + 2026-11-28 -> ``samples_p20261128``; model version 20261128 likewise."""
    text = value.strftime("%Y%m%d") if isinstance(value, dt.date) else str(value)
    return f"{parent}_p{text.replace('-', '')}"


def create_stage(cur, schema: str, parent: str, value: str | dt.date) -> str:
    """A fresh staging table shaped like ``parent``; returns its (unquoted) name."""
    stage = partition_name(parent, value) + "_stage"
    sql.execute(cur, "core/partition/create_stage.sql", schema=schema, parent=parent, stage=stage)
    return stage


def swap_partition(cur, schema: str, parent: str, value: str | dt.date, stage: str) -> None:
    """Replace the partition of ``parent`` for ``value`` with ``stage`` (same transaction)."""
    sql.execute(cur, "core/partition/swap.sql",
                params={"value": value},
                schema=schema, parent=parent, stage=stage,
                partition=partition_name(parent, value))


def candidate_name(parent: str, value: str | dt.date) -> str:
    """``item_embeddings`` + 20261128 -> ``item_embeddings_p20261128_candidate``."""
    return partition_name(parent, value) + "_candidate"


def keep_candidate(cur, schema: str, parent: str, value: str | dt.date, stage: str) -> str:
    """Keep a filled ``stage`` as the unattached candidate partition of ``value``.

    The embedding tasks write candidates, so a rerun of the live version's bizdate never
    changes what readers of the live version see; publish attaches both candidates at once.
    """
    candidate = candidate_name(parent, value)
    sql.execute(cur, "core/partition/keep_candidate.sql", schema=schema, stage=stage,
                candidate=candidate)
    return candidate


def version_table(cur, schema: str, parent: str, value: str | dt.date) -> str | None:
    """The table holding ``value``'s rows of ``parent``: its candidate while one is waiting
    to be published, else its attached partition; ``None`` if neither exists."""
    for table in (candidate_name(parent, value), partition_name(parent, value)):
        if table_exists(cur, schema, table):
            return table
    return None


def table_exists(cur, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists (any relation: a table, a view, a partition)."""
    return tables_exist(cur, schema, table)


def tables_exist(cur, schema: str, *tables: str) -> bool:
    """Whether every ``schema.table`` exists, asked in one round trip."""
    cur.execute("select bool_and(to_regclass(t) is not null) from unnest(%s::text[]) as t",
                ([sql.qualified(schema, t) for t in tables],))
    return bool(cur.fetchone()[0])


def fetch_dicts(cur) -> list[dict[str, Any]]:
    """The rows of the cursor's last query, each a dict by column name."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def fetch_columns(cur, query: str, params: dict[str, Any] | None = None,
                  chunk_rows: int = 50_000) -> dict[str, list]:
    """Run ``query`` and return its result column-wise (lists), reading in chunks."""
    cur.execute(query, params or {})
    names = [d.name for d in cur.description]
    columns: dict[str, list] = {n: [] for n in names}
    while True:
        rows = cur.fetchmany(chunk_rows)
        if not rows:
            break
        for name, values in zip(names, zip(*rows)):
            columns[name].extend(values)
    return columns


def stream_columns(url: str | None, query: str, params: dict[str, Any] | None = None,
                   chunk_rows: int = 8192) -> Iterator[dict[str, list]]:
    """Run ``query`` in one repeatable-read transaction and yield its result column-wise, at
    most ``chunk_rows`` rows at a time, holding only that many in memory.

    A server-side cursor in the binary protocol (psycopg 3): the rows are parsed in C, not
    from text, which makes this several times faster than :func:`fetch_columns` on wide
    sample rows.  ``vector`` values come as their raw binary form (``bytes``:
    :func:`dropoutnet.data.inputs.to_array` decodes a whole column at once with numpy) instead of
    one Python object per value, which was most of the read time.
    """
    with binary_transaction(url) as conn:
        with conn.cursor(name="dropoutnet_stream", binary=True) as cur:
            cur.itersize = chunk_rows
            cur.execute(query, params or {})
            names = [d.name for d in cur.description]
            while rows := cur.fetchmany(chunk_rows):
                yield dict(zip(names, map(list, zip(*rows))))


@contextlib.contextmanager
def binary_transaction(url: str | None = None) -> Iterator[Any]:
    """A psycopg 3 connection in one repeatable-read transaction (one snapshot for every
    statement), for cursors in the binary protocol: ``vector`` values, and the elements of
    ``vector[]`` arrays, load as their raw binary form (``bytes``)."""
    import psycopg  # the binary protocol's driver; psycopg2 has only the text protocol
    from psycopg.adapt import Loader

    class RawBytes(Loader):
        format = psycopg.pq.Format.BINARY

        def load(self, data) -> bytes:
            return bytes(data)

    with psycopg.connect(url or database_url()) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("set timezone = 'UTC'")
        # a cursor is planned for its first rows by default (cursor_tuple_fraction 0.1), which
        # picks nested loops over the hash joins a whole read wants: 13x slower on the user
        # features of 100k users; every row is read here
        conn.execute("set cursor_tuple_fraction = 1.0")
        info = psycopg.types.TypeInfo.fetch(conn, "vector")
        if info is not None:
            info.register(conn)  # vector[]: arrays of the element's loader, set next
            conn.adapters.register_loader(info.oid, RawBytes)
        yield conn
