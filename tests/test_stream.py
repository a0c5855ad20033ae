"""The change log the stream worker reads: the embedded server runs with wal_level=logical,
the pipeline role can replicate, and pgoutput messages from a real slot decode into the rows
that changed."""

from __future__ import annotations

import select

import psycopg2
import psycopg2.extras
import pytest

from dropoutnet.stream import pgoutput
from helpers import fetch_all


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
