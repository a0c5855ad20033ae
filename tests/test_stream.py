"""The change log the stream worker reads: the embedded server runs with wal_level=logical,
the pipeline role can replicate, and pgoutput messages from a real slot decode into the rows
that changed."""

from __future__ import annotations

import datetime as dt
import select
import time

import numpy as np
import psycopg2
import psycopg2.extras
import pytest
from helpers import fetch_all

from dropoutnet.core import db
from dropoutnet.core.errors import MissingDataError
from dropoutnet.data import feature_queries
from dropoutnet.recall import vectors
from dropoutnet.stream import pgoutput, source


def test_the_embedded_server_keeps_a_logical_change_log(database_url):
    if "dropoutnet_pipeline@" not in database_url:
        pytest.skip("an external test database: its wal_level is its administrator's")
    assert fetch_all(database_url, "show wal_level") == [("logical",)]
    assert fetch_all(database_url, "select rolreplication from pg_roles "
                                   "where rolname = current_user") == [(True,)]


def _consume(url: str, slot: str, publication: str, want: int) -> list:
    """Read messages from ``slot`` until ``want`` changes (insert/update/delete) and the
    commit of the last one arrived."""
    conn = psycopg2.connect(url, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    decoder = pgoutput.Decoder()
    out: list = []
    try:
        cur = conn.cursor()
        cur.start_replication(slot_name=slot, decode=False,
                              options={"proto_version": "1", "publication_names": publication})
        while (sum(isinstance(m, pgoutput.Change) for m in out) < want
               or not isinstance(out[-1], pgoutput.Commit)):
            msg = cur.read_message()
            if msg is None:
                select.select([cur], [], [], 1.0)
                continue
            out.append(decoder.decode(msg.payload))
            cur.send_feedback(flush_lsn=msg.data_start)
    finally:
        conn.close()
    return out


def test_pgoutput_messages_decode_into_the_changed_rows(database_url, db_schema):
    if fetch_all(database_url, "show wal_level") != [("logical",)]:
        pytest.skip("the test database has no logical change log")
    schema = db_schema.schema
    slot, publication = f"{schema}_slot", f"{schema}_pub"
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"create table {schema}.items (item_id text primary key, "
                        "title text, grade double precision, create_time timestamptz)")
            cur.execute(f"create publication {publication} for table {schema}.items")
            cur.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            cur.execute(f"insert into {schema}.items values ('i1', 'first', 7.5, "
                        "'2026-11-30 10:00+00'), ('i2', null, null, null)")
            cur.execute(f"update {schema}.items set title = 'first, again' where item_id = 'i1'")
            cur.execute(f"delete from {schema}.items where item_id = 'i2'")
        messages = _consume(database_url, slot, publication, want=4)
    finally:
        with conn.cursor() as cur:
            # the reader just closed: its server process holds the slot a moment more
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                cur.execute("select count(*) from pg_replication_slots "
                            "where slot_name = %s and active", (slot,))
                if cur.fetchone()[0] == 0:
                    break
                time.sleep(0.1)
            cur.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                        "where slot_name = %s", (slot,))
            cur.execute(f"drop publication if exists {publication}")
        conn.close()

    changes = [m for m in messages if isinstance(m, pgoutput.Change)]
    assert [c.kind for c in changes] == ["insert", "insert", "update", "delete"]
    assert {c.relation.name for c in changes} == {"items"}
    assert changes[0].relation.schema == schema
    assert [c.name for c in changes[0].relation.columns] == ["item_id", "title", "grade",
                                                            "create_time"]
    assert changes[0].relation.columns[0].key is True
    assert changes[0].new == {"item_id": "i1", "title": "first", "grade": "7.5",
                              "create_time": "2026-11-30 10:00:00+00"}
    assert changes[1].new == {"item_id": "i2", "title": None, "grade": None,
                              "create_time": None}
    assert changes[2].new["title"] == "first, again"
    assert changes[3].old == {"item_id": "i2", "title": None, "grade": None,
                              "create_time": None}
    # every change sits between its transaction's begin and commit
    kinds = [type(m).__name__ for m in messages if not isinstance(m, pgoutput.Relation)]
    assert kinds == ["Begin", "Change", "Change", "Commit", "Begin", "Change", "Commit",
                     "Begin", "Change", "Commit"]


def test_a_malformed_message_is_a_protocol_error():
    decoder = pgoutput.Decoder()
    with pytest.raises(pgoutput.ProtocolError, match="before its Relation message"):
        decoder.decode(b"I" + (12345).to_bytes(4, "big") + b"N\x00\x00")
    with pytest.raises(pgoutput.ProtocolError, match="unknown pgoutput message 'Z'"):
        decoder.decode(b"Z")
    with pytest.raises(pgoutput.ProtocolError, match="message ends early"):
        decoder.decode(b"B\x00\x01")


def test_the_change_log_of_the_item_tables_reaches_the_worker(tiny):
    url, cfg = tiny
    made = source.ensure(cfg, url)
    assert made["tables"] == sorted(f"{url.schema}.{t}" for t in
                                    ("sv_authors", "sv_item_text_embedding", "sv_items"))
    assert source.ensure(cfg, url) == made  # idempotent
    try:
        with db.transaction(url) as cur:
            cur.execute("insert into sv_items (item_id, author_id, title, create_time) "
                        "values ('new1', 'a1', 'fresh', '2026-11-30 09:00+00')")
            cur.execute("update sv_item_text_embedding set title_embedding = title_embedding "
                        "where item_id = 'i1'")
            cur.execute("delete from sv_items where item_id = 'new1'")  # not published
        with source.ChangeLog(cfg, url) as log:
            asked = time.monotonic()
            batch = next(log.batches(max_changes=10, max_wait=120.0))
            # handed over once the log went idle (flush_when_idle), not after the wait
            assert time.monotonic() - asked < 60
            log.confirm(batch.end_lsn)
        kinds = [(c.kind, c.relation.name) for c in batch.changes]
        assert kinds == [("insert", "sv_items"), ("update", "sv_item_text_embedding")]
        assert batch.changes[0].new["item_id"] == "new1" and batch.end_lsn > 0
        # confirmed: a new reader starts after it; a second reader at once is refused
        with source.ChangeLog(cfg, url) as log:
            assert next(log.batches(max_changes=10, max_wait=1.0)).changes == []
            with pytest.raises(MissingDataError, match=f"the stream slot {source.names(cfg)} "
                               "is read by another worker .*run one `dropoutnet stream` per"):
                source.ChangeLog(cfg, url, in_use_wait=0.5).__enter__()
            # nor is the slot dropped while a worker reads it
            with pytest.raises(MissingDataError, match=f"the stream slot {source.names(cfg)} "
                               "is read by a worker .*stop `dropoutnet stream` first"):
                source.drop(cfg, url, in_use_wait=0.5)
            assert fetch_all(url, "select count(*) from pg_replication_slots where "
                                  f"slot_name = '{source.names(cfg)}'") == [(1,)]
    finally:
        source.drop(cfg, url)  # at once after the reader closed: waits for the slot
    assert fetch_all(url, "select count(*) from pg_replication_slots where slot_name = "
                          f"'{source.names(cfg)}'") == [(0,)]


def test_features_of_given_items_come_from_the_daily_query(tiny):
    url, cfg = tiny
    with db.transaction(url) as cur:
        by_id = feature_queries.read_features(cur, cfg, "item", dt.date(2026, 11, 10),
                                              {"item_ids": ["i2", "i1"]})
        by_day = feature_queries.read_features(cur, cfg, "item", dt.date(2026, 11, 10), {
            "created_from": dt.date(2026, 1, 1), "created_to": dt.date(2027, 1, 1)})
    assert by_id["item_id"] == ["i1", "i2"]
    rows = {i: k for k, i in enumerate(by_day["item_id"])}
    for name, values in by_id.items():
        assert values == [by_day[name][rows[i]] for i in by_id["item_id"]], name


def test_stream_vectors_go_into_a_published_version_only(tiny):
    url, cfg = tiny
    schema, version = cfg.storage.schema_, "20261110"
    vectors.ensure_tables(url, cfg)
    dim = cfg.model.vector_dim
    with db.transaction(url) as cur:
        with pytest.raises(MissingDataError, match="no published item partition"):
            vectors.upsert_items(cur, cfg, version, ["x"], [None], np.ones((1, dim)))
    with db.transaction(url) as cur:  # publish an empty version
        stage = db.create_stage(cur, schema, "item_embeddings", version)
        db.swap_partition(cur, schema, "item_embeddings", version, stage)
    for value in (1.0, 2.0):  # a replay replaces, never duplicates
        with db.transaction(url) as cur:
            assert vectors.upsert_items(cur, cfg, version, ["n1", "n2"],
                                        ["2026-11-30 09:00+00", None],
                                        np.full((2, dim), value)) == 2
    got = fetch_all(url, f"select item_id, (embedding::real[])[1], created_at is null "
                         f"from {schema}.item_embeddings_p{version} order by 1")
    assert [(i, round(float(v), 3), n) for i, v, n in got] == [("n1", 2.0, False),
                                                              ("n2", 2.0, True)]
