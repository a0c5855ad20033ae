"""Decode PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

A logical replication slot with the ``pgoutput`` plugin streams, for the tables of the
publications it is asked for, one message per event of a committed transaction (PostgreSQL
documentation, "Logical Replication Message Formats"): ``B``egin, ``R``elation (a table's
columns, sent before its first change in a session and after it changes), ``I``nsert,
``U``pdate, ``D``elete, ``T``runcate, ``C``ommit, and ``Y`` (type) / ``O`` (origin), which
we decode and skip.  Column values arrive in their text form (``'t'``), as NULL (``'n'``) or
as "unchanged TOASTed value" (``'u'``: an update that did not touch a large column).

:class:`Decoder` keeps the relations it has seen and turns each message into a small
dataclass with the row as ``{column: text or None}``; a value it cannot parse raises
:class:`ProtocolError` naming the message.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field
from typing import Any

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
UNCHANGED = object()  # an unchanged TOASTed value in an update: not sent, still the same


class ProtocolError(ValueError):
    """A message that does not follow the pgoutput protocol."""


@dataclass(frozen=True)
class Column:
    """One column of a relation: its name, its type's oid and whether it is part of the key
    (the replica identity) that updates and deletes send."""

    name: str
    type_oid: int
    key: bool


@dataclass(frozen=True)
class Relation:
    """An ``R`` message: a table's oid, schema, name and columns; later changes name the table
    by oid only, so :class:`Decoder` keeps these."""

    oid: int
    schema: str
    name: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    """A ``B`` message: a committed transaction starts; ``final_lsn`` is its commit's position."""

    final_lsn: int
    commit_time: dt.datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    """A ``C`` message: the transaction's end; ``end_lsn`` is the position to confirm to the
    slot once its changes are stored."""

    commit_lsn: int
    end_lsn: int
    commit_time: dt.datetime


@dataclass(frozen=True)
class Change:
    """An insert, update or delete of one row; ``old`` is the key (or whole old row) an
    update or delete sends when the table's replica identity asks for it."""

    kind: str  # "insert", "update", "delete"
    relation: Relation
    new: dict[str, Any] | None = None
    old: dict[str, Any] | None = None


@dataclass(frozen=True)
class Truncate:
    """A ``T`` message: the tables emptied by one ``TRUNCATE``."""

    relations: tuple[Relation, ...]


@dataclass(frozen=True)
class Other:
    """A message we do not act on (type, origin, logical decoding message)."""

    tag: str


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ProtocolError("message ends early")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError("unterminated string")
        text = self.data[self.pos:end].decode()
        self.pos = end + 1
        return text

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("message ends early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def _time(us: int) -> dt.datetime:
    return PG_EPOCH + dt.timedelta(microseconds=us)


@dataclass
class Decoder:
    """Stateful: relations are sent once per session, changes refer to them by oid."""

    relations: dict[int, Relation] = field(default_factory=dict)

    def decode(self, payload: bytes) -> Begin | Commit | Relation | Change | Truncate | Other:
        """One message as its dataclass, remembering relations; :class:`ProtocolError` when
        it does not parse or a change names a relation not seen yet."""
        if not payload:
            raise ProtocolError("empty message")
        tag = chr(payload[0])
        r = _Reader(payload[1:])
        try:
            if tag == "B":
                return Begin(r.take("!Q"), _time(r.take("!q")), r.take("!I"))
            if tag == "C":
                r.take("!B")  # flags, unused
                return Commit(r.take("!Q"), r.take("!Q"), _time(r.take("!q")))
            if tag == "R":
                oid, schema, name = r.take("!I"), r.string(), r.string()
                r.take("!B")  # replica identity setting
                columns = []
                for _ in range(r.take("!H")):
                    flags, col = r.take("!B"), r.string()
                    type_oid = r.take("!I")
                    r.take("!i")  # type modifier
                    columns.append(Column(col, type_oid, bool(flags & 1)))
                rel = Relation(oid, schema, name, tuple(columns))
                self.relations[oid] = rel
                return rel
            if tag in "IUD":
                return self._change(tag, r)
            if tag == "T":
                n = r.take("!I")
                r.take("!B")  # options (cascade, restart identity)
                return Truncate(tuple(self._relation(r.take("!I")) for _ in range(n)))
            if tag in "YOM":
                return Other(tag)
        except (UnicodeDecodeError, struct.error) as exc:
            raise ProtocolError(f"malformed {tag!r} message: {exc}") from None
        raise ProtocolError(f"unknown pgoutput message {tag!r}")

    def _relation(self, oid: int) -> Relation:
        try:
            return self.relations[oid]
        except KeyError:
            raise ProtocolError(f"a change of relation {oid} arrived before its Relation "
                                "message") from None

    def _tuple(self, r: _Reader, rel: Relation) -> dict[str, Any]:
        n = r.take("!H")
        if n != len(rel.columns):
            raise ProtocolError(f"{rel.schema}.{rel.name}: a row of {n} columns, the relation "
                                f"has {len(rel.columns)}")
        row: dict[str, Any] = {}
        for col in rel.columns:
            kind = chr(r.take("!B"))
            if kind == "n":
                row[col.name] = None
            elif kind == "u":
                row[col.name] = UNCHANGED
            elif kind == "t":
                row[col.name] = r.raw(r.take("!I")).decode()
            else:
                raise ProtocolError(f"{rel.schema}.{rel.name}.{col.name}: value kind {kind!r}"
                                    " (only text values are requested)")
        return row

    def _change(self, tag: str, r: _Reader) -> Change:
        rel = self._relation(r.take("!I"))
        kind = {"I": "insert", "U": "update", "D": "delete"}[tag]
        old = new = None
        marker = chr(r.take("!B"))
        if marker in "KO":
            old = self._tuple(r, rel)
            if tag == "U":
                marker = chr(r.take("!B"))
        if marker == "N":
            new = self._tuple(r, rel)
        elif tag != "D":
            raise ProtocolError(f"{kind} of {rel.schema}.{rel.name}: expected a new row")
        return Change(kind, rel, new=new, old=old)
