"""The embedding store: the user and item vector tables in pgvector, and their one writer.

``user_embeddings`` and ``item_embeddings`` are list-partitioned by model version.  A
version's vectors are written once, by :func:`write_candidate`: COPYed (binary: no float
formatting, exact float32; :func:`copy_binary`) into a staging table,
indexed (items: HNSW, inner product) and kept as the version's unattached *candidate*, with
the registry told which training run wrote it, all in the caller's transaction.  Publish
attaches the user and the item candidate together (:func:`version_tables` pairs them).  So a
rerun of the live version's bizdate changes nothing a reader sees until it is published, and
a reader never sees the user vectors of one run with the item vectors of another, or an
unindexed or half-loaded version.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any, Sequence

import numpy as np

from . import db, registry, sql
from .config import PipelineConfig
from .errors import MissingDataError
from .failpoints import failpoint

SIDES = ("user", "item")

# COPY's binary format: its signature, no flags, no header extension; the trailer
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)  # timestamptz's zero


def table(side: str) -> str:
    return f"{side}_embeddings"


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    """Create the embedding tables if absent; refuse tables of another vector size.

    A vector's size is fixed per table (the HNSW index needs it), and every version lives in
    the same two tables: a model of another size (``embedding_dim``, ``item_prior``, ``factor_prior``) needs
    tables of its own.
    """
    schema, dim = cfg.storage.schema_, cfg.vector_dim
    db.ensure_ddl(url, "ddl/embedding_tables.sql", schema=schema, dim=dim)
    with db.transaction(url) as cur:
        sql.execute(cur, "table_columns.sql", params={"schema": schema,
                                                      "table": "item_embeddings"})
        columns = dict(cur.fetchall())
    stored = columns["embedding"]
    if "attributes" not in columns:  # made before recall filters: add the column, once
        db.ensure_ddl(url, "ddl/item_attributes_column.sql", schema=schema)
    if stored != f"vector({dim})":
        parts = [f"model.embedding_dim {cfg.model.embedding_dim}"]
        if cfg.model.item_prior:
            parts.append("1 for model.item_prior")
        if dim > cfg.model.vector_dim:
            parts.append(f"{dim - cfg.model.vector_dim} for model.factor_prior")
        raise MissingDataError(
            f"the embedding tables of schema {schema!r} hold {stored} but this config's model "
            f"makes vector({dim}) ({' + '.join(parts)}): set "
            f"storage.schema to a new schema for this model, or drop {schema}.user_embeddings "
            f"and {schema}.item_embeddings (every stored version is lost) and rerun")


def write_candidate(cur, cfg: PipelineConfig, side: str, version: str, run_id: str,
                    columns: Sequence[str], rows: Sequence[tuple], vectors: np.ndarray) -> str:
    """Write ``version``'s vectors of one side as its candidate (the caller commits).

    ``rows`` hold the values of ``columns`` (after ``model_version``) per vector.
    """
    return write_candidate_chunks(cur, cfg, side, version, run_id, columns, [(rows, vectors)])


def write_candidate_chunks(cur, cfg: PipelineConfig, side: str, version: str, run_id: str,
                           columns: Sequence[str],
                           chunks: Iterable[tuple[Sequence[tuple], np.ndarray]]) -> str:
    """:func:`write_candidate` from ``(rows, vectors)`` chunks, COPYed as they come: one
    COPY, one chunk in memory at a time (the embedding steps embed a chunk of users or items
    while the previous one is sent)."""
    schema, parent = cfg.storage.schema_, table(side)
    stage = db.create_stage(cur, schema, parent, version)
    cur.copy_expert(sql.render("copy_embeddings.sql", schema=schema, stage=stage,
                               columns=["model_version", *columns, "embedding"]),
                    copy_reader(([(version, *r) for r in rows], vectors)
                                for rows, vectors in chunks), size=1 << 20)
    if side == "item":
        hnsw = cfg.retrieval.hnsw
        sql.execute(cur, "hnsw_index.sql", schema=schema, stage=stage, m=hnsw.m,
                    ef_construction=hnsw.ef_construction)
        sql.execute(cur, "item_filter_indexes.sql", schema=schema, stage=stage)
    failpoint(f"{parent}.before_commit")
    candidate = db.keep_candidate(cur, schema, parent, version, stage)
    registry.record_part(cur, cfg, version, parent, run_id)
    return candidate


class _Reader(io.RawIOBase):
    """A read-only file over an iterator of ``bytes`` (what ``copy_expert`` reads from)."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self.parts, self.pending = parts, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            part = next(self.parts, None)
            if part is None:
                return 0
            self.pending = memoryview(part)
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def copy_reader(chunks: Iterable[tuple[Sequence[Sequence[Any]], np.ndarray]]) -> io.RawIOBase:
    """One binary COPY's payload as a file (for ``copy_expert``), encoded a ``(rows, vectors)``
    chunk at a time as it is read: the chunks may come from a generator that embeds them."""
    def parts() -> Iterator[bytes]:
        yield _COPY_HEADER
        for rows, vectors in chunks:
            yield copy_binary(rows, vectors, framed=False)
        yield _COPY_TRAILER

    return _Reader(parts())


def copy_binary(rows: Sequence[Sequence[Any]], vectors: np.ndarray, *,
                framed: bool = True) -> bytes:
    """The ``COPY ... (format binary)`` payload of ``rows`` (text values, ``datetime`` for a
    ``timestamptz``, ``dict`` for a ``jsonb``; ``None`` is NULL) each followed by its
    pgvector ``vector`` (``framed=False``: the rows only, without COPY's header and trailer,
    to send several such parts in one COPY).

    A vector is sent as pgvector's own binary form (dim and an unused int16, then big-endian
    float32s): nothing is formatted as text, and the stored floats are exactly the model's."""
    vectors = np.ascontiguousarray(vectors, dtype=">f4")
    if len(rows) != len(vectors):
        raise ValueError(f"{len(rows)} rows and {len(vectors)} vectors: one vector per row")
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    vector_head = struct.pack("!ihh", 4 + 4 * dim, dim, 0)  # field length, dim, unused
    out = [_COPY_HEADER] if framed else []
    for values, vector in zip(rows, vectors):
        out.append(struct.pack("!h", len(values) + 1))
        for v in values:
            if v is None:
                out.append(_NULL)
            elif isinstance(v, dt.datetime):
                moment = v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
                out.append(struct.pack("!iq", 8, (moment - _PG_EPOCH) // dt.timedelta(
                    microseconds=1)))
            elif isinstance(v, dict):  # jsonb's binary form: version 1, then the JSON text
                data = b"\x01" + json.dumps(v, ensure_ascii=False,
                                             separators=(",", ":")).encode()
                out += [struct.pack("!i", len(data)), data]
            else:
                text = str(v).encode()
                out += [struct.pack("!i", len(text)), text]
        out += [vector_head, vector.tobytes()]
    if framed:
        out.append(_COPY_TRAILER)
    return b"".join(out)


def version_tables(cur, cfg: PipelineConfig, version: str) -> dict[str, str]:
    """The tables holding ``version``'s user and item embeddings, as one consistent pair.

    Both are unpublished candidates (the embedding tasks ran since the last publish) or both
    are attached partitions (published).  One of each would pair the user vectors of one run
    with the item vectors of another, so it is refused with the task to rerun.
    """
    schema = cfg.storage.schema_
    tables, candidates = {}, {}
    for side in SIDES:
        parent = table(side)
        found = db.version_table(cur, schema, parent, version)
        if found is None:
            raise MissingDataError(f"version {version} has no {side} embeddings: run the "
                                   f"{side}_embeddings task for that bizdate first")
        tables[side] = found
        candidates[side] = found == db.candidate_name(parent, version)
    if candidates["user"] != candidates["item"]:
        stale = "user" if candidates["item"] else "item"
        raise MissingDataError(
            f"version {version}'s {stale} embeddings are from the published run but its "
            f"{'item' if stale == 'user' else 'user'} embeddings were rerun: rerun the "
            f"{stale}_embeddings task for that bizdate too, so both come from the same model")
    return tables


def upsert_items(cur, cfg: PipelineConfig, version: str, item_ids: Sequence[str],
                 created_at: Sequence[Any], vectors: np.ndarray,
                 attributes: Sequence[dict[str, str] | None] | None = None) -> int:
    """Insert or replace items' vectors in ``version``'s attached item partition (the stream
    worker's writes; the caller commits).  Refused for a version that is not published.

    ``attributes`` are the items' filterable values (the ``attributes`` column of
    ``item_features.sql``), so an item embedded in real time is filterable like a daily one.
    """
    from psycopg2.extras import Json, execute_values

    schema = cfg.storage.schema_
    if not db.table_exists(cur, schema, db.partition_name(table("item"), version)):
        raise MissingDataError(f"version {version} has no published item partition: the "
                               "stream writes only into a published version")
    if attributes is None:
        attributes = [None] * len(item_ids)
    rows = [(version, i, c, "[" + ",".join(f"{x:.7g}" for x in v) + "]", Json(a or {}))
            for i, c, v, a in zip(item_ids, created_at, np.asarray(vectors, dtype=np.float32),
                                  attributes)]
    execute_values(cur, sql.render("upsert_item_vectors.sql", schema=schema), rows,
                   template="(%s, %s, %s, %s::vector, %s::jsonb)")
    return len(rows)
