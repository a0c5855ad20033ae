"""The embedding store: the user and item vector tables in pgvector, and their one writer.

``user_embeddings`` and ``item_embeddings`` are list-partitioned by model version.  A
version's vectors are written once, by :func:`write_candidate`: COPYed (binary: no float
formatting; :func:`copy_binary`) into a staging table, indexed after the load (items: HNSW,
inner product, with ``retrieval.hnsw``'s settings and ``maintenance_work_mem``) and kept as
the version's unattached *candidate*, with the registry told which training run wrote it,
all in the caller's transaction.  Publish attaches the user and the item candidate together
(:func:`version_tables` pairs them).  So a rerun of the live version's bizdate changes
nothing a reader sees until it is published, and a reader never sees the user vectors of one
run with the item vectors of another, or an unindexed or half-loaded version.

The tables store ``storage.vector_type``: ``vector``, the model's float32s exactly, or
``halfvec``, each rounded to the nearest float16 here, in numpy (the COPY sends float16s,
the stream worker's upsert their exact text), so every path stores the same values.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import struct
import time
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any, Sequence

import numpy as np

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.core.failpoints import failpoint

log = logging.getLogger(__name__)

SIDES = ("user", "item")
# the numpy type each stored vector type is sent as (big-endian, COPY's byte order)
_WIRE_DTYPES = {"vector": np.dtype(">f4"), "halfvec": np.dtype(">f2")}
HALFVEC_MAX = float(np.finfo(np.float16).max)  # 65504

# COPY's binary format: its signature, no flags, no header extension; the trailer
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)  # timestamptz's zero
_BLOCK_ROWS = 1 << 16  # rows encoded at once: bounds the block's arrays (~12 MB at 33 floats)
_NAIVE_EPOCH = _PG_EPOCH.replace(tzinfo=None)  # a naive datetime is taken as UTC
_MICROSECOND = dt.timedelta(microseconds=1)


def table(side: str) -> str:
    """The embedding table of a side: ``user_embeddings`` or ``item_embeddings``."""
    return f"{side}_embeddings"


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    """Create the embedding tables if absent; refuse tables of another vector type or size.

    A vector's type and size are fixed per table (the HNSW index needs them), and every
    version lives in the same two tables: a model of another size (``embedding_dim``,
    ``item_prior``, ``factor_prior``) or another ``storage.vector_type`` needs tables of its
    own.  A mismatch raises :class:`MissingDataError` with the fix before anything is
    written or altered: stored versions stay as they are.
    """
    schema, dim = cfg.storage.schema_, cfg.vector_dim
    vector_type = cfg.storage.vector_type
    db.ensure_ddl(url, "recall/ddl/embedding_tables.sql", schema=schema, dim=dim,
                  vector_type=vector_type)
    with db.transaction(url) as cur:
        columns = check_tables(cur, cfg)
    if "attributes" not in columns["item"]:  # made before recall filters: add it, once
        db.ensure_ddl(url, "recall/ddl/item_attributes_column.sql", schema=schema)


def check_tables(cur, cfg: PipelineConfig, size: bool = True) -> dict[str, dict[str, str]]:
    """Refuse embedding tables whose vector type (or, with ``size``, vector size) is not what
    ``cfg`` writes: :class:`MissingDataError` naming the setting and the fix; read only.

    Writers check both.  Readers of stored vectors (recall, its API, evaluate) pass
    ``size=False``: they read the vectors as stored, so a model size changed in the config
    does not concern them, but their queries cast to ``storage.vector_type``, and over a
    table of the other type an inner product would not use the HNSW index (an exact scan of
    every item, each query).  Tables not made yet pass.  Returns each side's
    ``{column: type}`` (empty when absent).
    """
    columns = {}
    for side in SIDES:
        sql.execute(cur, "core/table_columns.sql", params={"schema": cfg.storage.schema_,
                                                      "table": table(side)})
        columns[side] = dict(cur.fetchall())
        if "embedding" in columns[side]:
            _check_stored_type(cfg, columns[side]["embedding"], size)
    return columns


def _check_stored_type(cfg: PipelineConfig, stored: str, size: bool = True) -> None:
    """Refuse an embedding table whose column type (``format_type``'s ``vector(33)``) is not
    what ``cfg`` writes (only its type when not ``size``), naming the setting that differs
    and the fix."""
    schema, dim = cfg.storage.schema_, cfg.vector_dim
    vector_type = cfg.storage.vector_type
    wanted = sql.vector_sql_type(vector_type, dim)
    if stored == wanted:
        return
    match = re.fullmatch(r"(\w+)\((\d+)\)", stored)
    stored_type, stored_dim = (match.group(1), int(match.group(2))) if match else (stored, None)
    if not size and stored_type == vector_type:
        return
    drop = (f"drop {schema}.user_embeddings and {schema}.item_embeddings (every stored "
            f"version is lost) and rerun")
    if stored_type in sql.VECTOR_TYPES and (stored_dim == dim or not size):
        raise MissingDataError(
            f"the embedding tables of schema {schema!r} hold {stored} but this config's "
            f"storage.vector_type is {vector_type!r} ({wanted}): set storage.vector_type: "
            f"{stored_type} to keep using the stored versions, or set storage.schema to a "
            f"new schema for {vector_type} storage (the next run embeds into it), or {drop}")
    parts = [f"model.embedding_dim {cfg.model.embedding_dim}"]
    if cfg.model.item_prior:
        parts.append("1 for model.item_prior")
    if dim > cfg.model.vector_dim:
        parts.append(f"{dim - cfg.model.vector_dim} for model.factor_prior")
    raise MissingDataError(
        f"the embedding tables of schema {schema!r} hold {stored} but this config's model "
        f"makes {wanted} ({' + '.join(parts)}; storage.vector_type {vector_type}): set "
        f"storage.schema to a new schema for this model, or {drop}")


def write_candidate(cur, cfg: PipelineConfig, side: str, version: str, run_id: str,
                    columns: Sequence[str], rows: Sequence[tuple], vectors: np.ndarray) -> str:
    """Write ``version``'s vectors of one side as its candidate (the caller commits).

    ``rows`` hold the values of ``columns`` (after ``model_version``) per vector.
    """
    return write_candidate_chunks(cur, cfg, side, version, run_id, columns,
                                  [(_by_column(rows), vectors)])


def write_candidate_chunks(cur, cfg: PipelineConfig, side: str, version: str, run_id: str,
                           columns: Sequence[str],
                           chunks: Iterable[tuple[Sequence[Sequence[Any]], np.ndarray]]) -> str:
    """:func:`write_candidate` from ``(values, vectors)`` chunks, ``values`` holding one
    sequence per column of ``columns`` (as the embedding steps read them), COPYed as they
    come: one COPY, one chunk in memory at a time (the embedding steps embed a chunk of users
    or items while the previous one is sent)."""
    schema, parent = cfg.storage.schema_, table(side)
    stage = db.create_stage(cur, schema, parent, version)
    versioned = ((([version] * len(vectors), *values), vectors) for values, vectors in chunks)
    cur.copy_expert(sql.render("recall/copy_embeddings.sql", schema=schema, stage=stage,
                               columns=["model_version", *columns, "embedding"]),
                    column_reader(versioned, vector_type=cfg.storage.vector_type),
                    size=1 << 20)
    loaded = cur.rowcount
    if side == "item":
        build_index(cur, cfg, stage, loaded, version)
        sql.execute(cur, "recall/item_filter_indexes.sql", schema=schema, stage=stage)
    failpoint(f"{parent}.before_commit")
    candidate = db.keep_candidate(cur, schema, parent, version, stage)
    registry.record_part(cur, cfg, version, parent, run_id)
    return candidate


def prewarm(cfg: PipelineConfig, version: str, url: str | None = None) -> int | None:
    """Read ``version``'s user and item partitions and their indexes into shared buffers
    (``recall/prewarm_version.sql``) and return the blocks read; None, with a log line,
    where the ``pg_prewarm`` extension is not installed (the embedded server has it; on
    another server an administrator runs ``create extension pg_prewarm``).

    A 1M-item HNSW index is about 520 MB: a recall walks thousands of its pages, and read
    from disk or the kernel's cache they cost more than the walk itself."""
    schema = cfg.storage.schema_
    with db.transaction(url) as cur:
        sql.execute(cur, "recall/prewarm_available.sql")
        if not cur.fetchone()[0]:
            log.info("pg_prewarm is not installed: version %s's index is read into memory by "
                     "its first recalls (create extension pg_prewarm to warm it at publish)",
                     version)
            return None
        started = time.monotonic()
        sql.execute(cur, "recall/prewarm_version.sql", params={
            "user_partition": sql.qualified(schema, db.partition_name(table("user"), version)),
            "item_partition": sql.qualified(schema, db.partition_name(table("item"), version))})
        blocks = int(cur.fetchone()[0])
    log.info("warmed version %s: %d blocks (%.0f MB) in shared buffers in %.1f s", version,
             blocks, blocks * 8 / 1024, time.monotonic() - started)
    return blocks


def build_index(cur, cfg: PipelineConfig, stage: str, items: int, version: str) -> float:
    """Build the HNSW index of a loaded item stage table (``recall/hnsw_index.sql``: the configured
    ``m``, ``ef_construction`` and, for this transaction, ``maintenance_work_mem``); return
    its seconds.

    Built after the load, so the graph is made once from every vector rather than grown by
    inserts.  The time and the item count go to the log (the Airflow task log), and so does
    pgvector's notice when the graph outgrew ``maintenance_work_mem`` (the build then goes on
    on disk, several times slower), as a warning naming the setting to raise."""
    hnsw, storage = cfg.retrieval.hnsw, cfg.storage
    log.info("building the HNSW index of version %s: %s items, m %d, ef_construction %d, "
             "maintenance_work_mem %s, storage %s", version, f"{items:,}", hnsw.m,
             hnsw.ef_construction, hnsw.maintenance_work_mem, storage.vector_type)
    conn = cur.connection
    # the build's own notices, apart from the connection's earlier ones (psycopg2 appends
    # them to conn.notices, which any object with append may replace); restored after
    earlier, conn.notices = conn.notices, []
    started = time.monotonic()
    try:
        sql.execute(cur, "recall/hnsw_index.sql",
                    params={"maintenance_work_mem": hnsw.maintenance_work_mem},
                    schema=storage.schema_, stage=stage, m=hnsw.m,
                    ef_construction=hnsw.ef_construction, vector_type=storage.vector_type)
    finally:
        notices, conn.notices = conn.notices, earlier
        earlier.extend(notices)
    seconds = time.monotonic() - started
    for notice in notices:
        if "maintenance_work_mem" in notice:
            log.warning("the HNSW graph of version %s outgrew maintenance_work_mem %s and was "
                        "finished on disk (slower): raise retrieval.hnsw.maintenance_work_mem. "
                        "PostgreSQL said: %s", version, hnsw.maintenance_work_mem,
                        " ".join(notice.split()))
    log.info("built the HNSW index of version %s: %s items in %.1f s (%.0f items/s)", version,
             f"{items:,}", seconds, items / seconds if seconds > 0 else 0.0)
    return seconds


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


def copy_reader(chunks: Iterable[tuple[Sequence[Sequence[Any]], np.ndarray]], *,
                vector_type: str = "vector") -> io.RawIOBase:
    """One binary COPY's payload as a file (for ``copy_expert``), encoded a ``(rows, vectors)``
    chunk at a time as it is read: the chunks may come from a generator that embeds them."""
    return column_reader(((_by_column(rows), vectors) for rows, vectors in chunks),
                         vector_type=vector_type)


def column_reader(chunks: Iterable[tuple[Sequence[Sequence[Any]], np.ndarray]], *,
                  vector_type: str = "vector") -> io.RawIOBase:
    """:func:`copy_reader` of ``(columns, vectors)`` chunks: each chunk's values one sequence
    per column (:func:`copy_columns`), as a query's results are read, not one tuple per row."""
    def parts() -> Iterator[bytes]:
        yield _COPY_HEADER
        for columns, vectors in chunks:
            yield copy_columns(columns, vectors, framed=False, vector_type=vector_type)
        yield _COPY_TRAILER

    return _Reader(parts())


def stored_values(vectors: np.ndarray, vector_type: str) -> np.ndarray:
    """``vectors`` as the embedding tables store them, in COPY's byte order: float32s as they
    are (``vector``), or each rounded to the nearest float16 (``halfvec``, numpy's rounding,
    to nearest even).  A finite value beyond float16's range (65504) is refused: pgvector
    would refuse the infinity it rounds to."""
    return np.ascontiguousarray(_rounded(vectors, vector_type),
                                dtype=_WIRE_DTYPES[vector_type])


def _rounded(vectors: np.ndarray, vector_type: str) -> np.ndarray:
    """:func:`stored_values` in this machine's byte order (what :func:`copy_binary` puts
    into its records, swapping the bytes as it copies them)."""
    if vector_type not in _WIRE_DTYPES:
        raise ValueError(f"not a stored vector type: {vector_type!r} "
                         f"(one of {sorted(_WIRE_DTYPES)})")
    values = np.asarray(vectors, dtype=np.float32)
    if vector_type == "halfvec":
        with np.errstate(over="ignore"):
            half = values.astype(np.float16)
        overflow = np.isinf(half) & np.isfinite(values)
        if overflow.any():
            where = tuple(int(i) for i in np.argwhere(overflow)[0])
            raise ValueError(
                f"a vector value {float(values[where])!r} (index {list(where)}) is beyond "
                f"halfvec's range (+-{HALFVEC_MAX:g}): storage.vector_type halfvec cannot "
                f"store this model's vectors; use storage.vector_type: vector")
        values = half
    return values


def copy_binary(rows: Sequence[Sequence[Any]], vectors: np.ndarray, *,
                framed: bool = True, vector_type: str = "vector") -> bytes:
    """The ``COPY ... (format binary)`` payload of ``rows`` (text values, ``datetime`` for a
    ``timestamptz``, ``dict`` for a ``jsonb``; ``None`` is NULL) each followed by its
    pgvector ``vector_type`` value (``framed=False``: the rows only, without COPY's header
    and trailer, to send several such parts in one COPY).

    A vector is sent in pgvector's own binary form: an int16 dim and an unused int16, then
    the values big-endian, float32 for ``vector``, float16 for ``halfvec``
    (:func:`stored_values`).  Nothing is formatted as text: the stored floats are exactly
    the model's, or exactly their float16 roundings.

    Encoded a column at a time in numpy (:func:`copy_columns`), not a row at a time: only
    the values themselves (a text's UTF-8, a time's microseconds, a dict's JSON) are made
    one by one in Python."""
    if len(rows) != len(vectors):
        raise ValueError(f"{len(rows)} rows and {len(vectors)} vectors: one vector per row")
    return copy_columns(_by_column(rows), vectors, framed=framed, vector_type=vector_type)


def _by_column(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """``rows`` as one list of values per column; refuses rows of unequal widths."""
    widths = set(map(len, rows))
    if len(widths) > 1:
        raise ValueError(f"rows of {sorted(widths)} values: every row needs the same columns")
    return [list(map(itemgetter(k), rows)) for k in range(widths.pop() if widths else 0)]


def copy_columns(columns: Sequence[Sequence[Any]], vectors: np.ndarray, *,
                 framed: bool = True, vector_type: str = "vector") -> bytes:
    """:func:`copy_binary` of values given one sequence per column (each as long as
    ``vectors``): the embedding steps' chunks come so from the query, and are encoded
    without being made into rows and back."""
    vectors = _rounded(vectors, vector_type)
    n = len(vectors)
    lengths = sorted({len(c) for c in columns})
    if lengths and lengths != [n]:
        raise ValueError(f"columns of {lengths} values and {n} vectors: one vector per row")
    out: list = [_COPY_HEADER] if framed else []
    if n:
        if vectors.ndim != 2:
            raise ValueError(f"vectors of shape {vectors.shape}: one row of values per vector")
        for start in range(0, n, _BLOCK_ROWS):
            stop = start + _BLOCK_ROWS
            out.append(_encode_block([c[start:stop] for c in columns], vectors[start:stop],
                                     _WIRE_DTYPES[vector_type], min(stop, n) - start))
    if framed:
        out.append(_COPY_TRAILER)
    return b"".join(out)  # the blocks' arrays as they are: one copy, into the bytes


def _encode_block(columns: list[Sequence[Any]], vectors: np.ndarray, wire: np.dtype,
                  rows: int) -> np.ndarray:
    """COPY's binary rows of ``columns`` (one sequence of ``rows`` values each) and
    ``vectors`` (sent as ``wire`` values), built as one numpy record per row: the records'
    bytes, as an array of ``uint8``.

    A record holds, big-endian, the field count (int16), then per column its length (int32,
    -1 for NULL) and its value, padded to the column's widest, then the vector's length,
    dim, unused int16 and values.  When a column's values differ in width (texts of several
    lengths, NULLs) the padding is cut out with a byte mask."""
    dim = vectors.shape[1]
    fields: list[tuple] = [("count", ">i2")]
    values: dict[str, Any] = {"count": len(columns) + 1}
    sizes = {}  # column field -> its values' byte sizes, where some are below the width
    for k, column in enumerate(columns):
        lengths, data = _encode_column(column, rows)
        fields += [(f"length{k}", ">i4"), (f"value{k}", data.dtype)]
        values.update({f"length{k}": lengths, f"value{k}": data})
        size = np.maximum(lengths, 0)
        if (size != data.dtype.itemsize).any():
            sizes[f"value{k}"] = size
    fields += [("vector_length", ">i4"), ("dim", ">i2"), ("unused", ">i2"),
               ("vector", wire, (dim,))]
    values.update(vector_length=4 + wire.itemsize * dim, dim=dim, unused=0, vector=vectors)
    records = np.empty(rows, dtype=np.dtype(fields))
    for name, value in values.items():
        records[name] = value
    if not sizes:
        return records.view(np.uint8)
    keep = np.ones((rows, records.dtype.itemsize), dtype=bool)
    for name, size in sizes.items():
        field, offset = records.dtype.fields[name][:2]
        keep[:, offset:offset + field.itemsize] = np.arange(field.itemsize) < size[:, None]
    return records.view(np.uint8).reshape(rows, -1)[keep]


def _encode_column(column: Sequence[Any], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """One column's field lengths (-1 for NULL) and values (``S<widest>`` bytes, or ``>i8``
    microseconds for a column of times)."""
    kinds = set(map(type, column))
    if kinds == {str}:  # the usual text column (ids): UTF-8 without a per-value type test
        encoded = list(map(str.encode, column))
        lengths = np.fromiter(map(len, encoded), np.int32, rows)
    elif (present := kinds - {type(None)}) and all(issubclass(k, dt.datetime)
                                                   for k in present):
        if present != kinds:  # NULLs among the times
            nulls = np.fromiter((v is None for v in column), bool, rows)
            micros = np.zeros(rows, dtype=">i8")
            micros[~nulls] = _micros([v for v in column if v is not None])
            return np.where(nulls, -1, 8).astype(np.int32), micros
        return np.full(rows, 8, np.int32), _micros(column).astype(">i8")
    else:  # anything else, a value at a time
        encoded = [_field_bytes(v) for v in column]
        lengths = np.fromiter((-1 if b is None else len(b) for b in encoded), np.int32, rows)
        encoded = [b"" if b is None else b for b in encoded]
    width = max(int(lengths.max()), 1)  # numpy has no zero-width bytes
    return lengths, np.array(encoded, dtype=f"S{width}")


def _micros(moments: Sequence[dt.datetime]) -> np.ndarray:
    """``timestamptz``'s binary values: microseconds since 2000-01-01 UTC (naive: UTC)."""
    return np.array([(m - (_PG_EPOCH if m.tzinfo else _NAIVE_EPOCH)) // _MICROSECOND
                     for m in moments], dtype=np.int64)


def _field_bytes(v: Any) -> bytes | None:
    """One value's binary COPY field (without its length); ``None`` for NULL."""
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return _micros([v]).astype(">i8").tobytes()
    if isinstance(v, dict):  # jsonb's binary form: version 1, then the JSON text
        return b"\x01" + json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode()
    return str(v).encode()


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
    ``data/item_features.sql``), so an item embedded in real time is filterable like a daily one.
    """
    from psycopg2.extras import Json, execute_values

    schema = cfg.storage.schema_
    if not db.table_exists(cur, schema, db.partition_name(table("item"), version)):
        raise MissingDataError(f"version {version} has no published item partition: the "
                               "stream writes only into a published version")
    if attributes is None:
        attributes = [None] * len(item_ids)
    vector_type = cfg.storage.vector_type
    # the stored values (float16 roundings for halfvec) as the shortest text that reads back
    # as the same float32 (numpy's repr), which a float16 is exactly: Postgres stores what
    # the daily COPY would, not a second rounding
    stored = stored_values(vectors, vector_type).astype(np.float32)
    rows = [(version, i, c, "[" + ",".join(map(str, v)) + "]", Json(a or {}))
            for i, c, v, a in zip(item_ids, created_at, stored, attributes)]
    execute_values(cur, sql.render("recall/upsert_item_vectors.sql", schema=schema), rows,
                   template=f"(%s, %s, %s, %s::{sql.vector_sql_type(vector_type)}, %s::jsonb)")
    return len(rows)
