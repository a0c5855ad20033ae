"""What every section of the pipeline config shares: strict models, the error a bad config
raises, and the checks of names that end up in SQL, folders and URLs.

A name that a template quotes into SQL (a schema, table, column, feature or model name) must
be a plain identifier, and a served model's name becomes a folder and a URL path segment; both
are checked where the config is loaded, so that a typo fails the load with the key that holds
it, not a task hours later.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SERVED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# the user's raw tables, by role (``raw.<role>`` maps each to a table and its columns)
RAW_TABLES = ("events", "items", "authors", "item_text", "users")


class ConfigError(ValueError):
    """A pipeline config that cannot be used; the message names the key and the fix."""


class Strict(BaseModel):
    """A config section: unknown keys are refused (a misspelt key is an error, not a default)
    and a loaded config is frozen (no task changes what another task reads)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def identifier(value: str, what: str) -> str:
    """``value`` if it is a plain SQL identifier (letters, digits, ``_``), else a
    ``ValueError`` naming ``what`` it is."""
    if not IDENT.match(value):
        raise ValueError(f"{what} {value!r} is not a plain SQL identifier (letters, digits, _)")
    return value


def served_name(value: str, what: str) -> str:
    """``value`` if it can name a served model or service: it names a folder and a URL path
    segment, so 1-63 letters, digits, ``_``, ``.`` or ``-``, starting with a letter or digit."""
    if not SERVED_NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be 1-63 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit (it names a folder and a URL path "
                         "segment)")
    return value


def Identifier(what: str) -> Any:  # noqa: N802 - used as a type in the sections' fields
    """The type of a field that holds a plain SQL identifier, checked by :func:`identifier`
    with ``what`` in its message (``name: Identifier("label name")``)."""
    return Annotated[str, AfterValidator(partial(identifier, what=what))]


def _one_of(value: str, what: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def OneOf(what: str, allowed: tuple[str, ...]) -> Any:  # noqa: N802 - used as a type
    """The type of a field that holds one of ``allowed`` names; any other value is an
    ``unknown <what>`` error listing them (``group: OneOf("group", GROUPS)``)."""
    return Annotated[str, AfterValidator(partial(_one_of, what=what, allowed=allowed))]


def ServedName(what: str) -> Any:  # noqa: N802 - used as a type in the sections' fields
    """The type of a field that names a served model or service (:func:`served_name`)."""
    return Annotated[str, AfterValidator(partial(served_name, what=what))]


def format_errors(err: ValidationError, title: str) -> str:
    """A validation error as one line per key: ``  - key: what is wrong``, under ``title``."""
    lines = [f"{title}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (remove it or check its spelling)"
        elif e["type"] == "missing":
            msg = "missing required key"
        elif e["type"] == "literal_error":
            msg = f"{msg}; got {e.get('input')!r}"
        lines.append(f"  - {key}: {msg}")
    return "\n".join(lines)
