"""The embedding store's writer: vectors go to Postgres in COPY's binary format, exactly
(``vector``: the model's float32s; ``halfvec``: their float16 roundings)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import logging
import sys
import uuid
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from helpers import make_config

from dropoutnet import registry
from dropoutnet.core import db
from dropoutnet.core.errors import MissingDataError
from dropoutnet.recall import vectors
from dropoutnet.recall.vectors import copy_binary, copy_columns, copy_reader


def test_binary_copy_stores_the_models_floats_ids_times_and_nulls_exactly(database_url):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 5)).astype(np.float32)
    vectors[0, 0] = np.float32(1e-38)  # tiny and odd values survive as they are
    vectors[1] = np.float32(1 / 3)
    utc = dt.timezone.utc
    rows = [("v1", "item-α", dt.datetime(2026, 11, 30, 23, 59, 59, 123456, tzinfo=utc)),
            ("v1", "i2", None),
            ("v1", "i3", dt.datetime(1999, 12, 31, 12, 0, tzinfo=dt.timezone(dt.timedelta(
                hours=-5)))),
            ("v1", "i4", dt.datetime(2026, 1, 1))]  # naive: taken as UTC
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("create temp table t (model_version text, item_id text, "
                    "created_at timestamptz, embedding vector(5))")
        cur.copy_expert("copy t (model_version, item_id, created_at, embedding) from stdin "
                        "with (format binary)", io.BytesIO(copy_binary(rows, vectors)))
        cur.execute("select model_version, item_id, created_at, embedding::real[] from t "
                    "order by item_id")
        got = cur.fetchall()
    by_id = {r[1]: r for r in got}
    assert sorted(by_id) == ["i2", "i3", "i4", "item-α"]
    for (version, item, created), vector in zip(rows, vectors):
        stored = by_id[item]
        assert stored[0] == version
        expected = None if created is None else (
            created if created.tzinfo else created.replace(tzinfo=utc))
        assert stored[2] == expected
        np.testing.assert_array_equal(np.asarray(stored[3], np.float32), vector)


def test_binary_copy_needs_one_vector_per_row():
    with pytest.raises(ValueError, match="2 rows and 1 vectors: one vector per row"):
        copy_binary([("v", "a"), ("v", "b")], np.zeros((1, 3), np.float32))


def _per_row_encoder():
    """The encoder copy_binary replaced (a row at a time, struct.pack per field), kept in
    bench/scale.py as the reference for its bytes and rates."""
    name = "bench_scale"
    if name not in sys.modules:  # registered first: its dataclasses look their module up
        path = Path(__file__).resolve().parent.parent / "bench" / "scale.py"
        if str(path.parent) not in sys.path:  # the script's folder, as when it runs
            sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name].per_row_copy_binary


def _rows_of_every_kind() -> list[tuple]:
    """Rows with a value of every kind copy_binary takes, NULLs and varying widths in each
    column: text (empty, non-ASCII), times (aware in two zones, naive), dicts (jsonb), other
    values (their str) and a column mixing kinds."""
    utc, minus5 = dt.timezone.utc, dt.timezone(dt.timedelta(hours=-5))
    texts = ["i1", "item-α", "", None, "x" * 300, "ünïcode ✓", "i7"]
    times = [dt.datetime(2026, 11, 30, 23, 59, 59, 123456, tzinfo=utc), None,
             dt.datetime(1999, 12, 31, 12, 0, tzinfo=minus5), dt.datetime(2026, 1, 1),
             dt.datetime(1970, 1, 1, tzinfo=utc), dt.datetime(2000, 1, 1), None]
    dicts = [{"category_level1": "música"}, {}, None, {"a": [1, 2], "b": None},
             {"k": "v"}, {"n": 1.5}, {}]
    others = [7, 2.5, None, True, -1, 10 ** 12, dt.date(2026, 1, 2)]
    mixed = ["text", dt.datetime(2026, 1, 1, tzinfo=utc), None, {"x": 1}, 3, "", "z"]
    return list(zip(texts, times, dicts, others, mixed, ["v1"] * 7, [None] * 7))


@pytest.mark.parametrize("vector_type", ["vector", "halfvec"])
@pytest.mark.parametrize("block_rows", [1 << 16, 3])
def test_binary_copy_sends_the_bytes_of_the_per_row_encoder(monkeypatch, vector_type,
                                                             block_rows):
    """The vectorised encoder's payload is byte for byte the per-row encoder's: every kind
    of value, NULLs, texts of several widths, rows without columns, encoded in one block
    or in blocks of 3 rows; framed or as parts of one COPY."""
    reference = _per_row_encoder()
    monkeypatch.setattr(vectors, "_BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(4)
    rows = _rows_of_every_kind()
    model = rng.normal(size=(len(rows), 5)).astype(np.float32)
    model[0, :2] = [1e-38, 1 / 3]
    expected = reference(rows, model, vector_type=vector_type)
    assert copy_binary(rows, model, vector_type=vector_type) == expected
    by_column = [list(column) for column in zip(*rows)]  # as the embedding steps pass them
    assert copy_columns(by_column, model, vector_type=vector_type) == expected
    parts = [copy_binary(rows[:2], model[:2], framed=False, vector_type=vector_type),
             copy_binary(rows[2:], model[2:], framed=False, vector_type=vector_type)]
    assert b"".join([expected[:19], *parts, expected[-2:]]) == expected
    fixed = [("20261130", f"i{k:07d}", dt.datetime(2026, 1, 1, k, tzinfo=dt.timezone.utc))
             for k in range(7)]  # the usual rows: no NULLs, every id as wide
    assert copy_binary(fixed, model, vector_type=vector_type) == reference(
        fixed, model, vector_type=vector_type)
    bare = [()] * 7
    assert copy_binary(bare, model, vector_type=vector_type) == reference(
        bare, model, vector_type=vector_type)
    assert copy_binary([], model[:0], vector_type=vector_type) == reference(
        [], model[:0], vector_type=vector_type)


def test_binary_copy_refuses_rows_of_different_widths():
    with pytest.raises(ValueError, match=r"rows of \[1, 2\] values: every row needs the same "
                                         r"columns"):
        copy_binary([("a",), ("b", "c")], np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"columns of \[1, 2\] values and 2 vectors"):
        copy_columns([["a"], ["b", "c"]], np.zeros((2, 3), np.float32))


def test_binary_copy_stores_a_dict_as_jsonb(database_url):
    vectors = np.ones((2, 3), np.float32)
    rows = [("i1", {"category_level1": "música", "primary_type": "video"}), ("i2", {})]
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("create temp table t (item_id text, attributes jsonb, embedding vector(3))")
        cur.copy_expert("copy t (item_id, attributes, embedding) from stdin with (format "
                        "binary)", io.BytesIO(copy_binary(rows, vectors)))
        cur.execute("select item_id, attributes from t order by item_id")
        assert cur.fetchall() == rows


def test_a_copy_streamed_in_chunks_stores_what_one_payload_does(database_url):
    """copy_reader encodes chunks as COPY reads them (here 7 bytes at a time, across the
    chunks' borders): the rows equal those of one copy_binary payload."""
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(10, 3)).astype(np.float32)
    rows = [(f"i{k}",) for k in range(10)]
    chunks = (lambda: iter([(rows[:4], vectors[:4]), (rows[4:4], vectors[4:4]),
                            (rows[4:], vectors[4:])]))
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("create temp table t (item_id text, embedding vector(3))")
        cur.copy_expert("copy t from stdin with (format binary)", copy_reader(chunks()), size=7)
        cur.execute("select item_id, embedding::real[] from t order by item_id")
        streamed = cur.fetchall()
        cur.execute("truncate t")
        cur.copy_expert("copy t from stdin with (format binary)",
                        io.BytesIO(copy_binary(rows, vectors)))
        cur.execute("select item_id, embedding::real[] from t order by item_id")
        assert streamed == cur.fetchall() and len(streamed) == 10


# --- halfvec storage -----------------------------------------------------------------------


def test_halfvec_copy_stores_the_float16_roundings_of_the_models_floats(database_url):
    rng = np.random.default_rng(2)
    model = rng.normal(size=(6, 5)).astype(np.float32)
    model[0] = [1 / 3, 1e-5, -2.5e-8, 65504, -65519]  # rounding, subnormal, to 0, the edges
    rows = [(f"i{k}",) for k in range(6)]
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("create temp table t (item_id text, embedding halfvec(5))")
        chunks = [(rows[:2], model[:2]), (rows[2:], model[2:])]
        cur.copy_expert("copy t from stdin with (format binary)",
                        copy_reader(iter(chunks), vector_type="halfvec"), size=5)
        cur.execute("select item_id, embedding::real[], embedding::text from t order by 1")
        got = cur.fetchall()
    stored = np.array([r[1] for r in got], np.float32)
    np.testing.assert_array_equal(stored, model.astype(np.float16).astype(np.float32))
    assert got[0][2] == "[0.33325195,1.001358e-05,-0,65504,-65504]"


def test_halfvec_refuses_a_value_beyond_float16(database_url):
    model = np.ones((2, 3), np.float32)
    model[1, 2] = 70000.0
    with pytest.raises(ValueError, match=r"a vector value 70000.0 \(index \[1, 2\]\) is beyond "
                                         r"halfvec's range \(\+-65504\): storage.vector_type "
                                         r"halfvec cannot store this model's vectors"):
        copy_binary([("a",), ("b",)], model, vector_type="halfvec")
    with pytest.raises(ValueError, match="not a stored vector type: 'float16'"):
        copy_binary([("a",), ("b",)], model, vector_type="float16")


@pytest.fixture
def halfvec_cfg(database_url):
    """A halfvec config on a fresh storage schema (the registry's tables too), dropped after."""
    name = f"hv_{uuid.uuid4().hex[:8]}"
    cfg = make_config(storage={"schema": name, "vector_type": "halfvec"},
                      cold_start_recall={"model_name": f"m_{name}"},
                      retrieval={"hnsw": {"maintenance_work_mem": "1MB"}})
    yield cfg
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(f"drop schema if exists {name} cascade")


def test_a_halfvec_version_is_written_indexed_and_upserted_as_float16(database_url,
                                                                       halfvec_cfg, caplog):
    """The daily path (binary COPY, HNSW index built after it with halfvec_ip_ops and the
    configured maintenance_work_mem) and the stream worker's upsert store the same values:
    the float16 roundings of the model's.  The build is logged, and so is a graph that
    outgrew maintenance_work_mem (1MB here)."""
    cfg, version = halfvec_cfg, "20261110"
    schema, dim = cfg.storage.schema_, cfg.vector_dim
    rng = np.random.default_rng(3)
    model = rng.normal(size=(3000, dim)).astype(np.float32)
    ids = [f"it{k:04d}" for k in range(len(model))]
    vectors.ensure_tables(database_url, cfg)
    registry.ensure_tables(database_url, cfg)
    with caplog.at_level(logging.INFO, logger="dropoutnet.recall.vectors"), \
            db.transaction(database_url) as cur:
        vectors.write_candidate(cur, cfg, "item", version, "r1",
                                ["item_id", "created_at", "attributes"],
                                [(i, None, {}) for i in ids], model)
        parent = vectors.table("item")
        db.swap_partition(cur, schema, parent, version, db.candidate_name(parent, version))
    log = caplog.text
    assert f"built the HNSW index of version {version}: 3,000 items in" in log
    assert "maintenance_work_mem 1MB, storage halfvec" in log
    assert "outgrew maintenance_work_mem 1MB" in log and \
        "raise retrieval.hnsw.maintenance_work_mem" in log
    streamed = rng.normal(size=(2, dim)).astype(np.float32) / 3
    with db.transaction(database_url) as cur:
        vectors.upsert_items(cur, cfg, version, ["new1", ids[0]], [None, None], streamed)
        cur.execute(f"select item_id, embedding::real[] from {schema}.item_embeddings")
        stored = {i: np.asarray(v, np.float32) for i, v in cur.fetchall()}
        cur.execute("select indexdef from pg_indexes where schemaname = %s and indexdef "
                    "like %s", (schema, "%hnsw%"))
        (indexdef,), = cur.fetchall()
    hnsw = cfg.retrieval.hnsw
    assert "halfvec_ip_ops" in indexdef and (
        f"WITH(m='{hnsw.m}',ef_construction='{hnsw.ef_construction}')"
        in indexdef.replace(" ", "")), indexdef
    want = dict(zip(ids, model.astype(np.float16).astype(np.float32)))
    want.update(zip(["new1", ids[0]], streamed.astype(np.float16).astype(np.float32)))
    assert stored.keys() == want.keys()
    for item, vector in want.items():
        np.testing.assert_array_equal(stored[item], vector, err_msg=item)


@pytest.mark.parametrize("stored_type, config_type", [("vector", "halfvec"),
                                                      ("halfvec", "vector")])
def test_tables_of_the_other_vector_type_are_refused_untouched(database_url, stored_type,
                                                               config_type):
    name = f"vt_{uuid.uuid4().hex[:8]}"
    stored_cfg = make_config(storage={"schema": name, "vector_type": stored_type})
    dim = stored_cfg.vector_dim
    vectors.ensure_tables(database_url, stored_cfg)
    row = f"('v1', 'i1', null, array_fill(0.5, array[{dim}])::real[]::{stored_type}, '{{}}')"
    read = (f"select item_id, embedding::text, format_type(atttypid, atttypmod) "
            f"from {name}.item_embeddings, pg_attribute where attrelid = "
            f"'{name}.item_embeddings'::regclass and attname = 'embedding'")
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(f"create table {name}.item_embeddings_v1 partition of "
                    f"{name}.item_embeddings for values in ('v1')")
        cur.execute(f"insert into {name}.item_embeddings values {row}")
        cur.execute(read)
        before = cur.fetchall()
    try:
        other = make_config(storage={"schema": name, "vector_type": config_type})
        with pytest.raises(MissingDataError) as err:
            vectors.ensure_tables(database_url, other)
        assert str(err.value) == (
            f"the embedding tables of schema '{name}' hold {stored_type}({dim}) but this "
            f"config's storage.vector_type is '{config_type}' ({config_type}({dim})): set "
            f"storage.vector_type: {stored_type} to keep using the stored versions, or set "
            f"storage.schema to a new schema for {config_type} storage (the next run embeds "
            f"into it), or drop {name}.user_embeddings and {name}.item_embeddings (every "
            f"stored version is lost) and rerun")
        # a model of another size too: the size's message, which names both settings
        bigger = make_config(storage={"schema": name, "vector_type": config_type},
                             model={"embedding_dim": 8})
        with pytest.raises(MissingDataError, match=rf"hold {stored_type}\({dim}\) but this "
                           rf"config's model makes {config_type}\(9\) \(model.embedding_dim 8 "
                           rf"\+ 1 for model.item_prior; storage.vector_type {config_type}\)"):
            vectors.ensure_tables(database_url, bigger)
        with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
            cur.execute(read)
            assert cur.fetchall() == before and before[0][2] == f"{stored_type}({dim})"
    finally:
        with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
            cur.execute(f"drop schema {name} cascade")
