"""Training input that streams: sample chunks, a bounded shuffle, and one scan for the priors.

A day of a real catalogue is millions of samples, so training never holds the day's partition:

* a **source** yields the samples in chunks: :class:`PartitionSource` reads a partition a chunk
  at a time in the binary protocol, each column of a chunk as one array
  (:func:`dropoutnet.data.partitions.read_chunks`; row by row through a server-side cursor for a
  partition written before its read-order key, :func:`dropoutnet.core.db.stream_columns`),
  prepares each chunk for training (:meth:`Chunk.prepared`: string features hashed into their
  embedding rows, item ids into int64 codes, by the encoders' own functions), and keeps the
  prepared chunks of that first read in a temporary file (:class:`ChunkCache`,
  ``training.cache_samples``), which every later pass reads instead: one query, one
  conversion and one hashing per training, whatever the epochs; :class:`ArraySource` slices
  samples already in memory (the benchmarks, tuning, tests).  Both yield the same
  :class:`Chunk`, so the training code after them is one.  After the first read no column
  holds Python strings: the cache, the shuffle and the tensors move integers (string
  objects cost 6–9 ms of CPU per batch of 1,024 in the shuffle and the tensors alone, measured
  in ``docs/scale.md``);
* :func:`shuffled_batches` shuffles through a **bounded buffer** (``training.shuffle_buffer``
  rows) in numpy and cuts batches: the memory is the buffer's, whatever the day's size.
  Shuffling in numpy, a permutation of a whole buffer at a time, is about 4x faster on this
  machine than ``tf.data``'s per-element shuffle, which was the input path's bottleneck
  (12,000 rows/s against 50,000 on the demo's samples);
* :func:`scan` reads the source once before training for what needs the whole day: the row and
  positive counts, each item's first row (the popularity and factor priors' one example per
  item), positives, exposure and row count (logQ), and a bounded reservoir of the rows' user
  factors (the factor prior's spread).  Its memory grows with the items, not the samples.

A partition is read in a fixed pseudo-random order (``data/read_partition.sql`` with ``shuffled``),
so a buffer much smaller than the day still mixes days and users: the samples step numbers the
rows in that order once (``shuffle_key``, a hash of the row's key), writes them in it and
indexes it, so the read is an index scan in the table's physical order rather than a sort of
the whole day (an external sort of 600 MB at a million samples, 5 s of the server's time).
Every epoch passes the same rows in the same order, and the buffer permutes them differently
each epoch.  The same rows in memory in the same order, with the shuffle off, give the same
batches and the same model (a test holds that).
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dropoutnet.config import FeatureSpec, ModelConfig, PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.data import inputs, partitions

__all__ = ["ArraySource", "Chunk", "ChunkCache", "PartitionSource", "SampleSource", "Scan", "scan",
           "shuffled_batches"]

# rows a source yields at a time (a few MB of the demo's samples)
CHUNK_ROWS = 8192


@dataclass
class Chunk:
    """Consecutive sample rows: the features (model contract dtypes,
    :mod:`dropoutnet.data.inputs`, or training's prepared form, :meth:`prepared`), labels
    (float32), and, when the source has them, item ids (str, or int64 codes once prepared) and
    sample days."""

    features: dict[str, np.ndarray]
    labels: np.ndarray
    item_ids: np.ndarray | None = None
    sample_dates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray | slice) -> Chunk:
        """The chunk's rows at ``rows`` (indices or a slice), every column alike."""
        pick = (lambda a: None if a is None else a[rows])
        return Chunk({k: v[rows] for k, v in self.features.items()}, self.labels[rows],
                     pick(self.item_ids), pick(self.sample_dates))

    def prepared(self, specs: Sequence[FeatureSpec], model: ModelConfig) -> Chunk:
        """The chunk in training's form: string features hashed, item ids as int64 codes
        (:func:`dropoutnet.model.features.prepare_features`, ``item_codes``); what is
        prepared already stays as it is."""
        from dropoutnet.model.features import item_codes, prepare_features

        return Chunk(prepare_features(specs, model, self.features), self.labels,
                     None if self.item_ids is None else item_codes(self.item_ids),
                     self.sample_dates)

    @staticmethod
    def concat(chunks: Sequence[Chunk]) -> Chunk:
        """The chunks' rows as one chunk, in order (the first chunk's columns decide which)."""
        if len(chunks) == 1:
            return chunks[0]
        from dropoutnet.model.features import concat_columns

        first = chunks[0]
        cat = (lambda name: None if getattr(first, name) is None
               else np.concatenate([getattr(c, name) for c in chunks]))
        return Chunk({k: concat_columns([c.features[k] for c in chunks])
                      for k in first.features},
                     np.concatenate([c.labels for c in chunks]), cat("item_ids"),
                     cat("sample_dates"))


class SampleSource(Protocol):
    """Where training reads its samples: each :meth:`chunks` call yields them all again, in
    the same order; ``has_item_ids`` / ``has_sample_dates`` say whether chunks carry those;
    ``in_memory``: the samples are held already, so training shuffles them whole (the buffer
    only bounds the memory of a source that is read)."""

    has_item_ids: bool
    has_sample_dates: bool
    in_memory: bool

    def chunks(self) -> Iterator[Chunk]:
        """Every sample, in chunks, in the same order on every call (one call per epoch)."""

    def counts(self) -> tuple[int, int]:
        """The rows and the positives, without reading the rows if the source can."""


def _days(values: Any) -> np.ndarray:
    """Days since 1970-01-01 (int64) of dates: ``datetime.date`` objects (Postgres's), numpy
    datetimes or ISO strings."""
    if isinstance(values, list) and set(map(type, values)) == {dt.date}:
        # 30x faster than numpy's conversion of date objects, a tenth of a chunk's decoding
        return np.fromiter(map(dt.date.toordinal, values), np.int64, len(values)) - _EPOCH
    return np.asarray(values, dtype="datetime64[D]").astype(np.int64)


_EPOCH = dt.date(1970, 1, 1).toordinal()


class ArraySource:
    """Samples already in memory, yielded in chunks (in their order); prepared for training
    (:meth:`Chunk.prepared`) once, up front, when given the ``model`` config."""

    def __init__(self, specs: Sequence[FeatureSpec], features: Mapping[str, np.ndarray],
                 labels: np.ndarray, item_ids: np.ndarray | None = None,
                 sample_dates: np.ndarray | None = None, chunk_rows: int = CHUNK_ROWS,
                 model: ModelConfig | None = None) -> None:
        from dropoutnet.model.features import to_numpy_batch

        self.features = to_numpy_batch(specs, features)
        n = len(next(iter(self.features.values()))) if self.features else len(labels)
        self.labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        if len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} feature rows")
        self.item_ids = None if item_ids is None else np.asarray(item_ids).astype(str)
        if self.item_ids is not None and len(self.item_ids) != n:
            raise ValueError(f"{len(self.item_ids)} item ids for {n} feature rows")
        self.sample_dates = None if sample_dates is None else _days(sample_dates)
        if self.sample_dates is not None and len(self.sample_dates) != n:
            raise ValueError(f"{len(self.sample_dates)} sample dates for {n} feature rows")
        self.chunk_rows = chunk_rows
        if model is not None:  # hashed once, not in every epoch's batches
            whole = Chunk(self.features, self.labels, self.item_ids).prepared(specs, model)
            self.features, self.item_ids = whole.features, whole.item_ids

    has_item_ids = property(lambda self: self.item_ids is not None)
    has_sample_dates = property(lambda self: self.sample_dates is not None)
    in_memory = True

    def counts(self) -> tuple[int, int]:
        """The rows and the positives (label > 0.5) held."""
        return len(self.labels), int(np.sum(self.labels > 0.5))

    def chunks(self) -> Iterator[Chunk]:
        """The held samples in slices of ``chunk_rows`` rows, in their order."""
        whole = Chunk(self.features, self.labels, self.item_ids, self.sample_dates)
        for start in range(0, len(self.labels), self.chunk_rows):
            yield whole.take(slice(start, start + self.chunk_rows))


class PartitionSource:
    """One bizdate's partition of a sample table, streamed (each :meth:`chunks` call yields it
    again, in the same order).

    Its chunks are prepared for training (:meth:`Chunk.prepared`).  With ``cache``
    (``training.cache_samples`` unless told), the first complete read also writes each
    prepared chunk to a private temporary folder on local disk
    (:class:`ChunkCache`), and every later :meth:`chunks` call reads that file instead of
    Postgres: later epochs cost neither the query nor the conversion, and memory stays one
    chunk.  :meth:`close` (or leaving a ``with`` block) deletes the folder; so does the
    interpreter's exit or the source's garbage collection, whichever comes first.
    """

    has_item_ids = has_sample_dates = True
    in_memory = False

    def __init__(self, cfg: PipelineConfig, bizdate: dt.date, url: str | None = None,
                 table: str = "samples", chunk_rows: int = CHUNK_ROWS,
                 cache: bool | None = None) -> None:
        with db.transaction(url) as cur:
            if not partitions.partition_exists(cur, cfg, table, bizdate):
                raise MissingDataError(
                    f"{table} has no partition for bizdate {bizdate}: run the samples task for "
                    f"that bizdate first (`dropoutnet run --bizdate {bizdate} --tasks samples`)")
            # read a column of a chunk at a time when the partition has the key to cut chunks
            # by (far less Python work per sample), else row by row
            self.chunked = partitions.last_read_key(cur, cfg, table, bizdate) is not None
            self.query = (None if self.chunked else
                          partitions.read_query(cur, cfg, table, bizdate, shuffled=True))
        self.cfg, self.bizdate, self.url, self.chunk_rows = cfg, bizdate, url, chunk_rows
        self.table = table
        use_cache = cfg.training.cache_samples if cache is None else cache
        self.cache = ChunkCache(f"{table}-{bizdate:%Y%m%d}") if use_cache else None

    def __enter__(self) -> PartitionSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the chunk cache (a later :meth:`chunks` reads Postgres again)."""
        if self.cache is not None:
            self.cache.clear()

    def counts(self) -> tuple[int, int]:
        """The partition's rows and positives: from the complete cache, else one count query."""
        if self.cache is not None and self.cache.complete:
            return self.cache.rows, self.cache.positives
        with db.transaction(self.url) as cur:
            sql.execute(cur, "data/train_sample_counts.sql", params={"bizdate": self.bizdate},
                        schema=self.cfg.storage.schema_, table=self.table,
                        label=self.cfg.label_name)
            rows, positives = cur.fetchone()
        return int(rows), int(positives)

    def chunks(self) -> Iterator[Chunk]:
        """The partition in its fixed read order: from the cache once a pass has filled it,
        else from Postgres (filling the cache on the way, when there is one)."""
        if self.cache is None:
            yield from self._read()
        elif self.cache.complete:
            yield from self.cache.read()
        else:
            yield from self.cache.fill(self._read())

    def _read(self) -> Iterator[Chunk]:
        if self.chunked:
            read = partitions.read_chunks(self.url, self.cfg, self.table, self.bizdate,
                                           self.chunk_rows)
        else:  # written before the read-order key: row by row
            read = db.stream_columns(self.url, self.query, {"bizdate": self.bizdate},
                                     self.chunk_rows)
        for columns in read:  # to_inputs gives the model contract's arrays: no re-check
            yield Chunk(inputs.to_inputs(self.cfg.features, columns),
                        np.asarray(columns[self.cfg.label_name], dtype=np.float32),
                        np.asarray(columns["item_id"], dtype=object),
                        _days(columns["sample_date"])).prepared(self.cfg.features,
                                                                self.cfg.model)


class ChunkCache:
    """Chunks kept on local disk, in order: one file of pickled chunks in a private folder
    (``mkdtemp``, mode 0700, under ``TMPDIR``) that only this process writes and reads.

    :meth:`fill` passes chunks through while appending them; the cache is :attr:`complete`
    only once the whole stream has gone through (an abandoned pass leaves it empty, and the
    next pass fills it again).  :meth:`read` yields the chunks back one at a time.  The
    folder's name carries the process id, so a fill first sweeps the folders that killed
    trainings left (:func:`sweep_stale_caches`).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.folder: Path | None = None
        self.complete = False
        self.rows = self.positives = 0
        self._finalizer: weakref.finalize | None = None

    @property
    def path(self) -> Path | None:
        """The cache file, or None before the first fill (and after :meth:`clear`)."""
        return None if self.folder is None else self.folder / "chunks.pickle"

    def fill(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        """Yield ``chunks`` through while writing them to a new cache file; the cache becomes
        :attr:`complete` (with the rows and positives counted) only at the stream's end."""
        self.clear()
        sweep_stale_caches()
        folder = self.folder = Path(tempfile.mkdtemp(
            prefix=f"dropoutnet-{self.name}-pid{os.getpid()}-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, folder, True)
        rows = positives = 0
        with open(folder / "chunks.pickle", "wb") as out:
            for chunk in chunks:
                pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
                rows += len(chunk)
                positives += int(np.sum(chunk.labels > 0.5))
                yield chunk
        if self.folder == folder:  # not cleared (or refilled) while this pass was suspended
            self.complete, self.rows, self.positives = True, rows, positives

    def read(self) -> Iterator[Chunk]:
        """The cached chunks back, in the order they were filled, one in memory at a time."""
        with open(self.path, "rb") as src:
            while True:
                try:
                    chunk = pickle.load(src)  # our own file, written by fill() above
                except EOFError:
                    return
                yield chunk

    def clear(self) -> None:
        """Delete the cache folder and forget the counts; the next pass fills it again."""
        self.complete, self.rows, self.positives = False, 0, 0
        if self._finalizer is not None:
            self._finalizer()  # removes the folder, once
        self.folder = self._finalizer = None


def sweep_stale_caches(tmp: Path | None = None) -> list[Path]:
    """Delete the chunk-cache folders (under ``tmp``, default ``TMPDIR``) that this user's
    dead processes left: a training killed with SIGKILL runs no finalizer.  A folder's name
    carries its process id; a folder whose process still runs (or whose id was reused) is
    kept.  Returns the folders removed."""
    removed = []
    for folder in Path(tmp or tempfile.gettempdir()).glob("dropoutnet-*-pid*-*"):
        match = _CACHE_PID.search(folder.name)
        try:
            if not match or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(match.group(1)), 0)  # raises when no such process
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except OSError:  # another user's process, or the folder went meanwhile
            continue
    return removed


# the process id in a cache folder's name: dropoutnet-<name>-pid<pid>-<random>
_CACHE_PID = re.compile(r"-pid(\d+)-[^-]*$")


def shuffled_batches(chunks: Iterable[Chunk], batch_size: int, buffer_rows: int,
                     rng: np.random.Generator | None) -> Iterator[Chunk]:
    """Batches of ``batch_size`` rows (the last one smaller) from ``chunks``.

    With ``rng`` the rows pass through a buffer of at most about ``buffer_rows`` rows: once it
    is full it is permuted, the first half is cut into batches and the rest waits for the next
    chunks; at the end the remainder is permuted and emitted.  Without ``rng`` the rows keep
    their order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    limit = max(buffer_rows, batch_size) if rng is not None else batch_size
    pending: list[Chunk] = []
    held = 0
    for chunk in chunks:
        if not len(chunk):
            continue
        pending.append(chunk)
        held += len(chunk)
        if held < limit:
            continue
        buffer = Chunk.concat(pending)
        order = rng.permutation(held) if rng is not None else np.arange(held)
        emit = (held - held // 2 if rng is not None else held) // batch_size * batch_size
        for start in range(0, emit, batch_size):
            yield buffer.take(order[start:start + batch_size])
        rest = order[emit:]
        pending, held = ([buffer.take(rest)] if len(rest) else []), len(rest)
    if held:
        buffer = Chunk.concat(pending)
        order = rng.permutation(held) if rng is not None else np.arange(held)
        for start in range(0, held, batch_size):
            yield buffer.take(order[start:start + batch_size])


@dataclass
class Scan:
    """What training needs from the whole day, read in one pass (:func:`scan`)."""

    rows: int = 0
    positives: int = 0
    # per distinct item, in order of first appearance (the chunks' ids: strings, or codes)
    item_ids: list[str | int] = field(default_factory=list)
    item_positives: np.ndarray = field(default_factory=lambda: np.zeros(0))
    item_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    item_first_day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_day: int | None = None
    # each item's first row (earliest day, then first read), the features asked for
    item_first_rows: dict[str, np.ndarray] = field(default_factory=dict)
    # a uniform sample of the rows' values of one feature (the user factors)
    row_sample: np.ndarray | None = None

    def exposure_days(self) -> np.ndarray:
        """Days from each item's first sample day to the day's last, inclusive."""
        return (self.last_day - self.item_first_day + 1).astype(np.float64)

    def item_log_frequency(self) -> dict[str | int, float]:
        """``log q`` per item: its share of the rows (the logQ correction's sampling rate)."""
        return dict(zip(self.item_ids, np.log(self.item_rows / max(self.rows, 1)).tolist()))


def scan(chunks: Iterable[Chunk], first_row_features: Sequence[str] = (),
         sample_feature: str | None = None, sample_rows: int = 100_000,
         seed: int = 0) -> Scan:
    """One pass over ``chunks``: counts, per-item statistics and first rows (when the chunks
    have item ids; first rows and exposure also need sample days), and a reservoir sample of
    ``sample_rows`` rows' ``sample_feature`` (Vitter's algorithm R)."""
    out = Scan()
    index: dict[str, int] = {}
    positives: list[float] = []
    counts: list[int] = []
    first_day: list[int] = []
    where: list[tuple[int, int]] = []  # item -> (kept chunk, row in it) of its first row
    kept: list[dict[str, np.ndarray]] = []
    reservoir: np.ndarray | None = None
    rng = np.random.default_rng(seed)
    for chunk in chunks:
        n = len(chunk)
        if not n:
            continue
        if sample_feature is not None:
            values = chunk.features[sample_feature]
            if reservoir is None:
                reservoir = np.zeros((0,) + values.shape[1:], values.dtype)
            room = sample_rows - len(reservoir)
            if room > 0:
                reservoir = np.concatenate([reservoir, values[:room]])
            seen = out.rows + np.arange(max(room, 0), n)
            slots = rng.integers(0, seen + 1) if len(seen) else np.zeros(0, np.int64)
            hit = slots < sample_rows
            reservoir[slots[hit]] = values[max(room, 0):][hit]
        out.rows += n
        out.positives += int(np.sum(chunk.labels > 0.5))
        if chunk.item_ids is None:
            continue
        days = chunk.sample_dates if chunk.sample_dates is not None else np.zeros(n, np.int64)
        if chunk.sample_dates is not None:
            out.last_day = int(days.max()) if out.last_day is None else max(out.last_day,
                                                                               int(days.max()))
        # the chunk's rows by item, then day, then position: each item's first row first
        order = np.lexsort((np.arange(n), days, chunk.item_ids))
        ids, first, inverse = np.unique(chunk.item_ids[order], return_index=True,
                                        return_inverse=True)
        item_pos = np.bincount(inverse, weights=chunk.labels[order] > 0.5, minlength=len(ids))
        item_n = np.bincount(inverse, minlength=len(ids))
        rows = order[first]
        replace: list[int] = []
        for j, item in enumerate(ids.tolist()):
            k = index.get(item)
            if k is None:
                index[item] = len(out.item_ids)
                out.item_ids.append(item)
                positives.append(float(item_pos[j]))
                counts.append(int(item_n[j]))
                first_day.append(int(days[rows[j]]))
                where.append((len(kept), len(replace)))
                replace.append(rows[j])
                continue
            positives[k] += float(item_pos[j])
            counts[k] += int(item_n[j])
            if days[rows[j]] < first_day[k]:  # only when the rows are not in day order
                first_day[k] = int(days[rows[j]])
                where[k] = (len(kept), len(replace))
                replace.append(rows[j])
        if first_row_features:
            picked = np.asarray(replace, dtype=np.int64)
            kept.append({name: chunk.features[name][picked] for name in first_row_features})
    out.item_positives = np.asarray(positives, dtype=np.float64)
    out.item_rows = np.asarray(counts, dtype=np.int64)
    out.item_first_day = np.asarray(first_day, dtype=np.int64)
    if first_row_features and where:
        from dropoutnet.model.features import concat_columns

        # each item's first row: its place among the kept rows of every chunk
        starts = np.cumsum([0] + [len(k[first_row_features[0]]) for k in kept[:-1]])
        at = np.asarray([starts[c] + r for c, r in where], dtype=np.int64)
        for name in first_row_features:
            out.item_first_rows[name] = concat_columns([k[name] for k in kept])[at]
    out.row_sample = reservoir
    return out
