"""Render and run the SQL templates in ``sql_templates/``.

Every statement the pipeline runs lives in a Jinja template.  Templates receive identifiers
(schema, tables, columns, feature names) through the context and must pass them through the
``ident`` filter, which quotes them; values (dates, event types, vectors) are never rendered
into the text: they are bind parameters (``%(name)s``) passed to the driver.  The one piece of
SQL text that comes from outside the templates is the config's label ``selection``: the config
is trusted code, and the fragment goes in through the ``sql_fragment`` filter.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2

from dropoutnet.core.locations import REPOSITORY

log = logging.getLogger(__name__)

TEMPLATE_DIR = REPOSITORY / "sql_templates"


def ident(name: str) -> str:
    """Quote one SQL identifier (``a"b`` -> ``"a""b"``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"not an identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``"schema"."name"``, both quoted as identifiers, for names that come from the config."""
    return f"{ident(schema)}.{ident(name)}"


VECTOR_TYPES = ("vector", "halfvec")


def vector_sql_type(vector_type: str, dim: int | None = None) -> str:
    """The pgvector type of stored embeddings (``storage.vector_type``), with its dimension
    when given: ``vector(33)``, ``halfvec``.  A template names a type, an operator class
    (``{{ vector_sql_type(t) }}_ip_ops``) or a cast with it; anything but pgvector's two
    float types is refused, so no other text reaches a statement this way."""
    if vector_type not in VECTOR_TYPES:
        raise ValueError(f"not a stored vector type: {vector_type!r} (one of {VECTOR_TYPES})")
    if dim is None:
        return vector_type
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"not a vector dimension: {dim!r}")
    return f"{vector_type}({dim})"


def sql_fragment(text: str) -> str:
    """A trusted SQL fragment (from the pipeline config, which is code) for a statement run
    with bind parameters: the driver reads every ``%`` as the start of a parameter marker, so
    a literal one (``like 'cl%'``) is doubled.  Never for data: values are bind parameters.
    """
    return text.replace("%", "%%")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["ident"] = ident
    env.filters["sql_fragment"] = sql_fragment
    env.globals["qualified"] = qualified
    env.globals["vector_sql_type"] = vector_sql_type
    return env


_PLAIN = (str, int, float, bool, type(None))


def render(template: str, **context: Any) -> str:
    """The text of ``template`` rendered with ``context``.  Renders whose context holds only
    plain values (strings, numbers, booleans, None) are remembered: a request path renders
    the same few statements every time (a recall: five, 0.3 ms of Jinja and file checks)."""
    if all(type(v) in _PLAIN for v in context.values()):
        # the type is part of the key: True == 1 == 1.0, but they render differently
        return _render_plain(template, tuple(sorted((k, type(v), v)
                                                    for k, v in context.items())))
    return _environment().get_template(template).render(**context)


@lru_cache(maxsize=4096)
def _render_plain(template: str, context: tuple[tuple[str, type, Any], ...]) -> str:
    return _environment().get_template(template).render(**{k: v for k, _, v in context})


def execute(cur, template: str, params: dict[str, Any] | None = None, **context: Any) -> str:
    """Render ``template`` and execute it with bind ``params``; return the text run."""
    text = render(template, **context)
    log.debug("running %s:\n%s", template, text)
    cur.execute(text, params or {})
    return text


# ---- server-side prepared statements (a request path's hot statements) ----

_PARAMETER = re.compile(r"%\((\w+)\)s")
# the names of the statements prepared on each open connection (PREPARE outlives a rollback:
# a prepared statement lasts as long as its session)
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PREPARED_LOCK = threading.Lock()  # connections of a pool, used from several threads
MAX_PREPARED = 256  # per connection: beyond, all are deallocated and prepared again on use


@dataclass(frozen=True)
class Prepared:
    """A rendered statement in its prepared form: ``prepare`` defines it on a connection
    (its ``%(name)s`` parameters numbered ``$1``, ``$2``, ... by first appearance; the
    server infers their types from the text, as it does for bind parameters), ``run`` is the
    ``execute`` taking the same named parameters.  The name is a hash of the text, so every
    connection gives one statement one name."""

    name: str
    prepare: str
    run: str


@lru_cache(maxsize=1024)
def prepared_form(text: str) -> Prepared:
    """``text`` (one statement, ``%(name)s`` parameters) as a :class:`Prepared`."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    # run without bind parameters, so the driver leaves "%%" as it is: it becomes "%" here
    body = _PARAMETER.sub(number, text.strip().rstrip(";")).replace("%%", "%")
    name = "dn_" + hashlib.sha1(text.encode()).hexdigest()[:20]
    arguments = f"({', '.join(f'%({n})s' for n in names)})" if names else ""
    return Prepared(name, f"prepare {name} as\n{body};", f"execute {name}{arguments};")


def execute_prepared(cur, texts: Sequence[str], params: dict[str, Any] | None = None) -> None:
    """Run rendered statements ``texts`` (sharing ``params``) in one round trip as prepared
    statements of ``cur``'s connection, preparing each on its first use there.

    The server then parses a statement once per connection, not once per call, and after a
    few calls may keep one generic plan (PostgreSQL's ``plan_cache_mode = auto``).  So
    prepare only statements whose best plan cannot depend on the values (a lookup by key, an
    HNSW scan without filters): a generic plan of a filtered scan, estimated for no value in
    particular, can pick an index that is wrong for the values a call brings."""
    with _PREPARED_LOCK:
        known = _PREPARED.setdefault(cur.connection, set())
    forms = [prepared_form(t) for t in texts]
    for form in forms:  # one round trip each, once per connection: so the set stays true
        if form.name in known:
            continue
        if len(known) >= MAX_PREPARED:
            cur.execute("deallocate all")
            known.clear()
        cur.execute(form.prepare)
        known.add(form.name)
    cur.execute("\n".join(f.run for f in forms), params or {})
