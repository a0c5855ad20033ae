"""Top-N items for a user: pgvector HNSW over the active model version's item embeddings.

:func:`recall` is the one function behind ``dropoutnet recall`` and the recall API
(``GET /v1/recall``, :mod:`dropoutnet.recall.api`); :func:`top_items` is the query
itself, also used by evaluation.  How a recall is answered, and why:

* **One version.** The active version, the user's vector and the item vectors are read in
  one transaction, so a publish in between never pairs the vectors of two versions.
* **Filters inside the HNSW query.** Items created within a window, items whose stored
  filterable values (``retrieval.filter_columns``, kept in ``item_embeddings.attributes``)
  contain the filter, and the user's own items are all conditions of the one ``recall/retrieve.sql``
  statement, run with pgvector's iterative scan (``hnsw.iterative_scan = strict_order``): the
  scan goes on, in exact distance order, until N items pass, instead of filtering the
  ``ef_search`` nearest and returning whatever is left.
* **Never short when enough exist.** An iterative scan still stops after
  ``retrieval.hnsw.max_scan_tuples`` index tuples; a filter matching a tiny share of the
  items can exhaust that.  A recall that comes back with fewer than N items is answered
  again by an exact scan of the items that pass the filters (``recall/retrieve.sql`` ordered by the
  computed score, which the HNSW index cannot serve).  That happens exactly when few items
  pass, and then the partition's GIN index on the values (or its btree on creation time,
  ``recall/item_filter_indexes.sql``) finds them without scanning the version.
* **Cheap checks.** A filter column must be configured; a filter value must be held by
  some item of the active version (one GIN index probe per filter, no scan), otherwise the
  request is refused with a message rather than answered with nothing.
* **Exclusion window.** ``exclude_interacted`` leaves out every item the user had any event
  with (``raw.events``, impressions included) since the earliest creation time an item of
  the active version can have: the start of its candidate window (``bizdate -
  candidate_window_days + 1``) or of the stream worker's window (``now -
  stream.window_hours``) if that reaches further back.  An interaction is never older than
  its item, so this window holds every interaction with the items recall can return, and
  the query never reads older events.

Errors are :class:`RecallError` with an HTTP-like ``status``: 400 for a malformed or
out-of-range parameter, 404 for no active version or an unknown user
(:class:`RecallNotFound`), 422 for a filter value no item has (:class:`UnknownFilterValue`).
Messages name parameters the way the caller spelled them (:class:`ParamNames`).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from psycopg2.extras import Json

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.data.inputs import as_vector
from dropoutnet.online import served_log
from dropoutnet.recall import vectors

# the longest `created within` window a recall takes: 100 years (a bound, not a policy)
MAX_CREATED_WITHIN_HOURS = 24 * 365 * 100


class RecallError(LookupError):
    """A recall that cannot be answered; the message says why and what to do.

    ``status`` is the HTTP status the recall API answers with: 400, a parameter is
    malformed or out of range."""

    status = 400


class RecallNotFound(RecallError):
    """No active version, or the user has no vector in it (HTTP 404)."""

    status = 404


class UnknownFilterValue(RecallError):
    """A filter value that no item of the active version has (HTTP 422)."""

    status = 422


@dataclass(frozen=True)
class ParamNames:
    """How the caller spells each recall parameter, for error messages: the Python
    arguments, the CLI's options (:data:`CLI_NAMES`) or the API's query parameters
    (:data:`API_NAMES`).  ``filter`` is a format with ``{column}``."""

    top_n: str = "top_n"
    ef_search: str = "ef_search"
    created_within: str = "created_within_hours"
    filter: str = "filters[{column!r}]"

    def filter_of(self, column: str) -> str:
        """How the caller spells the filter on ``column``, e.g. ``filter.category``."""
        return self.filter.format(column=column)


CLI_NAMES = ParamNames(top_n="--top-n", ef_search="--ef-search",
                       created_within="--created-within", filter="--filter {column}=VALUE")
API_NAMES = ParamNames(top_n="n", ef_search="ef_search",
                       created_within="created_within_hours", filter="filter.{column}")


@dataclass(frozen=True)
class RecallRequest:
    """A recall's parameters, checked against the config (:func:`check_request`)."""

    user_id: str
    top_n: int
    ef_search: int
    exclude_interacted: bool = False
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    filters: dict[str, str] = field(default_factory=dict)


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message echoes what the caller
    sent without echoing a megabyte of it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_request(cfg: PipelineConfig, user_id: str, top_n: int | None = None,
                  created_within_hours: float | None = None, *,
                  exclude_interacted: bool = False, filters: Mapping[str, str] | None = None,
                  ef_search: int | None = None, names: ParamNames = ParamNames(),
                  now: dt.datetime | None = None) -> RecallRequest:
    """Check a recall's parameters against ``cfg.retrieval`` without touching the database;
    raise :class:`RecallError` (400) naming the parameter, the limit and the fix."""
    r = cfg.retrieval
    if not isinstance(user_id, str) or not user_id.strip():
        raise RecallError("user_id is missing: name the user to recall items for")
    if "\x00" in user_id:
        raise RecallError(f"user_id {_shown(user_id)} holds a NUL character (0x00), which no "
                          "stored id can: check how the caller encodes it")
    if top_n is None:
        top_n = r.top_n
    if not _is_int(top_n) or not 1 <= top_n <= r.max_top_n:
        raise RecallError(f"{names.top_n} must be an integer from 1 to {r.max_top_n} "
                          f"(retrieval.max_top_n), got {top_n!r}")
    top_n = int(top_n)
    if ef_search is None:
        ef = max(r.hnsw.ef_search, top_n)  # within max_ef_search: the config says so
    elif not _is_int(ef_search) or not top_n <= ef_search <= r.max_ef_search:
        raise RecallError(
            f"{names.ef_search} must be an integer from {top_n} (the number of items asked "
            f"for: an HNSW scan returns at most ef_search rows) to {r.max_ef_search} "
            f"(retrieval.max_ef_search), got {ef_search!r}; or leave it out for the default "
            f"{r.hnsw.ef_search} (retrieval.hnsw.ef_search, raised to {names.top_n})")
    else:
        ef = int(ef_search)
    created_from = created_to = None
    if created_within_hours is not None:
        hours = created_within_hours
        if isinstance(hours, bool) or not isinstance(hours, (int, float, np.number)) \
                or not math.isfinite(hours) or not 0 < hours <= MAX_CREATED_WITHIN_HOURS:
            raise RecallError(f"{names.created_within} must be a number of hours above 0 (and "
                              f"at most {MAX_CREATED_WITHIN_HOURS}), got {hours!r}")
        # a margin of 5 minutes on both sides for clocks that differ a little
        created_to = (now or dt.datetime.now(dt.timezone.utc)) + dt.timedelta(minutes=5)
        created_from = created_to - dt.timedelta(hours=float(hours), minutes=5)
    if not isinstance(exclude_interacted, bool):
        raise RecallError(f"exclude_interacted must be true or false, got "
                          f"{exclude_interacted!r}")
    checked: dict[str, str] = {}
    for column, value in (filters or {}).items():
        if column not in r.filter_columns:
            allowed = (f"the filterable item columns are {list(r.filter_columns)}"
                       if r.filter_columns else "no item column is filterable yet")
            raise RecallError(
                f"{names.filter_of(column)}: {column!r} is not a filterable column: {allowed} "
                f"(retrieval.filter_columns); to filter on it, add it to "
                f"retrieval.filter_columns and embed the next version")
        if not isinstance(value, str) or "\x00" in value:
            raise RecallError(f"{names.filter_of(column)} must be text without NUL characters "
                              f"(values are compared as the column's text), got "
                              f"{_shown(value)}")
        checked[column] = value
    return RecallRequest(user_id=user_id, top_n=top_n, ef_search=ef,
                         exclude_interacted=exclude_interacted, created_from=created_from,
                         created_to=created_to, filters=checked)


def parse_filter_options(options: list[str] | None) -> dict[str, str]:
    """The CLI's ``--filter COLUMN=VALUE`` options as ``{column: value}`` (the value may hold
    ``=``); a malformed or repeated one is a :class:`RecallError`."""
    out: dict[str, str] = {}
    for option in options or []:
        column, sep, value = option.partition("=")
        column = column.strip()
        if not sep or not column:
            raise RecallError(f"--filter {option!r} must be COLUMN=VALUE, e.g. --filter "
                              "category_level1=music")
        if column in out:
            raise RecallError(f"--filter names {column!r} twice: give one value per column")
        out[column] = value
    return out


def user_vector(cur, cfg: PipelineConfig, version: str, user_id: str,
                table: str = "user_embeddings") -> np.ndarray | None:
    """The user's stored vector as float32 (a ``halfvec``'s float16s, exactly), or None."""
    sql.execute(cur, "recall/user_vector.sql",
                params={"model_version": version, "user_id": user_id},
                schema=cfg.storage.schema_, table=table)
    row = cur.fetchone()
    return None if row is None else as_vector(row[0])


def top_items(cur, cfg: PipelineConfig, version: str, vector: np.ndarray, top_n: int,
              created_from: dt.datetime | dt.date | None = None,
              created_to: dt.datetime | dt.date | None = None,
              table: str = "item_embeddings", *, ef_search: int | None = None,
              attributes: Mapping[str, str] | None = None,
              excluded: list[str] | None = None, complete: bool = False
              ) -> list[tuple[str, float]]:
    """The ``top_n`` items of ``version`` by inner product with ``vector`` (HNSW scan).

    ``table`` is the live parent, or a version's unpublished candidate (``db.version_table``).
    Only items created in ``[created_from, created_to)``, whose stored filterable values
    contain ``attributes``, and not in ``excluded``; any of them makes the scan iterative.
    ``ef_search`` defaults to ``retrieval.hnsw.ef_search`` raised to ``top_n``.  With
    ``complete``, an answer shorter than ``top_n`` is replaced by the exact one (see the
    module's docstring): N items whenever N pass the filters.
    """
    ranged = created_from is not None
    excluded = list(excluded or [])
    filtered = bool(attributes)
    params = {"user_vector": vector, "model_version": version, "top_n": top_n,
              "created_from": created_from, "created_to": created_to,
              "attributes": Json(dict(attributes or {})), "excluded": excluded}
    hnsw = cfg.retrieval.hnsw
    context = {"schema": cfg.storage.schema_, "table": table, "created_range": ranged,
               "filtered": filtered, "excluding": bool(excluded),
               "vector_type": cfg.storage.vector_type}
    execute_scan(cur, params, ef_search=ef_search or max(hnsw.ef_search, top_n),
                 iterative_scan=hnsw.iterative_scan if ranged or filtered or excluded
                 else "off", max_scan_tuples=hnsw.max_scan_tuples, **context)
    rows = cur.fetchall()
    if complete and len(rows) < top_n:
        sql.execute(cur, "recall/retrieve.sql", params=params, exact=True, **context)
        rows = cur.fetchall()
    return [(item, float(score)) for item, score in rows]


def execute_scan(cur, params: dict[str, Any], *, ef_search: int, iterative_scan: str,
                 max_scan_tuples: int, exact: bool = False, **context: Any) -> None:
    """``recall/retrieval_settings.sql`` and ``recall/retrieve.sql`` (rendered with
    ``context``, bound to ``params``) in one round trip: two statements, one execute; the
    cursor holds the scan's rows.  ``iterative_scan`` is pgvector's (``off`` for a scan
    without filters); ``relaxed_order`` re-sorts the rows it finds (the template's
    ``relaxed``)."""
    cur.execute(sql.render("recall/retrieval_settings.sql") + "\n" + sql.render(
        "recall/retrieve.sql", exact=exact, relaxed=iterative_scan == "relaxed_order",
        **context), {**params, "ef_search": ef_search, "iterative_scan": iterative_scan,
                     "max_scan_tuples": max_scan_tuples})


def filter_value_exists(cur, cfg: PipelineConfig, version: str, column: str,
                        value: str) -> bool:
    """Whether an item of ``version`` has ``value`` in filter column ``column`` (one probe of
    the partition's GIN index)."""
    sql.execute(cur, "recall/filter_value_exists.sql",
                params={"model_version": version, "attributes": Json({column: value})},
                schema=cfg.storage.schema_)
    return bool(cur.fetchone()[0])


def exclusion_start(cfg: PipelineConfig, bizdate: dt.date,
                    now: dt.datetime | None = None) -> dt.datetime:
    """The earliest creation time an item of the version of ``bizdate`` can have: the start
    of its candidate window, or of the stream worker's window if that reaches back further.
    Every interaction with one of its items happened since (see the module's docstring)."""
    pool = dt.datetime.combine(bizdate - dt.timedelta(
        days=cfg.retrieval.candidate_window_days - 1), dt.time(), tzinfo=dt.timezone.utc)
    stream = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(
        hours=cfg.stream.window_hours)
    return min(pool, stream)


def interacted_items(cur, cfg: PipelineConfig, user_id: str, since: dt.datetime) -> list[str]:
    """The items ``user_id`` had any event with in ``raw.events`` since ``since``."""
    sql.execute(cur, "recall/interacted_items.sql", params={"user_id": user_id, "since": since},
                events=cfg.raw.events)
    return [item for (item,) in cur.fetchall()]


def recall(cfg: PipelineConfig, user_id: str, top_n: int | None = None,
           url: str | None = None, created_within_hours: float | None = None, *,
           exclude_interacted: bool = False, filters: Mapping[str, str] | None = None,
           ef_search: int | None = None, cur=None, names: ParamNames = ParamNames(),
           version: str | None = None, log_as: str | None = None) -> dict[str, Any]:
    """The user's top-N items of the active version (or of the published ``version``):
    ``{user_id, model_version, items: [{item_id, score}]}``, best first.

    * ``top_n``: N, default ``retrieval.top_n``, at most ``retrieval.max_top_n``;
    * ``created_within_hours``: only items created that recently (the newest items, as a
      cold-start channel serves them; the stream worker adds them within a second);
    * ``exclude_interacted``: leave out the items the user had any event with (the window
      is the module docstring's);
    * ``filters``: ``{column: value}`` on ``retrieval.filter_columns``, all must hold;
    * ``ef_search``: the HNSW candidate list, from N to ``retrieval.max_ef_search``
      (default ``retrieval.hnsw.ef_search`` raised to N).

    Runs in its own transaction on ``url`` (default: the pipeline's database), first
    checking that the embedding tables hold ``cfg``'s vector type
    (:func:`vectors.check_tables`), or in the caller's cursor ``cur`` (the recall API's
    pooled connections; the API checks the tables once).  Raises :class:`RecallError` (its
    ``status`` says which kind) naming the parameter as ``names`` spells it, or
    :class:`MissingDataError` for tables of the other ``storage.vector_type``.

    With ``log_as`` (``cli``), the answer gets a ``request_id`` and is written to the served
    log as that source before this returns (unless ``retrieval.log.enabled`` is off).
    """
    request = check_request(cfg, user_id, top_n, created_within_hours,
                            exclude_interacted=exclude_interacted, filters=filters,
                            ef_search=ef_search, names=names)
    if cur is not None:
        answer = recall_checked(cur, cfg, request, names, version)
    else:
        with db.transaction(url) as cur:
            vectors.check_tables(cur, cfg, size=False)
            answer = recall_checked(cur, cfg, request, names, version)
    if log_as is not None and cfg.retrieval.log.enabled:
        request_id = uuid.uuid4()
        answer["request_id"] = str(request_id)
        served_log.write_now(cfg, url, [served_log.ServedList.of_answer(
            answer, request_id, log_as, channel_of(request), request.filters)])
    return answer


def served_version(cur, cfg: PipelineConfig, version: str | None = None,
                   active: registry.ActiveVersion | None = None) -> tuple[str, dt.date]:
    """The version a recall reads and its bizdate: the active one (``active``, as the caller
    read it, or read here), or ``version`` when it is published and not retired; else
    :class:`RecallNotFound` saying what to do."""
    if version is None:
        active = active or registry.active(cur, cfg)
        if active is None:
            raise RecallNotFound(
                f"model {cfg.model_name!r} has no active version yet: run the daily DAG "
                "(make demo, or `dropoutnet run --bizdate YYYY-MM-DD`) to train and publish "
                "one")
        return active.model_version, active.bizdate
    found = registry.versions(cur, cfg, version)
    if not found:
        raise RecallNotFound(f"version {version!r} of model {cfg.model_name!r} was never "
                             "published: choose one of `dropoutnet versions`")
    if found[0]["retired_at"] is not None:
        raise RecallNotFound(f"version {version} was retired on "
                             f"{found[0]['retired_at']:%Y-%m-%d} (retention dropped its "
                             "embeddings): choose a newer version")
    return version, found[0]["bizdate"]


def recall_checked(cur, cfg: PipelineConfig, request: RecallRequest,
                   names: ParamNames = ParamNames(), version: str | None = None
                   ) -> dict[str, Any]:
    """:func:`recall` of a checked request, in the caller's transaction.

    Without ``version``, the user's arm decides: the active version (arm ``active``), or,
    while an experiment splits traffic (:mod:`dropoutnet.registry.experiments`), the
    challenger for the users of its arm and the active version for the others (``control``).
    A challenger-arm user with no vector in the challenger (a user it did not embed) is
    served by the active version and stays in the challenger arm: arms are compared by
    assignment, so a version is not credited for the users it could not serve.  With
    ``version``, that version (arm ``pinned``).
    """
    arm, experiment, active = ("active", None, None) if version is None else ("pinned", None, None)
    if version is None:
        active, experiment = registry.serving_state(cur, cfg)
        if experiment is not None:
            arm = experiment.arm_of(request.user_id)
            if arm == "challenger":
                version = experiment.challenger
    which = "the active version" if version is None else "version"
    served, bizdate = served_version(cur, cfg, version, active)
    user_id = request.user_id
    vector = user_vector(cur, cfg, served, user_id)
    if vector is None and arm == "challenger":
        which = "the active version"
        served, bizdate = served_version(cur, cfg, None, active)
        vector = user_vector(cur, cfg, served, user_id)
    if vector is None:
        raise RecallNotFound(
            f"user {_shown(user_id)} has no embedding in {which} {served}: only "
            f"users active within {cfg.retrieval.active_user_days} days of the bizdate "
            "are embedded; check the user id, or rerun the bizdate after the user's events "
            "are loaded")
    for column, value in request.filters.items():
        if not filter_value_exists(cur, cfg, served, column, value):
            raise UnknownFilterValue(
                f"{names.filter_of(column)}: no item of {which} {served} has "
                f"{column} = {value!r}; check the value (it is compared with the column's "
                f"text exactly, case included). A column added to retrieval.filter_columns "
                f"after version {served} was embedded is filterable from the next version on")
    excluded = None
    if request.exclude_interacted:
        excluded = interacted_items(cur, cfg, user_id, exclusion_start(cfg, bizdate))
    items = top_items(cur, cfg, served, vector, request.top_n, request.created_from,
                      request.created_to, ef_search=request.ef_search,
                      attributes=request.filters, excluded=excluded, complete=True)
    out: dict[str, Any] = {"user_id": user_id, "model_version": served, "arm": arm,
                           "items": [{"item_id": i, "score": round(s, 6)} for i, s in items]}
    if experiment is not None:
        out["experiment_id"] = experiment.experiment_id
    return out


def channel_of(request: RecallRequest) -> str:
    """The served log's channel of a request: ``newest`` (only items created within a
    window, as a cold-start channel asks) or ``all``."""
    return "newest" if request.created_from is not None else "all"
