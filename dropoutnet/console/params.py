"""The console's request parameters, checked before any query: a bad one is a 400 that names
the parameter and what it takes, an unknown version or user a 404 that says where to look."""

from __future__ import annotations

import datetime as dt
import re

from dropoutnet.config import PipelineConfig
from dropoutnet.core.dates import BizdateError, parse_bizdate

VERSION = re.compile(r"\d{8}")
MAX_REASON = 500


class ConsoleError(Exception):
    """A request the console cannot answer: ``status`` (400, 404, 409, 503) and the message
    the page and the JSON show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def bad(message: str) -> ConsoleError:
    """A 400: the request itself is wrong."""
    return ConsoleError(400, message)


def not_found(message: str) -> ConsoleError:
    """A 404: the request is well formed, but what it names does not exist."""
    return ConsoleError(404, message)


def version(value: str | None, name: str = "version") -> str:
    """A version name, ``yyyymmdd`` (the bizdate it is of)."""
    if not isinstance(value, str) or not VERSION.fullmatch(value.strip()):
        raise bad(f"{name} must be a version name, yyyymmdd (e.g. 20261120), got {value!r}")
    return value.strip()


def bizdate(value: str | None, name: str) -> dt.date | None:
    """An optional bizdate, ``YYYY-MM-DD``."""
    if value is None or value == "":
        return None
    try:
        return parse_bizdate(value, what=name)
    except BizdateError as err:
        raise bad(str(err)) from None


def integer(value: str | None, name: str, low: int, high: int, default: int) -> int:
    """An integer parameter in ``[low, high]`` (``default`` when absent)."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise bad(f"{name} must be an integer from {low} to {high}, got {value!r}") from None
    if not low <= number <= high:
        raise bad(f"{name} must be an integer from {low} to {high}, got {number}")
    return number


def split(value: str | None, splits: tuple[str, ...]) -> str:
    """One of the evaluation's splits (default: cold items, the one the gate judges)."""
    if value is None or value == "":
        return splits[0]
    if value not in splits:
        raise bad(f"split must be one of {', '.join(splits)}, got {value!r}")
    return value


def k_of(cfg: PipelineConfig, value: str | None) -> int:
    """One of ``evaluation.k`` (default: the gate metric's K)."""
    allowed = cfg.evaluation.k
    default = int(cfg.evaluation.gate.metric.split("@")[1])
    if value is None or value == "":
        return default if default in allowed else allowed[0]
    try:
        k = int(value)
    except ValueError:
        k = None
    if k not in allowed:
        raise bad(f"k must be one of evaluation.k: {', '.join(map(str, allowed))}; got {value!r}")
    return k


def reason(value: object) -> str:
    """The reason given for making a version live: required text, at most
    :data:`MAX_REASON` characters (it goes into the activation history)."""
    if not isinstance(value, str) or not value.strip():
        raise bad("reason is required: say why this version should be live (it is recorded "
                  "in the activation history)")
    if len(value) > MAX_REASON:
        raise bad(f"reason is {len(value)} characters long; at most {MAX_REASON}")
    return value.strip()
