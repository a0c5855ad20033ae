"""The served log: every list recall answered, written behind the request path.

A recall answer becomes one :class:`ServedList` (request id, time, user, version, arm,
channel, and the items in served order with their scores).  The recall API hands it to a
:class:`ServedLogWriter`, which only appends it to an in-memory buffer: the request never
waits for the database.  The writer's thread copies the buffer into ``served_lists``
(``online/copy_served.sql``: one transaction per batch, a binary COPY per day straight into
the day's partition, through psycopg 3, whose binary COPY writes the rows' arrays and UUIDs
without a text round trip), making the day's partition first when it is new
(``online/ddl/served_partition.sql``).

**What a crash can lose.**  A batch is flushed when ``retrieval.log.flush_rows`` answers are
buffered or when the oldest has waited ``retrieval.log.flush_ms``, whichever comes first.
So a killed process loses at most the answers of its last ``flush_ms`` (plus the batch being
copied at that moment, which commits whole or not at all): a response is one row, and a
batch is one COPY in one transaction, so a partial response is never written.

**When the database is away** the batch goes back to the buffer and the writer retries with
a growing pause (up to 5 s); requests go on being answered.  Past
``retrieval.log.max_buffered_rows`` the newest answers are dropped and counted
(:attr:`ServedLogWriter.stats`, shown by the API's ``/healthz``): logging never blocks or
fails a request.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import psycopg
from psycopg.types.json import Jsonb

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.locations import database_url

log = logging.getLogger(__name__)

# the binary COPY's column types, in online/copy_served.sql's order
COPY_TYPES = ("date", "uuid", "timestamptz", "text", "text", "text", "text", "int8", "text",
              "jsonb", "text[]", "float4[]")
SOURCES = ("api", "cli")
MAX_RETRY_PAUSE = 5.0
# Encoding a batch is Python work under the GIL (~16 us a row): held for a whole batch of a
# few hundred rows it delayed the requests that arrived meanwhile by milliseconds (the recall
# API's p99, bench/online.py).  The writer hands the GIL over every YIELD_ROWS rows.
YIELD_ROWS = 16


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    """Create the served log's and the online metrics' tables if missing (idempotent)."""
    db.ensure_ddl(url, "online/ddl/online_tables.sql", schema=cfg.storage.schema_)


def parse_request_id(value: str | None) -> uuid.UUID:
    """A caller's request id (any UUID spelling), or a new random one when ``None``;
    ``ValueError`` naming the expected form otherwise."""
    if value is None:
        return uuid.uuid4()
    try:
        return uuid.UUID(value.strip())
    except (ValueError, AttributeError):
        raise ValueError(f"request_id must be a UUID (e.g. {uuid.uuid4()}), got {value!r}; "
                         "or leave it out and the response carries a new one") from None


@dataclass(frozen=True)
class ServedList:
    """One answered recall, as the log keeps it (items in served order, position = index+1)."""

    request_id: uuid.UUID
    served_at: dt.datetime
    source: str
    user_id: str
    model_version: str
    arm: str
    experiment_id: int | None
    channel: str
    filters: dict[str, str] | None
    item_ids: Sequence[str]
    scores: Sequence[float]

    @classmethod
    def of_answer(cls, answer: dict[str, Any], request_id: uuid.UUID, source: str,
                  channel: str, filters: dict[str, str] | None,
                  served_at: dt.datetime | None = None) -> "ServedList":
        """The log row of a recall answer (``recall_checked``'s dict)."""
        items = answer["items"]
        return cls(request_id, served_at or dt.datetime.now(dt.timezone.utc), source,
                   answer["user_id"], answer["model_version"], answer["arm"],
                   answer.get("experiment_id"), channel, filters or None,
                   [i["item_id"] for i in items], [i["score"] for i in items])

    def copy_row(self) -> tuple:
        """The row in ``COPY_TYPES``' order (dt is the UTC day of ``served_at``)."""
        return (self.served_at.astimezone(dt.timezone.utc).date(), self.request_id,
                self.served_at, self.source, self.user_id, self.model_version, self.arm,
                self.experiment_id, self.channel,
                None if self.filters is None else Jsonb(self.filters),
                list(self.item_ids), [float(s) for s in self.scores])


@dataclass
class _Stats:
    buffered: int = 0
    written: int = 0
    dropped: int = 0
    failed_flushes: int = 0
    last_error: str | None = None
    last_flush: str | None = None


class ServedLogWriter:
    """Buffers :class:`ServedList` rows and copies them into ``served_lists`` from a thread.

    :meth:`log` never blocks on the database; :meth:`flush` waits until everything logged
    so far is written (the CLI, tests, a graceful shutdown); :meth:`close` flushes and stops
    the thread.  See the module docstring for what a crash can lose.
    """

    def __init__(self, cfg: PipelineConfig, url: str | None = None) -> None:
        self.cfg = cfg
        self.url = url or database_url()
        settings = cfg.retrieval.log
        self.flush_seconds = settings.flush_ms / 1000.0
        self.flush_rows = settings.flush_rows
        self.max_rows = settings.max_buffered_rows
        self._buffer: list[tuple[float, ServedList]] = []
        self._cond = threading.Condition()
        self._in_flight = 0
        self._flush_now = False
        self._stopping = False
        self._days: set[dt.date] = set()
        self._tables = False
        self._conn: psycopg.Connection | None = None
        self._stats = _Stats()
        self._thread = threading.Thread(target=self._run, name="served-log", daemon=True)
        self._started = False

    def start(self) -> "ServedLogWriter":
        """Start the writer's thread (it makes the tables on its first batch, so a server
        starts while the database is away)."""
        self._thread.start()
        self._started = True
        return self

    def log(self, served: ServedList) -> bool:
        """Buffer one answer for the next batch; False (and counted) when the buffer is
        full because the database has been unreachable for a while."""
        with self._cond:
            if len(self._buffer) + self._in_flight >= self.max_rows:
                self._stats.dropped += 1
                return False
            self._buffer.append((time.monotonic(), served))
            if len(self._buffer) >= self.flush_rows or len(self._buffer) == 1:
                self._cond.notify_all()
        return True

    @property
    def stats(self) -> dict[str, Any]:
        """Rows buffered, written and dropped, failed flushes and the last error."""
        with self._cond:
            self._stats.buffered = len(self._buffer) + self._in_flight
            return dict(self._stats.__dict__)

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything logged so far now; True once written, False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._buffer or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush what is buffered (within ``timeout``) and stop the thread."""
        if not self._started:
            return True
        written = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=max(1.0, timeout))
        if self._conn is not None:
            self._conn.close()
        if not written:
            log.warning("served log: %d answers were not written at shutdown (%s)",
                        self.stats["buffered"], self._stats.last_error)
        return written

    # --- the writer's thread ----------------------------------------------------------------

    def _next_batch(self) -> list[ServedList] | None:
        """Wait until a batch is due (full, old enough, or asked for); None when stopping."""
        with self._cond:
            while True:
                if self._buffer:
                    due = self._buffer[0][0] + self.flush_seconds
                    wait = due - time.monotonic()
                    if wait <= 0 or len(self._buffer) >= self.flush_rows or self._flush_now \
                            or self._stopping:
                        batch = [row for _, row in self._buffer]
                        self._buffer = []
                        self._in_flight = len(batch)
                        return batch
                    self._cond.wait(wait)
                elif self._stopping:
                    return None
                else:
                    self._flush_now = False
                    self._cond.wait()

    def _run(self) -> None:
        pause = 0.1
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._write(batch)
            except Exception as err:  # noqa: BLE001 - kept and retried: logging never fails
                with self._cond:
                    self._stats.failed_flushes += 1
                    self._stats.last_error = f"{type(err).__name__}: {err}".strip()
                    now = time.monotonic()
                    keep = max(0, self.max_rows - len(self._buffer))
                    self._stats.dropped += max(0, len(batch) - keep)
                    self._buffer[:0] = [(now, row) for row in batch[:keep]]
                    self._in_flight = 0
                    self._cond.notify_all()
                log.warning("served log: writing %d answers failed (%s); retrying in %.1f s",
                            len(batch), self._stats.last_error, pause)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                self._days.clear()  # a partition may have been dropped (retention)
                if self._stopping:
                    return
                time.sleep(pause)
                pause = min(pause * 2, MAX_RETRY_PAUSE)
                continue
            pause = 0.1
            with self._cond:
                self._stats.written += len(batch)
                self._stats.last_flush = dt.datetime.now(dt.timezone.utc).isoformat()
                self._in_flight = 0
                self._cond.notify_all()

    def _write(self, batch: list[ServedList]) -> None:
        schema = self.cfg.storage.schema_
        rows = [served.copy_row() for served in batch]
        if not self._tables:
            ensure_tables(self.url, self.cfg)
            self._tables = True
        for day in sorted({row[0] for row in rows} - self._days):
            with db.transaction(self.url) as cur:
                sql.execute(cur, "core/ddl/lock.sql")
                sql.execute(cur, "online/ddl/served_partition.sql", params={"dt": day},
                            schema=schema, partition=db.partition_name("served_lists", day))
            self._days.add(day)
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url)
        by_day: dict[dt.date, list[tuple]] = {}
        for row in rows:
            by_day.setdefault(row[0], []).append(row)
        # straight into each day's partition: the parent would route every row (a batch is
        # almost always one day), and all days of a batch commit together
        with self._conn.transaction(), self._conn.cursor() as cur:
            for day, day_rows in by_day.items():
                statement = sql.render("online/copy_served.sql", schema=schema,
                                       partition=db.partition_name("served_lists", day))
                with cur.copy(statement) as copy:
                    copy.set_types(list(COPY_TYPES))
                    for k, row in enumerate(day_rows):
                        copy.write_row(row)
                        if k % YIELD_ROWS == YIELD_ROWS - 1:
                            time.sleep(0)  # hand the GIL to the request threads


def write_now(cfg: PipelineConfig, url: str | None, rows: Sequence[ServedList]) -> None:
    """Write ``rows`` to the served log before returning (the CLI's recall); raises when
    they could not be written within 30 s."""
    writer = ServedLogWriter(cfg, url).start()
    for row in rows:
        writer.log(row)
    if not writer.close(timeout=30):
        raise RuntimeError(f"the served log could not be written: {writer.stats['last_error']}")
