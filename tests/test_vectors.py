"""The embedding store's writer: vectors go to Postgres in COPY's binary format, exactly."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import psycopg2
import pytest

from dropoutnet.vectors import copy_binary, copy_reader


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
