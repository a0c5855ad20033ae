"""The stream worker: new items embedded from the item tables' change log, within seconds.

One loop, one batch of whole transactions at a time (:class:`dropoutnet.stream.source.ChangeLog`):

1. the items the batch touches: inserted or updated rows of ``raw.items`` created within
   ``stream.window_hours``; the items of changed ``raw.item_text`` rows; the recent items of
   changed ``raw.authors`` rows (their features read the author's row);
2. their features, from ``data/item_features.sql`` by item id: the same definitions the daily
   item embeddings use, so a feature changed in the config changes both paths;
3. their vectors, from the model service, asking for the registry's **active version**
   explicitly (``/v1/models/<item model>/versions/<version>:predict``), never "the latest";
4. an upsert into that version's item partition (:func:`dropoutnet.recall.vectors.upsert_items`),
   which recall and its HNSW index read at once, and of the cold-start feature table
   (``stream_item_features``: one row per item, the features it was embedded from, and when),
   in one transaction; then, after the commit, the batch's position is confirmed to the slot.

A worker killed at any point reads the unconfirmed batch again and writes the same rows
(at-least-once delivery, idempotent upserts).  The model service or the database failing
makes the batch wait and retry with backoff (``stream.retry_max_seconds`` at most between
tries): the slot keeps the change log meanwhile, nothing is dropped.

**What it reports.**  While it runs, Prometheus metrics on ``stream.metrics_port``
(``dropoutnet_stream_*``: batches, changes, items embedded and ignored, dead letters, retries,
the lag in seconds and bytes, and a histogram of commit-to-stored seconds), and every
``stream.heartbeat_seconds`` a progress row (``stream_progress``).  :func:`status`
(``dropoutnet stream --status``) reads the slot and that row whether or not a worker runs, and
calls the slot *stale* when no worker reads it and the last heartbeat is older than
``stream.stale_after_minutes``: new items are then not embedded, and the server keeps every
change since, which fills its disk.

*Lag in seconds* is how far behind the source the worker was at its last batch: the time from
the commit of the batch's oldest transaction to the batch being written, 0 when it found
nothing to read (caught up).  *Commit to stored* is observed once per embedded item with the
same bound (its transaction committed no earlier than the batch's oldest one).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import psycopg2
from psycopg2.extras import Json

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.core.failpoints import failpoint
from dropoutnet.data import feature_queries, inputs
from dropoutnet.recall import vectors
from dropoutnet.stream import pgoutput, source

log = logging.getLogger(__name__)


class ModelServiceError(RuntimeError):
    """The model service did not answer a predict request (retried)."""


class RejectedError(ValueError):
    """The model service refused the request (HTTP 4xx): retrying cannot help."""


class TooLargeError(RejectedError):
    """The model service refused the request's size (HTTP 413, its ``max_body_bytes``)."""


class _Stopped(Exception):
    """Asked to stop while a batch was being retried: the batch stays unconfirmed, so the
    slot gives it again at the next start."""


def lsn_text(lsn: int) -> str:
    """A change-log position as PostgreSQL writes it (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


# a batch's phases: decoding the change log, the feature query, the model service, the upsert
PHASES = ("decode", "features", "service", "upsert")


@dataclass
class Stats:
    """The worker's running counters and gauges since it started, for its log, the
    Prometheus metrics and the ``stream_progress`` heartbeat row."""

    batches: int = 0
    changes: int = 0
    embedded: int = 0
    ignored: int = 0
    retries: int = 0
    dead_letters: int = 0
    last_lsn: int = 0
    last_embedded: list[str] = field(default_factory=list)
    lag_seconds: float = 0.0
    lag_bytes: int | None = None
    last_commit_at: str | None = None  # ISO time of the newest commit written
    switches: int = 0  # active versions followed (the first one at the start included)
    # where the time goes: seconds in total per phase (see PHASES)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))


# counters of the metrics endpoint: Stats field, help
_COUNTERS = (
    ("batches", "batches of the change log processed"),
    ("changes", "changes read from the item tables' change log"),
    ("embedded", "items embedded into the active version"),
    ("ignored", "changed items outside the window (not new), left to the daily run"),
    ("dead_letters", "changes kept in stream_dead_letters instead of being processed"),
    ("retries", "batches retried after the model service or the database failed"),
    ("switches", "active versions followed (each one caught up with the window's items)"),
)
# commit-to-stored seconds: buckets from a fraction of a second to minutes
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class _StatsCollector:
    """The worker's :class:`Stats` as Prometheus metric families, read at each scrape."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name, text in _COUNTERS:
            yield CounterMetricFamily(f"dropoutnet_stream_{name}", text,
                                      value=getattr(self.stats, name))
        yield GaugeMetricFamily("dropoutnet_stream_lag_seconds", "seconds the worker was "
                                "behind the source at its last batch (0: caught up)",
                                value=self.stats.lag_seconds)
        phases = CounterMetricFamily("dropoutnet_stream_phase_seconds", "seconds spent per "
                                     "phase of a batch", labels=["phase"])
        for phase, seconds in self.stats.seconds.items():
            phases.add_metric([phase], seconds)
        yield phases
        if self.stats.lag_bytes is not None:
            yield GaugeMetricFamily("dropoutnet_stream_lag_bytes", "bytes of change log the "
                                    "server keeps past the slot's confirmed position",
                                    value=self.stats.lag_bytes)


class Worker:
    """Embed the items of the change log into the active version (see the module doc)."""

    def __init__(self, cfg: PipelineConfig, url: str | None = None,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        self.cfg, self.url = cfg, url
        # one connection for the worker's life: a new one per transaction cost ~4 ms, three
        # times a batch (a connection the server dropped is replaced on the batch's retry)
        self.db = db.ConnectionPool(url, 1)
        self.now = now or (lambda: dt.datetime.now(dt.timezone.utc))
        self.stats = Stats()
        self.roles: dict[tuple[str, str], str] = {}
        self.item_model = cfg.serving.item_model or f"{cfg.model_name}_item"
        self.version: str | None = None  # the active version the worker last embedded into
        # the most rows one predict request carries once the service refused a bigger one's
        # size (HTTP 413); None: a batch goes in one request
        self.request_rows: int | None = None
        self._last_beat: tuple[float, int] | None = None  # (monotonic time, items embedded)
        self._stopping: Callable[[], bool] = lambda: False  # run()'s stop or deadline
        from prometheus_client import CollectorRegistry, Histogram

        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(self.stats))
        self.latency = Histogram("dropoutnet_stream_commit_to_stored_seconds",
                                 "seconds from an item's change committing to its vector being "
                                 "stored (bounded by its batch's oldest commit)",
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)

    # --- the loop --------------------------------------------------------------------------

    def run(self, max_seconds: float | None = None, stop: Callable[[], bool] | None = None
            ) -> Stats:
        """Consume until ``stop()`` says so or ``max_seconds`` passed (forever by default)."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self._stopping = lambda: ((stop is not None and stop()) or (
            deadline is not None and time.monotonic() > deadline))
        s = self.cfg.stream
        server = self._serve_metrics()
        next_heartbeat = 0.0
        try:
            made = self._wait_for_sources()
            if made is None:
                return self.stats
            db.ensure_ddl(self.url, "stream/ddl/stream_tables.sql",
                          schema=self.cfg.storage.schema_)
            vectors.ensure_tables(self.url, self.cfg)  # e.g. the filterable attributes column
            log.info("stream worker on %s (publication and slot %s)", made["tables"],
                     made["slot"])
            with self.db.transaction() as cur:
                self.roles = source.raw_tables(cur, self.cfg)
            with source.ChangeLog(self.cfg, self.url) as changes:
                idle = s.batch_idle_ms / 1000 if s.flush_when_idle else None
                for batch in changes.batches(s.batch_size, s.batch_wait_ms / 1000, idle):
                    written: list[str] = []
                    if batch.changes:  # (process follows the active version itself)
                        written = self._with_retries(
                            lambda: self.process(batch.changes, batch.end_lsn))
                        failpoint("stream.before_confirm")
                    changes.confirm(batch.end_lsn)
                    self.stats.seconds["decode"] = changes.decode_seconds
                    self._progress(batch, written)
                    if time.monotonic() >= next_heartbeat:
                        if not batch.changes:  # idle: a publish or a rollback since?
                            self._with_retries(self.follow_version)
                        self._heartbeat()
                        next_heartbeat = time.monotonic() + s.heartbeat_seconds
                    if self._stopping():
                        break
        except _Stopped:  # while the service or the database was away: nothing is lost
            log.info("stream worker stopped while retrying; its unconfirmed batch is read "
                     "again at the next start")
        finally:
            self.db.close()
            if server is not None:
                server.shutdown()
                server.server_close()
        return self.stats

    def _wait_for_sources(self) -> dict[str, object] | None:
        """The publication and the slot (:func:`source.ensure`), waiting while a raw table the
        item features read does not exist yet: a new deployment's worker starts before the
        first data load, and waits for it (a warning every try, backing off to
        ``stream.retry_max_seconds``) instead of exiting into its restart policy.  None when
        stopped meanwhile."""
        delay = min(1.0, self.cfg.stream.retry_max_seconds)
        while True:
            try:
                return source.ensure(self.cfg, self.url)
            except MissingDataError as err:
                log.warning("%s: waiting for it (load the raw data, or name the table in the "
                            "config's raw section); next try in %.0f s", err, delay)
            until = time.monotonic() + delay
            while time.monotonic() < until:
                if self._stopping():
                    return None
                time.sleep(min(0.2, delay))
            delay = min(delay * 2, self.cfg.stream.retry_max_seconds)

    def _serve_metrics(self):
        """Start the Prometheus endpoint (``stream.metrics_port``; None when 0)."""
        from prometheus_client import start_http_server

        s = self.cfg.stream
        if not s.metrics_port:
            return None
        try:
            server, _ = start_http_server(s.metrics_port, addr=s.metrics_host,
                                          registry=self.registry)
        except OSError as err:
            raise OSError(f"stream.metrics_port {s.metrics_port} on {s.metrics_host}: {err}; "
                          "set another port, or 0 to turn the worker's metrics off") from None
        log.info("stream metrics on http://%s:%d/metrics", s.metrics_host, s.metrics_port)
        return server

    def _progress(self, batch: source.Batch, written: list[str]) -> None:
        """Lag and latency figures of a batch just confirmed."""
        self.stats.last_lsn = batch.end_lsn or self.stats.last_lsn
        if batch.first_commit is None:  # nothing committed came: caught up
            self.stats.lag_seconds = 0.0
            return
        behind = max(0.0, (self.now() - batch.first_commit).total_seconds())
        self.stats.lag_seconds = behind
        self.stats.last_commit_at = batch.first_commit.isoformat()
        for _ in written:
            self.latency.observe(behind)

    def _heartbeat(self) -> None:
        """Record the progress row (with the items embedded per second since the last
        heartbeat) and read the slot's lag in bytes; a failure only logs (the next heartbeat
        tries again)."""
        now, embedded = time.monotonic(), self.stats.embedded
        last_time, last_embedded = self._last_beat or (now, embedded)
        rate = (embedded - last_embedded) / (now - last_time) if now > last_time else 0.0
        self._last_beat = (now, embedded)
        try:
            with self.db.transaction() as cur:
                sql.execute(cur, "stream/heartbeat.sql", params={
                    "model_name": self.cfg.model_name,
                    "confirmed_lsn": lsn_text(self.stats.last_lsn) if self.stats.last_lsn
                    else None,
                    "lag_seconds": self.stats.lag_seconds,
                    "last_commit_at": self.stats.last_commit_at,
                    "embedded_total": embedded, "items_per_second": round(rate, 3)},
                    schema=self.cfg.storage.schema_)
                sql.execute(cur, "stream/slot.sql", params={"slot": source.names(self.cfg)})
                slot = cur.fetchone()
            self.stats.lag_bytes = int(slot[2]) if slot and slot[2] is not None else None
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            log.warning("stream heartbeat not recorded (%s); the next one tries again", exc)

    def _with_retries(self, step: Callable[[], Any]) -> Any:
        wait = 0.5
        while True:
            try:
                return step()
            except (ModelServiceError, psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                self.stats.retries += 1
                if self._stopping():
                    raise _Stopped from exc
                log.warning("stream batch failed (%s); retrying in %.1f s, holding the slot's "
                            "position", exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, self.cfg.stream.retry_max_seconds)

    # --- one batch -------------------------------------------------------------------------

    def _dead_letter(self, item_id: str | None, lsn: int, reason: str,
                     change: dict[str, Any]) -> None:
        """Keep a change the worker cannot process, with why, and go on."""
        with self.db.transaction() as cur:
            sql.execute(cur, "stream/dead_letter.sql", params={
                "model_name": self.cfg.model_name, "item_id": item_id, "lsn": lsn_text(lsn),
                "reason": reason, "change": Json(change)}, schema=self.cfg.storage.schema_)
        self.stats.dead_letters += 1
        log.warning("dead letter for item %s at %s: %s", item_id, lsn_text(lsn), reason)

    def _touched(self, changes: list[pgoutput.Change], lsn: int) -> tuple[set[str], set[str]]:
        """(item ids, author ids) whose rows the batch inserted or updated; an item row
        without its id or creation time is a dead letter."""
        raw = self.cfg.raw
        items, authors = set(), set()
        for change in changes:
            if change.new is None:
                continue
            role = self.roles.get((change.relation.schema, change.relation.name))
            if role == "items":
                for key in ("item_id", "create_time"):
                    if change.new.get(raw.items.columns[key]) is None:
                        self._dead_letter(change.new.get(raw.items.columns["item_id"]), lsn,
                                          f"raw.items.{raw.items.columns[key]} is missing: "
                                          "the worker cannot tell what or how new the item is",
                                          _change_json(change))
                        break
                else:
                    items.add(change.new.get(raw.items.columns["item_id"]))
            elif role == "item_text":
                items.add(change.new.get(raw.item_text.columns["item_id"]))
            elif role == "authors":
                authors.add(change.new.get(raw.authors.columns["author_id"]))
        items.discard(None)
        authors.discard(None)
        return {str(i) for i in items}, {str(a) for a in authors}

    def process(self, changes: list[pgoutput.Change], lsn: int = 0) -> list[str]:
        """Embed the items a batch of changes touches; return their ids."""
        self.stats.batches += 1
        self.stats.changes += len(changes)
        item_ids, author_ids = self._touched(changes, lsn)
        version = self.follow_version()
        if version is None:
            log.info("no active version yet: %d changes left to the daily run", len(changes))
            return []
        if author_ids:
            with self.db.transaction() as cur:
                sql.execute(cur, "stream/items_of_authors.sql",
                            params={"author_ids": sorted(author_ids),
                                    "created_from": self._window_start()},
                            items=self.cfg.raw.items)
                item_ids |= {r[0] for r in cur.fetchall()}
        return self._embed(version, item_ids, lsn)

    def _window_start(self) -> dt.datetime:
        return self.now() - dt.timedelta(hours=self.cfg.stream.window_hours)

    def follow_version(self) -> str | None:
        """The active version; when it changed since the last call (a publish, a rollback,
        or the worker's start), first embed into it the window's items its partition lacks:
        those that arrived after its pool snapshot went into the version active then."""
        with self.db.transaction() as cur:
            active = registry.active(cur, self.cfg)
        if active is None or active.model_version == self.version:
            return None if active is None else self.version
        version = active.model_version
        with self.db.transaction() as cur:
            sql.execute(cur, "stream/items_missing_from_version.sql",
                        params={"created_from": self._window_start(), "version": version},
                        items=self.cfg.raw.items, schema=self.cfg.storage.schema_)
            missing = {r[0] for r in cur.fetchall()}
        written = self._embed(version, missing, self.stats.last_lsn) if missing else []
        log.info("active version %s (was %s): %d items of the window it lacked embedded",
                 version, self.version, len(written))
        self.version = version
        self.stats.switches += 1
        return version

    def _embed(self, version: str, item_ids: set[str], lsn: int) -> list[str]:
        """Read the features of ``item_ids`` (the daily query's), keep those created within
        the window, embed them with ``version`` and upsert them; return the ids written.

        In chunks of ``stream.batch_size`` items, each read, embedded and committed before
        the next: a batch is whole transactions, and one transaction can touch thousands of
        items (a catalogue imported at once, a version switch's carry-over), whose first
        items should not wait for the last, nor go to the service in one request."""
        ordered, step, out = sorted(item_ids), self.cfg.stream.batch_size, []
        for k in range(0, len(ordered), step):
            out += self._embed_chunk(version, ordered[k:k + step], lsn)
        return out

    def _embed_chunk(self, version: str, item_ids: list[str], lsn: int) -> list[str]:
        """:meth:`_embed` of at most ``stream.batch_size`` items."""
        now = self.now()
        window_start = self._window_start()
        started = time.perf_counter()
        with self.db.transaction() as cur:
            columns = feature_queries.read_features(cur, self.cfg, "item", now.date(),
                                                    {"item_ids": item_ids})
        self.stats.seconds["features"] += time.perf_counter() - started
        keep = [k for k, c in enumerate(columns["created_at"])
                if c is not None and window_start <= c <= now + dt.timedelta(minutes=5)]
        self.stats.ignored += len(item_ids) - len(keep)
        if not keep:
            return []
        rows = {name: [values[k] for k in keep] for name, values in columns.items()}
        written = self._write(version, rows, lsn)
        self.stats.embedded += len(written)
        self.stats.last_embedded = written
        log.info("embedded %d items into version %s", len(written), version)
        return written

    def _write(self, version: str, rows: dict[str, list], lsn: int) -> list[str]:
        """Embed and upsert ``rows``; a batch the service (or the model's input check)
        refuses is split, and an item refused on its own becomes a dead letter.

        A batch whose request the service refuses for its size (HTTP 413) is halved, and
        the worker keeps that size for its later requests: a backlog's full batches of big
        items fit the service's ``max_body_bytes`` after a split or two, not one request
        per item."""
        n = len(rows["item_id"])
        if self.request_rows is not None and n > self.request_rows:
            step, out = self.request_rows, []
            for k in range(0, n, step):
                out += self._write(version, {name: v[k:k + step] for name, v in rows.items()},
                                   lsn)
            return out
        started = time.perf_counter()
        try:
            embeddings = self.embed(version, rows)
        except (RejectedError, ValueError) as exc:
            self.stats.seconds["service"] += time.perf_counter() - started
            if n == 1:
                self._dead_letter(rows["item_id"][0], lsn, str(exc)[:1000],
                                  {k: _plain(v[0]) for k, v in rows.items()})
                return []
            if isinstance(exc, TooLargeError):
                self.request_rows = n // 2
                log.warning("the model service refused a request of %d items for its size "
                            "(%s); sending at most %d items a request from now on", n, exc,
                            self.request_rows)
                return self._write(version, rows, lsn)
            out = []
            for k in range(n):
                out += self._write(version, {name: [v[k]] for name, v in rows.items()}, lsn)
            return out
        self.stats.seconds["service"] += time.perf_counter() - started
        started = time.perf_counter()
        with self.db.transaction() as cur:
            vectors.upsert_items(cur, self.cfg, version, rows["item_id"], rows["created_at"],
                                 embeddings, rows["attributes"])
            self._upsert_features(cur, rows)
            failpoint("stream.before_commit")
        self.stats.seconds["upsert"] += time.perf_counter() - started
        return list(rows["item_id"])

    def _upsert_features(self, cur, rows: dict[str, list]) -> None:
        """The cold-start feature table's rows of ``rows`` (in the vectors' transaction)."""
        from psycopg2.extras import execute_values

        names = [f.name for f in self.cfg.features_of(side="item")]
        now = self.now()
        values = [(self.cfg.model_name, item_id, rows["created_at"][k],
                   Json({n: _plain(rows[n][k]) for n in names}), now)
                  for k, item_id in enumerate(rows["item_id"])]
        execute_values(cur, sql.render("stream/upsert_item_features.sql",
                                       schema=self.cfg.storage.schema_), values)

    # --- the model service -----------------------------------------------------------------

    def embed(self, version: str, rows: dict[str, list]) -> np.ndarray:
        """The item tower of ``version`` on ``rows``, through the model service."""
        arrays = inputs.to_inputs(self.cfg.features_of(side="item"), rows)
        body = {"inputs": {name: _jsonable(a) for name, a in arrays.items()}}
        url = (f"{self.cfg.stream.service_url.rstrip('/')}/v1/models/{self.item_model}"
               f"/versions/{version}:predict")
        headers = {"Content-Type": "application/json"}
        token = os.environ.get(self.cfg.stream.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                answer = json.loads(r.read())
        except urllib.error.HTTPError as err:
            detail = f"{url}: HTTP {err.code}: {err.read()[:300]!r}"
            if err.code == 413:
                raise TooLargeError(detail) from None
            if 400 <= err.code < 500 and err.code not in (404, 408, 429):
                raise RejectedError(detail) from None  # 404: the version is not loaded yet
            raise ModelServiceError(detail) from None
        except (urllib.error.URLError, OSError) as err:
            raise ModelServiceError(f"{url}: {err}") from None
        out = np.asarray(answer["outputs"], dtype=np.float32)
        if out.shape != (len(rows["item_id"]), self.cfg.vector_dim):
            raise ModelServiceError(f"{url} answered shape {out.shape}, expected "
                               f"({len(rows['item_id'])}, {self.cfg.vector_dim})")
        return out


def _plain(value: Any) -> Any:
    """A feature value as JSON (vectors as lists, times as text, a missing number null)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_list"):
        return value.to_list()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def _change_json(change: pgoutput.Change) -> dict[str, Any]:
    return {"kind": change.kind, "table": f"{change.relation.schema}.{change.relation.name}",
            "new": {k: (None if v is pgoutput.UNCHANGED else v)
                    for k, v in (change.new or {}).items()}}


def status(cfg: PipelineConfig, url: str | None = None) -> dict[str, Any]:
    """The slot's position and lag, the worker's last heartbeat, the dead letters so far, and
    whether the slot is stale (no worker reads it and none has for
    ``stream.stale_after_minutes``); a stale slot comes with a ``warning`` saying what to do."""
    name = source.names(cfg)
    schema = cfg.storage.schema_
    with db.transaction(url) as cur:
        sql.execute(cur, "stream/slot.sql", params={"slot": name})
        slot = cur.fetchone()
        dead, progress = (0, None), None
        if db.table_exists(cur, schema, "stream_dead_letters"):
            sql.execute(cur, "stream/status.sql", params={"model_name": cfg.model_name},
                        schema=schema)
            dead = cur.fetchone()
        if db.table_exists(cur, schema, "stream_progress"):
            sql.execute(cur, "stream/progress.sql", params={"model_name": cfg.model_name},
                        schema=schema)
            progress = cur.fetchone()
    out: dict[str, Any] = {"slot": name, "exists": slot is not None,
                           "dead_letters": int(dead[0]),
                           "last_dead_letter": dead[1].isoformat() if dead[1] else None}
    if progress is not None:
        out |= {"lag_seconds": progress[0],
                "last_commit_at": progress[1].isoformat() if progress[1] else None,
                "heartbeat_at": progress[2].isoformat(),
                "heartbeat_age_seconds": round(progress[3], 1),
                "embedded_total": int(progress[4]), "items_per_second": progress[5]}
    if slot is None:
        return out
    out |= {"confirmed_lsn": slot[1], "lag_bytes": slot[2], "worker_connected": slot[3]}
    limit = cfg.stream.stale_after_minutes * 60
    out["stale"] = not slot[3] and (progress is None or progress[3] > limit)
    if out["stale"]:
        since = ("never read by a worker" if progress is None else
                 f"not read for {progress[3] / 60:.0f} min")
        out["warning"] = (f"the stream slot {name} is {since} and keeps {slot[2]} bytes of "
                          "change log: new items are not embedded until `dropoutnet stream` "
                          "runs again; retire it with `dropoutnet stream --drop` if the worker "
                          "is gone for good")
    return out


def slot_warning(cfg: PipelineConfig, url: str | None = None) -> str | None:
    """What the daily run says before publishing when new items are not streaming in: the
    worker's slot is missing or stale (None when a worker keeps up)."""
    answer = status(cfg, url)
    if not answer["exists"]:
        return (f"no stream worker slot {answer['slot']}: items created after this version's "
                "pool snapshot are recallable only after the next daily run; run "
                "`dropoutnet stream` next to the model service to embed them within seconds")
    return answer.get("warning")


def _jsonable(a: np.ndarray) -> list:
    """A model input array as JSON (NaN, the missing number, as null)."""
    if a.dtype == object:
        return [str(v) for v in a]
    return [None if isinstance(v, float) and math.isnan(v) else v for v in a.tolist()]
