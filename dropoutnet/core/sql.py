"""Render and run the SQL templates in ``sql_templates/``.

Every statement the pipeline runs lives in a Jinja template.  Templates receive identifiers
(schema, tables, columns, feature names) through the context and must pass them through the
``ident`` filter, which quotes them; values (dates, event types, vectors) are never rendered
into the text: they are bind parameters (``%(name)s``) passed to the driver.  The one piece of
SQL text that comes from outside the templates is the config's label ``selection``: the config
is trusted code, and the fragment goes in through the ``sql_fragment`` filter.
"""

from __future__ import annotations

import logging
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
