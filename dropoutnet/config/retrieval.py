"""``retrieval``: the candidate pool, the HNSW index and its queries, the recall API."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dropoutnet.config.base import IDENT, Strict

# PostgreSQL's memory units (case-sensitive, as the server reads them), in kB
_MEMORY_UNITS_KB = {"kB": 1, "MB": 1024, "GB": 1024 ** 2, "TB": 1024 ** 3}
_MEMORY_SIZE = re.compile(r"^\s*(\d+)\s*(kB|MB|GB|TB)\s*$")
# maintenance_work_mem's range on a 64-bit server: 1 MB to MAX_KILOBYTES (INT_MAX kB)
MAINTENANCE_WORK_MEM_KB = (1024, 2 ** 31 - 1)


def memory_kb(size: str) -> int:
    """A size as PostgreSQL writes it (``'1GB'``, ``'512MB'``) in kB."""
    match = _MEMORY_SIZE.match(size)
    if match is None:
        raise ValueError(f"not a PostgreSQL size: {size!r}")
    return int(match.group(1)) * _MEMORY_UNITS_KB[match.group(2)]


class HnswConfig(Strict):
    """The item partitions' HNSW index and its query settings.

    Built with each version, after its vectors are loaded: ``m`` (links per node) and
    ``ef_construction`` (the candidate list while building; pgvector wants at least ``2 *
    m``), in one transaction with ``maintenance_work_mem`` set locally to the configured size
    (a PostgreSQL size such as ``'1GB'``, or a number of megabytes).  The graph is built in
    that memory: a graph that outgrows it is finished on disk, several times slower
    (pgvector's notice, logged as a warning; 1M items of 33 floats at m 16 outgrew 256MB).
    A parallel build (``max_parallel_maintenance_workers``) reserves that much shared memory
    (``/dev/shm`` in a container) for the build.

    The defaults, m 24 and ef_construction 128, are denser than pgvector's 16 and 64: with
    pgvector's, recall@100 against the exact answer was 0.945 - 0.961 at 1M items
    (``ef_search`` 100 - 400) and 0.970 - 0.999 at 100k, varying from build to build; with
    these, 0.979 - 0.994 at 1M and 0.9994 - 0.9999 at 100k, for a build about 1.8 times as
    long and an index a quarter larger (``bench/scale.py``; README, "At catalogue scale").

    Queries: ``ef_search``, the candidate list of a scan, the default of a recall (raised to
    N: a scan returns at most ``ef_search`` rows); ``max_scan_tuples``, how many index tuples
    a filtered (iterative) scan visits before it gives up (pgvector's
    ``hnsw.max_scan_tuples``; a recall that comes back short then finishes with an exact
    scan of the filtered items, see :mod:`dropoutnet.recall.retrieval`)."""

    m: int = Field(default=24, ge=2, le=100, description="pgvector accepts 2 to 100")
    ef_construction: int = Field(default=128, ge=4, le=1000,
                                 description="pgvector accepts 4 to 1000, at least 2 * m")
    maintenance_work_mem: str = Field(
        default="1GB", description="memory for building one version's index: a PostgreSQL "
        "size (a whole number and kB, MB, GB or TB, e.g. '2GB') or a number of megabytes")
    ef_search: int = Field(default=100, ge=1, le=1000)
    max_scan_tuples: int = Field(default=20000, ge=1)
    iterative_scan: Literal["strict_order", "relaxed_order"] = Field(
        default="strict_order", description="pgvector's hnsw.iterative_scan for a filtered "
        "recall: strict_order returns rows in distance order as it scans; relaxed_order lets "
        "them come slightly out of order (re-sorted after, in the same statement), which "
        "pgvector documents as faster and of better recall")

    @field_validator("maintenance_work_mem", mode="before")
    @classmethod
    def _maintenance_work_mem(cls, v: object) -> str:
        low, high = MAINTENANCE_WORK_MEM_KB
        if isinstance(v, int) and not isinstance(v, bool):
            size = f"{v}MB"  # a bare number is megabytes
        elif isinstance(v, str) and _MEMORY_SIZE.match(v):
            size = "".join(v.split())
        else:
            raise ValueError(
                f"must be a PostgreSQL size, a whole number and one of kB, MB, GB, TB (e.g. "
                f"'1GB' or '512MB'; the units are case-sensitive, as PostgreSQL reads them), "
                f"or a whole number of megabytes (e.g. 1024); got {v!r}")
        if not low <= memory_kb(size) <= high:
            raise ValueError(f"must be from 1MB to {high}kB (PostgreSQL's range for "
                             f"maintenance_work_mem); got {v!r}")
        return size

    @property
    def maintenance_work_mem_kb(self) -> int:
        """``maintenance_work_mem`` in kB, the unit the index build sets it in."""
        return memory_kb(self.maintenance_work_mem)

    @model_validator(mode="after")
    def _build(self) -> "HnswConfig":
        if self.ef_construction < 2 * self.m:
            raise ValueError(f"retrieval.hnsw.ef_construction ({self.ef_construction}) must be "
                             f"at least 2 * m (2 * {self.m} = {2 * self.m}), as pgvector "
                             f"requires; raise ef_construction or lower m")
        return self


class RecallApiConfig(Strict):
    """The recall HTTP API (``dropoutnet recall-api``, :mod:`dropoutnet.recall.api`):
    its address, the environment variable holding its bearer token (the model service's
    rules: when set, every request but ``/healthz`` needs ``Authorization: Bearer <token>``)
    and the most database connections it keeps open (one per recall in flight)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8502, ge=0, le=65535)
    token_env: str = "DROPOUTNET_SERVING_TOKEN"
    connections: int = Field(default=8, ge=1, le=256)


class ServedLogConfig(Strict):
    """The served log (:mod:`dropoutnet.recall.served_log`): every list the recall API (and
    the CLI's recall) answers, kept in ``served_lists``, one partition per UTC day.

    A background writer copies the answers in batches (binary COPY) so that a request never
    waits for the database: it flushes when ``flush_rows`` answers are buffered or the
    oldest has waited ``flush_ms``, whichever comes first, so a crash loses at most the
    answers of the last ``flush_ms`` (and never more than ``flush_rows``).  While the
    database is unreachable the buffer grows to ``max_buffered_rows``; answers beyond that
    are dropped and counted (the API's ``/healthz`` reports them), never blocking a request.
    """

    enabled: bool = True
    flush_ms: int = Field(default=500, ge=1, le=600_000)
    flush_rows: int = Field(default=2000, ge=1, le=1_000_000)
    max_buffered_rows: int = Field(default=200_000, ge=1)

    @model_validator(mode="after")
    def _buffer(self) -> "ServedLogConfig":
        if self.max_buffered_rows < self.flush_rows:
            raise ValueError(f"retrieval.log.max_buffered_rows ({self.max_buffered_rows}) is "
                             f"below flush_rows ({self.flush_rows}): the buffer must hold at "
                             f"least one batch; raise max_buffered_rows or lower flush_rows")
        return self


class ExperimentConfig(Strict):
    """A/B splits between versions (``dropoutnet experiment start``; the running experiment
    itself is registry state, so every recall API replica sees the same one and it survives
    restarts).  ``share`` is the challenger's default share of users; a user's arm is a
    salted hash of the user id (the salt is the experiment's own), so it is stable for the
    experiment and independent between experiments."""

    share: float = Field(default=0.5, gt=0, lt=1,
                         description="the challenger's share of users when start names none")


class RetrievalConfig(Strict):
    """Recall of the active version (:func:`dropoutnet.recall.retrieval.recall`), the candidate pool
    and the users embedded each day.

    ``top_n`` is the default N, ``max_top_n`` the largest a request may ask; a request's
    ``ef_search`` may go up to ``max_ef_search`` (at most 1000, pgvector's limit).
    ``filter_columns`` names raw item-table columns (``raw.items``) whose values are stored
    with every item vector (the daily embeddings and the stream worker write them), so a
    recall can keep only the items with a given value (e.g. ``category_level1``); a column
    added here is filterable from the next version embedded on.
    """

    top_n: int = Field(default=10, ge=1)
    max_top_n: int = Field(default=500, ge=1)
    max_ef_search: int = Field(default=1000, ge=1, le=1000,
                               description="the largest ef_search a recall may ask for "
                                           "(pgvector accepts 1 to 1000)")
    filter_columns: list[str] = Field(default_factory=list,
                                      description="raw item-table columns a recall can filter "
                                                  "on (categorical values, compared as text)")
    candidate_window_days: int = Field(default=3, ge=1,
                                       description="items created within this many days ending "
                                                   "at the bizdate form the candidate pool")
    active_user_days: int = Field(default=14, ge=1,
                                  description="users with an event or a registration within "
                                              "this many days ending at the bizdate are active")
    hnsw: HnswConfig = Field(default_factory=HnswConfig)
    api: RecallApiConfig = Field(default_factory=RecallApiConfig)
    log: ServedLogConfig = Field(default_factory=ServedLogConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)

    @field_validator("filter_columns")
    @classmethod
    def _filter_columns(cls, v: list[str]) -> list[str]:
        for column in v:
            if not isinstance(column, str) or not IDENT.match(column):
                raise ValueError(f"filter column {column!r} is not a plain SQL identifier "
                                 "(letters, digits, _): name a column of the raw items table "
                                 "(raw.items.table)")
        repeated = sorted({c for c in v if v.count(c) > 1})
        if repeated:
            raise ValueError(f"filter columns must be unique; repeated: {repeated}")
        return v

    @model_validator(mode="after")
    def _limits(self) -> "RetrievalConfig":
        if self.max_top_n > self.max_ef_search:
            raise ValueError(f"retrieval.max_top_n ({self.max_top_n}) is above "
                             f"retrieval.max_ef_search ({self.max_ef_search}): a recall of N "
                             f"items needs ef_search >= N; lower max_top_n or raise "
                             f"max_ef_search (at most 1000)")
        if self.top_n > self.max_top_n:
            raise ValueError(f"retrieval.top_n ({self.top_n}) is above retrieval.max_top_n "
                             f"({self.max_top_n}); lower top_n or raise max_top_n")
        if self.hnsw.ef_search > self.max_ef_search:
            raise ValueError(f"retrieval.hnsw.ef_search ({self.hnsw.ef_search}) is above "
                             f"retrieval.max_ef_search ({self.max_ef_search}); lower ef_search "
                             f"or raise max_ef_search")
        return self

