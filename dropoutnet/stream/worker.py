"""The stream worker: new items embedded from the item tables' change log, within seconds.

One loop, one batch of whole transactions at a time (:class:`dropoutnet.stream.source.ChangeLog`):

1. the items the batch touches: inserted or updated rows of ``raw.items`` created within
   ``stream.window_hours``; the items of changed ``raw.item_text`` rows; the recent items of
   changed ``raw.authors`` rows (their features read the author's row);
2. their features, from ``item_features.sql`` by item id: the same definitions the daily
   item embeddings use, so a feature changed in the config changes both paths;
3. their vectors, from the model service, asking for the registry's **active version**
   explicitly (``/v1/models/<item model>/versions/<version>:predict``), never "the latest";
4. an upsert into that version's item partition (:func:`dropoutnet.vectors.upsert_items`),
   which recall and its HNSW index read at once; then, after the commit, the batch's position
   is confirmed to the slot.

A worker killed at any point reads the unconfirmed batch again and writes the same rows
(at-least-once delivery, idempotent upserts).  The model service or the database failing
makes the batch wait and retry with backoff (``stream.retry_max_seconds`` at most between
tries): the slot keeps the change log meanwhile, nothing is dropped.
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

from .. import db, feature_queries, inputs, registry, sql, vectors
from ..config import PipelineConfig
from . import pgoutput, source

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """The model service did not answer a predict request (retried)."""


class RejectedError(ValueError):
    """The model service refused the request (HTTP 4xx): retrying cannot help."""


def lsn_text(lsn: int) -> str:
    """A change-log position as PostgreSQL writes it (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass
class Stats:
    batches: int = 0
    changes: int = 0
    embedded: int = 0
    ignored: int = 0
    retries: int = 0
    dead_letters: int = 0
    last_lsn: int = 0
    last_embedded: list[str] = field(default_factory=list)


class Worker:
    """Embed the items of the change log into the active version (see the module doc)."""

    def __init__(self, cfg: PipelineConfig, url: str | None = None,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        self.cfg, self.url = cfg, url
        self.now = now or (lambda: dt.datetime.now(dt.timezone.utc))
        self.stats = Stats()
        self.roles: dict[tuple[str, str], str] = {}
        self.item_model = cfg.serving.item_model or f"{cfg.model_name}_item"

    # --- the loop --------------------------------------------------------------------------

    def run(self, max_seconds: float | None = None, stop: Callable[[], bool] | None = None
            ) -> Stats:
        """Consume until ``stop()`` says so or ``max_seconds`` passed (forever by default)."""
        made = source.ensure(self.cfg, self.url)
        db.ensure_ddl(self.url, "ddl/stream_tables.sql", schema=self.cfg.storage.schema_)
        log.info("stream worker on %s (publication and slot %s)", made["tables"],
                 made["slot"])
        with db.transaction(self.url) as cur:
            self.roles = source.raw_tables(cur, self.cfg)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        s = self.cfg.stream
        with source.ChangeLog(self.cfg, self.url) as changes:
            for batch in changes.batches(s.batch_size, s.batch_wait_ms / 1000):
                if batch.changes:
                    self._with_retries(lambda: self.process(batch.changes, batch.end_lsn))
                changes.confirm(batch.end_lsn)
                self.stats.last_lsn = batch.end_lsn or self.stats.last_lsn
                if (stop is not None and stop()) or (deadline is not None
                                                     and time.monotonic() > deadline):
                    break
        return self.stats

    def _with_retries(self, step: Callable[[], Any]) -> Any:
        wait = 0.5
        while True:
            try:
                return step()
            except (ServiceError, psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                self.stats.retries += 1
                log.warning("stream batch failed (%s); retrying in %.1f s, holding the slot's "
                            "position", exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, self.cfg.stream.retry_max_seconds)

    # --- one batch -------------------------------------------------------------------------

    def _dead_letter(self, item_id: str | None, lsn: int, reason: str,
                     change: dict[str, Any]) -> None:
        """Keep a change the worker cannot process, with why, and go on."""
        with db.transaction(self.url) as cur:
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
        now = self.now()
        window_start = now - dt.timedelta(hours=self.cfg.stream.window_hours)
        item_ids, author_ids = self._touched(changes, lsn)
        with db.transaction(self.url) as cur:
            active = registry.active(cur, self.cfg)
            if active is None:
                log.info("no active version yet: %d changes left to the daily run",
                         len(changes))
                return []
            if author_ids:
                sql.execute(cur, "stream/items_of_authors.sql",
                            params={"author_ids": sorted(author_ids),
                                    "created_from": window_start},
                            items=self.cfg.raw.items)
                item_ids |= {r[0] for r in cur.fetchall()}
            if not item_ids:
                return []
            columns = feature_queries.read_features(cur, self.cfg, "item", now.date(),
                                                    {"item_ids": sorted(item_ids)})
        keep = [k for k, c in enumerate(columns["created_at"])
                if c is not None and window_start <= c <= now + dt.timedelta(minutes=5)]
        self.stats.ignored += len(item_ids) - len(keep)
        if not keep:
            return []
        rows = {name: [values[k] for k in keep] for name, values in columns.items()}
        written = self._write(active.model_version, rows, lsn)
        self.stats.embedded += len(written)
        self.stats.last_embedded = written
        log.info("embedded %d items into version %s", len(written), active.model_version)
        return written

    def _write(self, version: str, rows: dict[str, list], lsn: int) -> list[str]:
        """Embed and upsert ``rows``; a batch the service (or the model's input check)
        refuses is split, and an item refused on its own becomes a dead letter."""
        try:
            embeddings = self.embed(version, rows)
        except (RejectedError, ValueError) as exc:
            if len(rows["item_id"]) == 1:
                self._dead_letter(rows["item_id"][0], lsn, str(exc)[:1000],
                                  {k: _plain(v[0]) for k, v in rows.items()})
                return []
            out = []
            for k in range(len(rows["item_id"])):
                out += self._write(version, {n: [v[k]] for n, v in rows.items()}, lsn)
            return out
        with db.transaction(self.url) as cur:
            vectors.upsert_items(cur, self.cfg, version, rows["item_id"], rows["created_at"],
                                 embeddings)
        return list(rows["item_id"])

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
            if 400 <= err.code < 500 and err.code not in (404, 408, 429):
                raise RejectedError(detail) from None  # 404: the version is not loaded yet
            raise ServiceError(detail) from None
        except (urllib.error.URLError, OSError) as err:
            raise ServiceError(f"{url}: {err}") from None
        out = np.asarray(answer["outputs"], dtype=np.float32)
        if out.shape != (len(rows["item_id"]), self.cfg.vector_dim):
            raise ServiceError(f"{url} answered shape {out.shape}, expected "
                               f"({len(rows['item_id'])}, {self.cfg.vector_dim})")
        return out


def _plain(value: Any) -> Any:
    """A feature value as JSON (vectors as lists, times as text)."""
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
    """The slot's position and lag, and the dead letters so far."""
    name = source.names(cfg)
    with db.transaction(url) as cur:
        sql.execute(cur, "stream/slot.sql", params={"slot": name})
        slot = cur.fetchone()
        dead = (0, None)
        if db.table_exists(cur, cfg.storage.schema_, "stream_dead_letters"):
            sql.execute(cur, "stream/status.sql", params={"model_name": cfg.model_name},
                        schema=cfg.storage.schema_)
            dead = cur.fetchone()
    if slot is None:
        return {"slot": name, "exists": False, "dead_letters": int(dead[0])}
    return {"slot": name, "exists": True, "confirmed_lsn": slot[1], "lag_bytes": slot[2],
            "worker_connected": slot[3], "dead_letters": int(dead[0]),
            "last_dead_letter": dead[1].isoformat() if dead[1] else None}


def _jsonable(a: np.ndarray) -> list:
    """A model input array as JSON (NaN, the missing number, as null)."""
    if a.dtype == object:
        return [str(v) for v in a]
    return [None if isinstance(v, float) and math.isnan(v) else v for v in a.tolist()]
