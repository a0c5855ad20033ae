"""Training input that streams (dropoutnet.training.source): a partition read in chunks equals the
same rows in memory, trains the same model, and its memory does not grow with the rows.
Real Postgres, real TensorFlow."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
import tempfile
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
from helpers import item_examples, pipeline_env, small_features

from dropoutnet.config import load_config
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.data import partitions
from dropoutnet.model import item_log_frequency
from dropoutnet.model.dropoutnet import checkpoint_variables, load_trained_model
from dropoutnet.model.features import RaggedIds, item_codes
from dropoutnet.steps.samples import build_samples
from dropoutnet.training.fit import train_model, train_samples
from dropoutnet.training.source import (
    ArraySource,
    Chunk,
    ChunkCache,
    PartitionSource,
    scan,
    shuffled_batches,
    sweep_stale_caches,
)

END = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def env(database_url, tmp_path_factory):
    """Tiny generated data and one bizdate's sample partition."""
    with pipeline_env(database_url, tmp_path_factory.mktemp("stream_input"), "sin", END,
                      dict(n_users=200, n_items=120, n_authors=15, days=6,
                           new_items_per_day=20, seed=5),
                      features=small_features(), cold_start_recall={"train_days": 4},
                      training={"epochs": 1, "batch_size": 128, "shuffle_buffer": 0},
                      model={"popularity_prior": 1.0}) as e:
        cfg = load_config(e["config"])
        build_samples(cfg, END, e["url"])
        with db.transaction(e["url"]) as cur:
            e["memory"] = partitions.load_partition(cur, cfg, "samples", END, shuffled=True)
            e["boundaries"] = partitions.load_boundaries(cur, cfg, END)
        e["cfg"] = cfg
        yield e


def _equal_to_memory(whole: Chunk, memory: dict, cfg) -> None:
    """``whole`` (a source's chunks, prepared for training) equals the rows in memory
    prepared by the same function: strings by their hashes, numbers as they are."""
    want = ArraySource(cfg.features, memory["features"], memory["labels"], memory["item_ids"],
                       memory["sample_dates"], model=cfg.model)
    np.testing.assert_array_equal(whole.labels, memory["labels"])
    assert whole.item_ids.dtype == np.int64
    np.testing.assert_array_equal(whole.item_ids, want.item_ids)
    np.testing.assert_array_equal(
        whole.sample_dates, np.asarray(memory["sample_dates"], "datetime64[D]").astype(np.int64))
    for f in cfg.features:
        got, expected = whole.features[f.name], want.features[f.name]
        if f.kind == "tags":
            np.testing.assert_array_equal(got.splits, expected.splits, err_msg=f.name)
            np.testing.assert_array_equal(got.values, expected.values, err_msg=f.name)
        else:
            np.testing.assert_array_equal(got, expected, err_msg=f.name)
        if f.kind == "vector":
            assert got.shape == (len(memory["labels"]), f.dim) and np.abs(got).sum() > 0


def test_streamed_chunks_equal_the_partition_in_memory(env):
    """A training partition is read a chunk at a time, each column of a chunk as one array
    (read_partition_chunk.sql): the same rows, order and values, missing ones included, as
    the rows read one by one."""
    cfg, memory = env["cfg"], env["memory"]
    source = PartitionSource(cfg, END, env["url"], chunk_rows=100)
    assert source.chunked
    chunks = list(source.chunks())
    n = len(memory["labels"])
    assert [len(c) for c in chunks] == [100] * (n // 100) + ([n % 100] if n % 100 else [])
    assert len(chunks) > 3
    # the comparison covers missing values of each kind (NULL in the table)
    features = memory["features"]
    assert any(np.isnan(features[f.name]).any() for f in cfg.features if f.kind == "numeric")
    assert any((features[f.name] == "").any() for f in cfg.features if f.kind == "tags")
    _equal_to_memory(Chunk.concat(chunks), memory, cfg)


def test_a_partition_without_the_read_key_is_read_row_by_row(env):
    """A partition with no shuffle_key (written before the key existed; here the held-out
    samples, which never have it) streams row by row through a server-side cursor, in the
    same order as the whole partition read at once."""
    cfg = env["cfg"]
    source = PartitionSource(cfg, END, env["url"], table="eval_samples", chunk_rows=100,
                             cache=False)
    assert not source.chunked
    with db.transaction(env["url"]) as cur:
        assert partitions.last_read_key(cur, cfg, "eval_samples", END) is None
        n = len(env["memory"]["labels"])
        assert partitions.last_read_key(cur, cfg, "samples", END) == n
        memory = partitions.load_partition(cur, cfg, "eval_samples", END, shuffled=True)
    _equal_to_memory(Chunk.concat(list(source.chunks())), memory, cfg)


def test_a_streamed_partition_trains_the_same_model_as_the_rows_in_memory(env, tmp_path):
    cfg, memory = env["cfg"], env["memory"]
    streamed = train_samples(cfg, PartitionSource(cfg, END, env["url"], chunk_rows=100),
                             env["boundaries"], tmp_path / "streamed", None)
    in_memory = train_model(cfg, memory["features"], memory["labels"], env["boundaries"],
                            tmp_path / "memory", None, memory["item_ids"],
                            sample_dates=memory["sample_dates"])
    for key in ("rows", "positives", "steps", "optimizer_iterations"):
        assert streamed[key] == in_memory[key], key
    assert streamed["popularity_prior"] == in_memory["popularity_prior"]
    a = checkpoint_variables(load_trained_model(tmp_path / "streamed"))
    b = checkpoint_variables(load_trained_model(tmp_path / "memory"))
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], tf.Variable):
            np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, err_msg=key)


def _equal_chunks(a: Chunk, b: Chunk) -> None:
    assert a.features.keys() == b.features.keys()
    for name in a.features:
        x, y = a.features[name], b.features[name]
        assert type(x) is type(y), name
        for part, other in ([(x.values, y.values), (x.splits, y.splits)]
                            if isinstance(x, RaggedIds) else [(x, y)]):
            assert part.dtype == other.dtype, name
            np.testing.assert_array_equal(part, other, err_msg=name)
    for name in ("labels", "item_ids", "sample_dates"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_later_passes_read_the_disk_cache_and_close_deletes_it(env, monkeypatch):
    cfg = env["cfg"]
    with PartitionSource(cfg, END, env["url"], chunk_rows=100, cache=True) as source:
        uncached = list(PartitionSource(cfg, END, env["url"], chunk_rows=100,
                                        cache=False).chunks())
        partial = source.chunks()
        next(partial)
        partial.close()  # a pass abandoned midway keeps nothing: the next one reads Postgres
        assert not source.cache.complete
        first = list(source.chunks())
        folder = source.cache.folder
        assert source.cache.complete and (folder.stat().st_mode & 0o777) == 0o700

        def no_postgres(*args, **kwargs):
            raise AssertionError("read Postgres again")

        monkeypatch.setattr(db, "stream_columns", no_postgres)
        monkeypatch.setattr(db, "binary_transaction", no_postgres)
        monkeypatch.setattr(db, "transaction", no_postgres)
        second = list(source.chunks())
        assert source.counts() == (len(env["memory"]["labels"]),
                                   int(np.sum(env["memory"]["labels"] > 0.5)))
        assert len(first) == len(second) == len(uncached) > 3
        for a, b, c in zip(first, second, uncached):
            _equal_chunks(a, b)
            _equal_chunks(a, c)
    assert not folder.exists() and not source.cache.complete


def test_a_killed_trainings_cache_folder_is_swept_by_the_next_one(tmp_path, monkeypatch):
    """SIGKILL runs no finalizer: the next cache sweeps the folders of dead processes."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f"dropoutnet-samples-20261130-pid{int(dead.stdout)}-k2x_9q"
    alive = tmp_path / f"dropoutnet-samples-20261129-pid{os.getpid()}-a7b_3c"
    other = tmp_path / "dropoutnet-notes"  # not a cache folder
    for folder in (stale, alive, other):
        folder.mkdir()
        (folder / "chunks.pickle").write_bytes(b"x")
    cache = ChunkCache("samples-20261201")
    chunk = Chunk({"x": np.arange(3.0)}, np.zeros(3, np.float32), None, None)
    assert len(list(cache.fill(iter([chunk])))) == 1 and cache.complete
    assert not stale.exists() and alive.exists() and other.exists()
    assert f"-pid{os.getpid()}-" in cache.folder.name
    cache.clear()
    assert sweep_stale_caches(tmp_path) == [] and alive.exists()


def test_the_samples_step_numbers_the_rows_in_the_read_order_and_indexes_it(env):
    """The partition's shuffle_key numbers its rows in the order of the hash of their key, so
    that reading by it (an index scan) gives the order of sorting by the hash."""
    cfg, url = env["cfg"], env["url"]
    schema = cfg.storage.schema_
    with db.transaction(url) as cur:
        keyed = partitions.read_query(cur, cfg, "samples", END, shuffled=True)
        assert "order by shuffle_key" in keyed
        sorted_by_hash = sql.render(
            "data/read_partition.sql", schema=schema, table="samples", label=cfg.label_name,
            features=cfg.features, shuffled=True, keyed=False)
        cur.execute(f'select shuffle_key from "{schema}".samples where dt = %s '
                    "order by md5(concat_ws('/', user_id, item_id, sample_date))", (END,))
        keys = [k for (k,) in cur.fetchall()]
        cur.execute('select indexdef from pg_indexes where schemaname = %s '
                    "and tablename = %s", (schema, db.partition_name("samples", END)))
        indexes = [d for (d,) in cur.fetchall()]
    assert keys == list(range(1, len(env["memory"]["labels"]) + 1))
    assert any("(shuffle_key)" in d for d in indexes), indexes
    by_key = Chunk.concat(list(PartitionSource(cfg, END, url, cache=False).chunks()))
    with db.transaction(url) as cur:
        hashed = db.fetch_columns(cur, sorted_by_hash, {"bizdate": END})
    np.testing.assert_array_equal(by_key.item_ids, item_codes(np.asarray(hashed["item_id"])))
    np.testing.assert_array_equal(by_key.labels, np.asarray(hashed[cfg.label_name], np.float32))


def _input_peak(chunks, batch_size: int, buffer_rows: int) -> int:
    """Peak Python/numpy memory of the input path over ``chunks``: the scan, then one
    shuffled pass."""
    tracemalloc.start()
    try:
        scan(chunks(), ["i_title_emb"])
        for _ in shuffled_batches(chunks(), batch_size, buffer_rows, np.random.default_rng(0)):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_flat_in_the_number_of_samples(env):
    """A partition larger than the shuffle buffer: reading it four times over takes no more
    memory than reading it once, and far less than holding it."""
    source = PartitionSource(env["cfg"], END, env["url"], chunk_rows=64)
    n = len(env["memory"]["labels"])
    once = _input_peak(source.chunks, 64, 256)
    four = _input_peak(lambda: itertools.chain.from_iterable(
        source.chunks() for _ in range(4)), 64, 256)
    tracemalloc.start()
    try:
        with db.transaction(env["url"]) as cur:
            partitions.load_partition(cur, env["cfg"], "samples", END)
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n > 4 * 256
    assert four < 1.3 * once, (once, four)
    assert once < held / 2, (once, held)


def test_shuffled_batches_cover_every_row_once_and_reshuffle_per_seed():
    n = 1000
    chunks = lambda: ArraySource([], {}, np.arange(n, dtype=np.float32), chunk_rows=64).chunks()  # noqa: E731
    ordered = [b.labels for b in shuffled_batches(chunks(), 100, 0, None)]
    np.testing.assert_array_equal(np.concatenate(ordered), np.arange(n))
    runs = [np.concatenate([b.labels for b in shuffled_batches(chunks(), 100, 256,
                                                               np.random.default_rng(s))])
            for s in (0, 0, 1)]
    for r in runs:
        np.testing.assert_array_equal(np.sort(r), np.arange(n))  # each row once
    np.testing.assert_array_equal(runs[0], runs[1])  # one seed, one order
    assert not np.array_equal(runs[0], runs[2])
    assert not np.array_equal(runs[0], np.arange(n))
    sizes = [len(b) for b in shuffled_batches(chunks(), 100, 256, np.random.default_rng(0))]
    assert sizes == [100] * 10


def test_scan_gives_each_items_first_row_positives_exposure_and_frequency():
    rng = np.random.default_rng(0)
    n = 700
    ids = rng.choice([f"i{k}" for k in range(40)], n)
    days = np.datetime64("2026-11-01") + rng.integers(0, 6, n)
    labels = (rng.random(n) < 0.3).astype(np.float32)
    marker = np.arange(n).astype(np.float32)  # which row each first row is
    chunks = [Chunk({"row": marker[s:s + 50]}, labels[s:s + 50], ids[s:s + 50],
                    days[s:s + 50].astype(np.int64)) for s in range(0, n, 50)]
    seen = scan(iter(chunks), ["row"], "row", sample_rows=100, seed=1)
    rows, positives, exposure = item_examples(ids, labels, days)
    order = np.argsort(seen.item_ids)
    np.testing.assert_array_equal(np.sort(seen.item_ids), np.unique(ids))
    np.testing.assert_array_equal(seen.item_first_rows["row"][order], marker[rows])
    np.testing.assert_array_equal(seen.item_positives[order], positives)
    np.testing.assert_array_equal(seen.exposure_days()[order], exposure)
    assert (seen.rows, seen.positives) == (n, int(labels.sum()))
    q = seen.item_log_frequency()
    np.testing.assert_allclose([q[i] for i in ids], item_log_frequency(ids), rtol=1e-6)
    sample = seen.row_sample
    assert len(sample) == 100 and len(set(sample.tolist())) == 100  # distinct rows
    assert sample.max() > 600  # rows late in the stream get in


def test_a_missing_partition_is_a_clear_error(env):
    with pytest.raises(MissingDataError, match="no partition for bizdate 2026-01-01.*samples"):
        PartitionSource(env["cfg"], dt.date(2026, 1, 1), env["url"])
