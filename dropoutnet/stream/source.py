"""The change log the stream worker reads: a publication on the raw item tables and a
logical replication slot, read through psycopg2's replication connection.

The publication holds the tables the item features read (``raw.items``, ``raw.item_text``,
``raw.authors``) and publishes inserts and updates.  The slot keeps the server's change log
from the moment it is created until the worker confirms a position (:meth:`ChangeLog.confirm`),
which it does only after the writes covering it have committed: a worker killed at any point
reads the unconfirmed changes again when it restarts (at-least-once delivery).
"""

from __future__ import annotations

import datetime as dt
import re
import select
import time
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import psycopg2
import psycopg2.extras

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.stream import pgoutput

T = TypeVar("T")

TABLES = ("items", "item_text", "authors")


def names(cfg: PipelineConfig) -> str:
    """The slot's and the publication's name: ``dropoutnet_<model name>`` (lowercase letters,
    digits and underscores, as slot names must be)."""
    return "dropoutnet_" + re.sub(r"[^a-z0-9_]", "_", cfg.model_name.lower())


def raw_tables(cur, cfg: PipelineConfig) -> dict[tuple[str, str], str]:
    """``{(schema, table): role}`` of the raw tables the item features read."""
    out = {}
    for role in TABLES:
        t = cfg.raw.table(role)
        sql.execute(cur, "stream/resolve_table.sql",
                    params={"name": sql.qualified(t.schema_, t.table) if t.schema_
                            else sql.ident(t.table)})
        row = cur.fetchone()
        if row is None:
            raise MissingDataError(f"raw.{role}: table {t.table!r} does not exist")
        out[(row[0], row[1])] = role
    return out


def ensure(cfg: PipelineConfig, url: str | None = None) -> dict[str, object]:
    """Create the publication and the slot if absent; add to the publication the raw tables
    the config reads that it lacks.  Returns what exists afterwards."""
    name = names(cfg)
    with db.transaction(url) as cur:
        tables = raw_tables(cur, cfg)
        sql.execute(cur, "stream/publication_tables.sql", params={"publication": name})
        rows = cur.fetchall()
        held = {(r[1], r[2]) for r in rows if r[1] is not None}
        if not rows:
            sql.execute(cur, "stream/create_publication.sql", publication=name,
                        tables=sorted(tables))
        elif set(tables) - held:
            sql.execute(cur, "stream/add_tables.sql", publication=name,
                        tables=sorted(set(tables) - held))
    with db.transaction(url) as cur:  # a slot cannot be created in a transaction that wrote
        sql.execute(cur, "stream/slot.sql", params={"slot": name})
        if cur.fetchone() is None:
            sql.execute(cur, "stream/create_slot.sql", params={"slot": name})
    return {"publication": name, "slot": name, "tables": [".".join(t) for t in sorted(tables)]}


def _while_in_use(attempt: Callable[[], T], wait: float, refusal: str) -> T:
    """``attempt()``, again every 0.2 s while the slot is in use, for up to ``wait`` seconds:
    a reader that just disconnected (or was killed) holds the slot until its server process
    exits, a moment after its connection closed.  Then :class:`MissingDataError` with
    ``refusal``, its ``{error}`` the server's message."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return attempt()
        except psycopg2.errors.ObjectInUse as err:
            if time.monotonic() > deadline:
                raise MissingDataError(refusal.format(error=str(err).strip())) from None
            time.sleep(0.2)


def drop(cfg: PipelineConfig, url: str | None = None, in_use_wait: float = 10.0) -> None:
    """Drop the slot and the publication (retiring the worker frees the change log); while a
    reader holds the slot, wait up to ``in_use_wait`` seconds, then refuse with the fix
    (nothing is dropped while a worker still reads the slot)."""

    def attempt() -> None:
        with db.transaction(url) as cur:
            sql.execute(cur, "stream/drop.sql", params={"slot": names(cfg)},
                        publication=names(cfg))

    _while_in_use(attempt, in_use_wait,
                  f"the stream slot {names(cfg)} is read by a worker ({{error}}): stop "
                  "`dropoutnet stream` first, then drop it")


@dataclass(frozen=True)
class Batch:
    """The changes of whole transactions, and the position to confirm once they are written."""

    changes: list[pgoutput.Change]
    end_lsn: int
    first_commit: dt.datetime | None = None  # the commit time of its oldest transaction


class ChangeLog:
    """Read the slot in batches of whole transactions (a context manager)."""

    def __init__(self, cfg: PipelineConfig, url: str | None = None,
                 in_use_wait: float = 10.0) -> None:
        from dropoutnet.core.locations import database_url

        self.cfg, self.url = cfg, url or database_url()
        self.in_use_wait = in_use_wait  # seconds to wait for a slot another reader holds
        self.conn = None
        self.cur = None
        self.decoder = pgoutput.Decoder()
        self._open: list[pgoutput.Change] = []  # the changes of a transaction not committed yet
        self.decode_seconds = 0.0  # time spent decoding messages, in total

    def __enter__(self) -> "ChangeLog":
        return _while_in_use(
            self._start, self.in_use_wait,
            f"the stream slot {names(self.cfg)} is read by another worker ({{error}}): run one "
            "`dropoutnet stream` per model and database, or stop the other one first")

    def _start(self) -> "ChangeLog":
        conn = psycopg2.connect(
            self.url, connection_factory=psycopg2.extras.LogicalReplicationConnection)
        try:
            cur = conn.cursor()
            cur.start_replication(slot_name=names(self.cfg), decode=False, options={
                "proto_version": "1", "publication_names": names(self.cfg)})
        except BaseException:
            conn.close()
            raise
        self.conn, self.cur = conn, cur
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            self.conn.close()

    def batches(self, max_changes: int = 256, max_wait: float = 0.2,
                idle: float | None = 0.005) -> Iterator[Batch]:
        """Yield the changes of the transactions committed so far: at most about
        ``max_changes`` (whole transactions), after at most ``max_wait`` seconds of waiting
        for more; an empty batch when nothing came (so the caller can look up).

        With ``idle`` (seconds; None: off) a batch is yielded as soon as the log has been
        quiet that long, without waiting out ``max_wait``: at a low rate an item waits only
        for the batch ahead of it, not for a timer.  Under load the messages come closer
        together than ``idle``, so batches fill as they would without it, and the per-batch
        costs (a feature query, a model call, a commit) stay shared by many items."""
        while True:
            changes: list[pgoutput.Change] = []
            end_lsn = 0
            first_commit = None
            deadline = time.monotonic() + max_wait
            while len(changes) < max_changes:
                msg = self.cur.read_message()
                if msg is None:
                    left = deadline - time.monotonic()
                    quiet = idle is not None and changes and idle < left
                    if left <= 0:
                        break
                    ready, _, _ = select.select([self.cur], [], [], idle if quiet else left)
                    if quiet and not ready:
                        break  # the log has been idle: hand the batch over now
                    continue
                started = time.perf_counter()
                event = self.decoder.decode(msg.payload)
                self.decode_seconds += time.perf_counter() - started
                if isinstance(event, pgoutput.Change):
                    self._open.append(event)
                elif isinstance(event, pgoutput.Commit):
                    changes.extend(self._open)
                    self._open = []
                    end_lsn = event.end_lsn
                    first_commit = first_commit or event.commit_time
            yield Batch(changes, end_lsn, first_commit)

    def confirm(self, lsn: int) -> None:
        """Tell the server everything up to ``lsn`` is written: it may free that change log."""
        if lsn:
            self.cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, reply=True)
