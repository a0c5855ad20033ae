"""The one pipeline config file, validated at load.

A pipeline is described by a single YAML file (see ``config/pipeline.yaml``):

* ``cold_start_recall`` is the seed's template section, verbatim: model name and type, the
  label (its name, the SQL ``selection`` aggregate evaluated over one sample's events, and its
  type) and ``train_days``.  ``selection`` is SQL the pipeline runs: the config file is code.
* ``raw`` maps the user's own tables and columns (events, items, authors, item text
  embeddings, users).  Nothing in code knows the demo's table or column names.
* ``features`` declares every model input once: a name, one of the four DropoutNet groups and
  a kind.  Content features read a raw column (``source: table.column``); preference features
  are point-in-time behaviour statistics (``preference: {...}``) computed by SQL as of the end
  of the day before each sample.
* ``samples`` (optional) adds sampled negatives to the training samples.
* ``model``, ``training``, ``retrieval`` and ``evaluation`` hold the remaining settings.

Validation happens here, before any task runs, and every error names the key, the value and
what is allowed (pydantic's messages carry the path of the offending key).
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

GROUPS = ("user_content", "user_preference", "item_content", "item_preference")
KINDS = ("categorical", "numeric", "tags", "vector")
RAW_TABLES = ("events", "items", "authors", "item_text", "users")
AGGREGATES = ("count", "rate", "collect")

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A pipeline config that cannot be used; the message names the key and the fix."""


def served_name(value: str, what: str) -> str:
    """A served model's or service's name: it names a folder and a URL path segment."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", value):
        raise ValueError(f"{what} {value!r} must be 1-63 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit (it names a folder and a URL path "
                         "segment)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _identifier(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"{what} {value!r} is not a plain SQL identifier (letters, digits, _)")
    return value


# --- the seed's template section -------------------------------------------------------------


class LabelConfig(_Strict):
    name: str
    selection: str = Field(description="SQL aggregate over one sample's events, e.g. "
                                       "max(case when event_type = 'click' then 1 else 0 end); "
                                       "pasted into samples.sql and run by the pipeline's "
                                       "database role, so the config file is trusted code: it "
                                       "must come from the people who can change the DAG")
    type: Literal["CLASSIFICATION"]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _identifier(v, "label name")


class ColdStartRecall(_Strict):
    model_name: str
    model_type: Literal["dropoutnet"]
    label: LabelConfig
    train_days: int = Field(ge=1, le=365)

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, v: str) -> str:
        return _identifier(v, "model_name")


# --- raw tables ----------------------------------------------------------------------------


class RawTable(_Strict):
    """One raw table of the user's: its name and the role columns the pipeline needs."""

    table: str
    schema_: str | None = Field(default=None, alias="schema")
    columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        return _identifier(v, "table")

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str]) -> dict[str, str]:
        for role, column in v.items():
            _identifier(column, f"column for {role!r}")
        return v


# The role columns each raw table must map (role -> meaning).
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    "events": ("user_id", "item_id", "event_type", "event_time"),
    "items": ("item_id", "author_id", "create_time"),
    "authors": ("author_id",),
    "item_text": ("item_id",),
    "users": ("user_id",),
}


class RawConfig(_Strict):
    events: RawTable
    items: RawTable
    authors: RawTable
    item_text: RawTable
    users: RawTable
    exposure_events: list[str] = Field(
        min_length=1,
        description="event types that make a (user, item, day) a sample: the impressions")

    @model_validator(mode="after")
    def _roles(self) -> "RawConfig":
        for name, roles in REQUIRED_ROLES.items():
            table: RawTable = getattr(self, name)
            missing = [r for r in roles if r not in table.columns]
            if missing:
                raise ValueError(
                    f"raw.{name}.columns is missing {missing}: map each role to a column of "
                    f"{table.table!r} (required roles: {list(roles)})")
        return self

    def table(self, name: str) -> RawTable:
        return getattr(self, name)


# --- features ------------------------------------------------------------------------------


class PreferenceSpec(_Strict):
    """A behaviour statistic of the sample's user or item, as of the end of the previous day.

    * ``count``: number of the entity's events of types ``events`` in the window;
    * ``rate``: count of ``events`` / count of ``denominator_events`` (NULL when 0);
    * ``collect``: the distinct values of ``collect`` (``table.column`` of the counterpart,
      e.g. ``items.category_level1`` for a user) over the entity's ``events``, as tags.
    """

    agg: Literal["count", "rate", "collect"]
    events: list[str] = Field(min_length=1)
    window_days: int = Field(ge=1, le=365)
    denominator_events: list[str] | None = None
    collect: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> "PreferenceSpec":
        if self.agg == "rate" and not self.denominator_events:
            raise ValueError("agg 'rate' needs denominator_events (e.g. [impression])")
        if self.agg == "collect" and not self.collect:
            raise ValueError("agg 'collect' needs collect: table.column (e.g. items.category_level1)")
        if self.agg != "collect" and self.collect:
            raise ValueError(f"collect is only for agg 'collect', not {self.agg!r}")
        return self


class FeatureSpec(_Strict):
    name: str
    group: str
    kind: str
    source: str | None = Field(default=None, description="table.column for content features")
    preference: PreferenceSpec | None = None
    precomputed: bool = Field(default=False, description="a preference feature computed offline "
                              "(e.g. CF factors), read from source: table.column like content; "
                              "NULL / all zeros = cold")
    buckets: int | None = Field(default=None, ge=2, description="hash buckets (categorical, tags)")
    dim: int | None = Field(default=None, ge=1, description="vector length (vector)")
    separator: str = "|"
    age: bool = Field(default=False, description="a numeric content feature read from a "
                      "timestamp column (e.g. items.create_time): whole days from it to the "
                      "row's as-of day, 0 when not earlier (a new item's age is 0)")
    allow_id: bool = Field(default=False, description="let a content feature read the entity's "
                           "own id column (leaks for cold entities; warned at load)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _identifier(v, "feature name")

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        if v not in GROUPS:
            raise ValueError(f"unknown group {v!r}; allowed: {', '.join(GROUPS)}")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in KINDS:
            raise ValueError(f"unknown kind {v!r}; allowed: {', '.join(KINDS)}")
        return v

    @model_validator(mode="after")
    def _shape(self) -> "FeatureSpec":
        is_pref = self.group.endswith("_preference")
        if self.precomputed:
            if not is_pref:
                raise ValueError(f"precomputed is only for preference groups; feature "
                                 f"{self.name!r} is in group {self.group!r}")
            if self.preference is not None or self.source is None:
                raise ValueError(f"precomputed feature {self.name!r} needs source: table.column "
                                 "and no preference: block")
            if self.kind not in ("vector", "numeric"):
                raise ValueError(f"precomputed feature {self.name!r} must have kind 'vector' "
                                 f"or 'numeric', not {self.kind!r}")
        elif is_pref and self.preference is None:
            raise ValueError(f"feature {self.name!r} is in group {self.group!r}: it needs a "
                             "preference: {agg, events, window_days} block, not a source column "
                             "(or precomputed: true with source: table.column for a value "
                             "computed offline)")
        if not is_pref and self.source is None:
            raise ValueError(f"feature {self.name!r} is in group {self.group!r}: it needs "
                             "source: table.column")
        if self.source is not None:
            table, _, column = self.source.partition(".")
            if table not in RAW_TABLES or not column:
                raise ValueError(f"source {self.source!r} of feature {self.name!r} must be "
                                 f"table.column with table one of {', '.join(RAW_TABLES)}")
            _identifier(column, "source column")
        if self.age and (self.kind != "numeric" or is_pref):
            raise ValueError(f"age: true is for numeric content features (days since a "
                             f"timestamp); feature {self.name!r} is {self.kind!r} in "
                             f"{self.group!r}")
        if self.kind == "vector":
            if self.dim is None:
                raise ValueError(f"vector feature {self.name!r} needs dim")
            if self.preference is not None:
                raise ValueError(f"vector feature {self.name!r} cannot be a preference aggregate "
                                 "(use precomputed: true with source: table.column)")
        if is_pref and self.preference is not None:
            wanted = "tags" if self.preference.agg == "collect" else "numeric"
            if self.kind != wanted:
                raise ValueError(f"preference feature {self.name!r} with agg "
                                 f"{self.preference.agg!r} must have kind {wanted!r}")
        return self

    @property
    def side(self) -> str:
        """``user`` or ``item``: the tower this feature feeds."""
        return self.group.split("_", 1)[0]

    @property
    def source_table(self) -> str | None:
        return self.source.partition(".")[0] if self.source else None

    @property
    def source_column(self) -> str | None:
        return self.source.partition(".")[2] if self.source else None


# --- model, training, retrieval, evaluation ---------------------------------------------------


class LossConfig(_Strict):
    """The training loss: ``pointwise_weight * pointwise + pairwise_weight * pairwise +
    softmax_weight * softmax`` (see :mod:`dropoutnet.model.losses`); a weight of 0 turns a
    term off.  The softmax runs over in-batch negatives (other rows' items, same-item rows
    masked) with support-vector hard-negative weighting:
    ``logits = scale * [s+ - margin, h(s_1), ..., h(s_N)]``, ``h(s) = t*s + t - 1`` for a hard
    negative (``s > s+ - margin``), else ``s``; ``logq`` subtracts log(item frequency).
    """

    pointwise_weight: float = Field(default=1.0, ge=0, description="sigmoid cross-entropy on "
                                    "scale * cosine + bias (learned scale and bias)")
    pairwise_weight: float = Field(default=0.0, ge=0, description="RankNet over in-batch pairs "
                                   "with y_i > y_j, on scale * cosine")
    softmax_weight: float = Field(default=1.0, ge=0)
    softmax_negatives: Annotated[int, Field(ge=1)] | Literal["all"] = Field(
        default="all", description="N negatives per positive: 'all' other rows of the batch, or "
                                   "N rows drawn per batch (N < training.batch_size)")
    softmax_margin: float = Field(default=0.0, ge=0, lt=2, description="m, on the cosine")
    softmax_scale: float = Field(default=10.0, gt=0, description="gamma = 1 / temperature")
    softmax_sv_coefficient: float = Field(default=1.0, ge=1, description="t; 1 = hard "
                                          "negatives not re-weighted")
    softmax_logq: bool = Field(default=False, description="subtract log q(item), q = the item's "
                                                          "share of training rows")
    align_weight: float = Field(default=1.0, ge=0, description="the item tower's cold "
                                "encoding (content only) regressed onto its own warm encoding "
                                "(stop-gradient) on the rows whose item has behaviour")
    distill_weight: float = Field(default=0.0, ge=0, description="the DropoutNet paper's "
                                  "objective: regress the score onto a preference model's "
                                  "U_u . V_i (see distill_features)")
    distill_features: list[str] | None = Field(
        default=None, min_length=2, max_length=2,
        description="[user feature, item feature]: the precomputed preference vectors (e.g. "
                    "CF factors) whose inner product is the distillation target")

    @model_validator(mode="before")
    @classmethod
    def _temperature(cls, data):
        # softmax_temperature was the setting before softmax_scale; older configs and the
        # model_meta.json of models trained then still carry it: scale = 1 / temperature
        if isinstance(data, dict) and "softmax_temperature" in data:
            data = dict(data)
            temperature = data.pop("softmax_temperature")
            if "softmax_scale" in data:
                raise ValueError("set softmax_scale only: softmax_temperature is its old "
                                 "spelling (softmax_scale = 1 / softmax_temperature)")
            if not isinstance(temperature, (int, float)) or temperature <= 0:
                raise ValueError(f"softmax_temperature must be > 0, got {temperature!r}")
            data["softmax_scale"] = 1.0 / float(temperature)
        return data

    @model_validator(mode="after")
    def _some(self) -> "LossConfig":
        if (self.pointwise_weight == 0 and self.pairwise_weight == 0 and self.softmax_weight == 0
                and self.distill_weight == 0):
            raise ValueError("every loss weight is 0: set pointwise_weight, pairwise_weight, "
                             "softmax_weight or distill_weight > 0 (align_weight alone "
                             "learns nothing about users)")
        if self.distill_weight > 0 and not self.distill_features:
            raise ValueError("distill_weight > 0 needs distill_features: [user feature, item "
                             "feature], the precomputed preference vectors whose inner product "
                             "the score learns")
        return self

    @property
    def num_negatives(self) -> int | None:
        """``softmax_negatives`` as an int, or ``None`` for all other rows of the batch."""
        return None if self.softmax_negatives == "all" else int(self.softmax_negatives)


class ModelConfig(_Strict):
    """The towers and the score.

    Each tower ends in a vector of ``embedding_dim``; ``normalization`` says what happens to it:

    * ``l2``: both vectors are L2-normalised and the score is a learned ``scale`` times their
      cosine (the exported user vector carries the scale);
    * ``none``: the raw inner product (the DropoutNet paper's linear towers), times ``scale``;
    * ``cosine``: the score is the cosine itself and both exported vectors are unit length
      (EasyRec's contract), for indexes that compare unit vectors; no room for a prior.

    ``item_prior`` adds a scalar per item from the item tower (content, and preference when
    the item has behaviour): ``score = scale * <u, v> + prior + bias``, still one inner
    product: the exported item vector is ``[v, prior + bias]`` and the user vector
    ``[scale * u, 1]`` (``embedding_dim + 1`` dimensions).  It lets the score say "this new
    item will be liked by many", which a normalised cosine cannot.

    ``popularity_prior`` (a weight; 0 = off) adds to the exported prior an item's expected
    reach from its content: a ridge from the training items' content to log1p of their
    positives at equal exposure, fitted in closed form on each training day's samples, kept out
    of the click losses, times this weight (see :mod:`dropoutnet.model.popularity`).
    ``popularity_features`` names the item content features that ridge reads (default: all
    but age features); with many content columns and a few thousand items, a handful of
    metadata columns can predict reach better than all of them.

    ``factor_prior`` (a weight; 0 = off) adds to the score the preference model's own
    cold-start guess, where preference vectors are given (``losses.distill_features``): the
    user's factors times the direction of the item's factors, or, for an item without
    factors, of a ridge from its content to them, fitted in closed form on each training day;
    the exported vectors gain one dimension per factor (see :mod:`dropoutnet.model.factors`).

    ``linear_shortcut`` adds a linear map of each tower's encoded inputs to its output, beside
    the MLPs (see :mod:`dropoutnet.model.towers`).
    """

    embedding_dim: int = Field(default=32, ge=2, le=2000)
    normalization: Literal["l2", "none", "cosine"] = "l2"
    item_prior: bool = True
    popularity_prior: float = Field(default=0.0, ge=0, description="weight of the content → "
                                    "popularity ridge in the item prior (0 = off)")
    popularity_features: list[str] | None = Field(
        default=None, min_length=1, description="the item_content features the popularity "
        "prior's ridge reads (default: every item content feature that is not an age "
        "feature); a few metadata columns can predict reach better than every content column")
    factor_prior: float = Field(default=0.0, ge=0, description="weight of the content → "
                                "preference factors ridge in the score (0 = off; needs "
                                "losses.distill_features)")
    factor_prior_feature: str | None = Field(
        default=None, description="an item_content vector feature that already predicts the "
        "item factors (say, a text model's guess): items without factors take its direction "
        "in the factor prior, instead of the ridge from content")
    linear_shortcut: bool = Field(default=True, description="add a linear map of each "
                                  "tower's encoded inputs to its output (a wide path beside "
                                  "the MLPs)")
    feature_embedding_dim: int = Field(default=16, ge=1)
    hash_buckets: int = Field(default=10000, ge=2)
    num_bins: int = Field(default=10, ge=2, le=1000)
    content_mlp: list[int] = Field(default_factory=lambda: [128])
    preference_mlp: list[int] = Field(default_factory=lambda: [64])
    tower_mlp: list[int] = Field(default_factory=lambda: [128])
    user_dropout_rate: float = Field(default=0.3, ge=0, lt=1)
    item_dropout_rate: float = Field(default=0.5, ge=0, lt=1)
    losses: LossConfig = Field(default_factory=LossConfig)

    @model_validator(mode="after")
    def _prior_fits(self) -> "ModelConfig":
        if self.item_prior and self.normalization == "cosine":
            raise ValueError("item_prior: true cannot be held with normalization: cosine (unit "
                             "vectors have no room for a prior dimension); set "
                             "model.normalization to l2 or none, or item_prior: false")
        if self.popularity_prior > 0 and not self.item_prior:
            raise ValueError("popularity_prior needs item_prior: true (the expected popularity "
                             "is carried in the item vector's prior dimension); set "
                             "model.item_prior: true, or model.popularity_prior: 0")
        if self.popularity_features is not None and self.popularity_prior <= 0:
            raise ValueError("popularity_features are the popularity prior's inputs: set "
                             "model.popularity_prior above 0, or remove "
                             "model.popularity_features")
        if self.factor_prior > 0 and self.normalization == "cosine":
            raise ValueError("factor_prior cannot be held with normalization: cosine (unit "
                             "vectors have no room for the factor dimensions); set "
                             "model.normalization to l2 or none, or model.factor_prior: 0")
        if self.factor_prior > 0 and not self.losses.distill_features:
            raise ValueError("factor_prior needs the preference vectors it maps content to: "
                             "set model.losses.distill_features: [user factors, item factors], "
                             "or model.factor_prior: 0")
        if self.factor_prior_feature and self.factor_prior <= 0:
            raise ValueError("factor_prior_feature is the factor prior's guess for new items: "
                             "set model.factor_prior above 0, or remove "
                             "model.factor_prior_feature")
        return self

    @property
    def vector_dim(self) -> int:
        """Length of the towers' part of the exported vectors: the embedding and the prior
        (:attr:`PipelineConfig.vector_dim` adds the factor prior's dimensions)."""
        return self.embedding_dim + (1 if self.item_prior else 0)


class ClusterTasks(_Strict):
    """One task type of a cluster (the seed's ``{"worker": {"count": 9}}``)."""

    count: int = Field(ge=0)


# The one-line answer to a seed config's parameter servers (``{"ps": {"count": 1}, ...}``).
PS_UNSUPPORTED = (
    "parameter-server training is not available: Keras 3's model.fit cannot drive "
    "tf.distribute.ParameterServerStrategy (Keras 3 has no ClusterCoordinator support), so a "
    "cluster trains with MultiWorkerMirroredStrategy, every worker holding all the variables; "
    "remove ps (or set ps.count: 0) and give the workers only, e.g. "
    "cluster: {worker: {count: 10}} for the seed's 1 ps + 9 workers")


class ClusterConfig(_Strict):
    """``training.cluster``: train on several processes (:mod:`dropoutnet.cluster`).

    The seed's shape, ``{ps: {count: P}, worker: {count: N}}``; ``ps`` must be absent or 0
    (:data:`PS_UNSUPPORTED`).  Worker 0 is the chief: it alone writes the checkpoint, the
    model's metadata and the train report.  Without ``TF_CONFIG`` in the environment, the train
    task launches the N workers itself as processes on this machine; with ``TF_CONFIG`` (set
    by a platform that launched the cluster) the process is one member of that cluster and
    ``worker.count`` is not used (the platform's cluster is the truth).
    """

    worker: ClusterTasks
    ps: ClusterTasks | None = None

    @field_validator("worker")
    @classmethod
    def _workers(cls, v: ClusterTasks) -> ClusterTasks:
        if v.count < 1:
            raise ValueError(f"worker.count is {v.count}; a cluster needs at least one worker "
                             "(1 = train in the task's own process, as without a cluster)")
        return v

    @field_validator("ps")
    @classmethod
    def _no_ps(cls, v: ClusterTasks | None) -> ClusterTasks | None:
        if v is not None and v.count > 0:
            raise ValueError(f"ps.count is {v.count}: {PS_UNSUPPORTED}")
        return v

    @property
    def workers(self) -> int:
        return self.worker.count


class TrainingConfig(_Strict):
    batch_size: int = Field(default=1024, ge=2)
    epochs: int = Field(default=2, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0, lt=1, description="AdamW's decoupled weight "
                                "decay (0 = Adam): keeps the content embeddings from memorising "
                                "warm items, which a cold item cannot use")
    seed: int = 42
    shuffle_buffer: int = Field(
        default=65536, ge=0, description="training reads its samples in chunks and shuffles "
        "them through a buffer of this many rows (0 = in the partition's order): memory "
        "stays this size whatever the day's samples; the partition is read in a fixed "
        "pseudo-random order, so a buffer smaller than the day still mixes days and users; "
        "samples already in memory (benchmarks, tuning) are shuffled whole")
    cache_samples: bool = Field(
        default=True, description="the first read of the day's partition also keeps its "
        "converted chunks in a private temporary folder on local disk (TMPDIR; about as "
        "many bytes as the partition in Postgres), and later passes (epochs) read them "
        "instead of Postgres; the folder is deleted when training ends.  false: every "
        "pass reads Postgres")
    warm_start_max_gap_days: int = Field(
        default=7, ge=0, description="warm start from the newest checkpoint of an earlier "
        "bizdate at most this many days back (0 = always train from scratch); a later "
        "bizdate's checkpoint is never used")
    cluster: ClusterConfig | None = Field(
        default=None, description="train on several processes with tf.distribute's "
        "MultiWorkerMirroredStrategy (see ClusterConfig); none = one process")

    @model_validator(mode="after")
    def _batch_per_worker(self) -> "TrainingConfig":
        if self.cluster is not None and self.batch_size < 2 * self.cluster.workers:
            raise ValueError(
                f"training.batch_size ({self.batch_size}) is the global batch, split among "
                f"the cluster's {self.cluster.workers} workers: it must be at least 2 rows "
                f"per worker ({2 * self.cluster.workers}); raise batch_size or lower "
                "cluster.worker.count")
        return self


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


class HnswConfig(_Strict):
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
    scan of the filtered items, see :mod:`dropoutnet.retrieval`)."""

    m: int = Field(default=24, ge=2, le=100, description="pgvector accepts 2 to 100")
    ef_construction: int = Field(default=128, ge=4, le=1000,
                                 description="pgvector accepts 4 to 1000, at least 2 * m")
    maintenance_work_mem: str = Field(
        default="1GB", description="memory for building one version's index: a PostgreSQL "
        "size (a whole number and kB, MB, GB or TB, e.g. '2GB') or a number of megabytes")
    ef_search: int = Field(default=100, ge=1, le=1000)
    max_scan_tuples: int = Field(default=20000, ge=1)

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
        return memory_kb(self.maintenance_work_mem)

    @model_validator(mode="after")
    def _build(self) -> "HnswConfig":
        if self.ef_construction < 2 * self.m:
            raise ValueError(f"retrieval.hnsw.ef_construction ({self.ef_construction}) must be "
                             f"at least 2 * m (2 * {self.m} = {2 * self.m}), as pgvector "
                             f"requires; raise ef_construction or lower m")
        return self


class RecallApiConfig(_Strict):
    """The recall HTTP API (``dropoutnet recall-api``, :mod:`dropoutnet.serving.recall_api`):
    its address, the environment variable holding its bearer token (the model service's
    rules: when set, every request but ``/healthz`` needs ``Authorization: Bearer <token>``)
    and the most database connections it keeps open (one per recall in flight)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8502, ge=0, le=65535)
    token_env: str = "DROPOUTNET_SERVING_TOKEN"
    connections: int = Field(default=8, ge=1, le=256)


class RetrievalConfig(_Strict):
    """Recall of the active version (:func:`dropoutnet.retrieval.recall`), the candidate pool
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

    @field_validator("filter_columns")
    @classmethod
    def _filter_columns(cls, v: list[str]) -> list[str]:
        for column in v:
            if not isinstance(column, str) or not _IDENT.match(column):
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


class ServingConfig(_Strict):
    """Where the daily DAG deploys each published version for the model service.

    ``base_path`` (default ``$DROPOUTNET_SERVING_ROOT`` or ``$DROPOUTNET_HOME/serving``) holds
    TensorFlow Serving's layout, ``<base_path>/<model>/<yyyymmdd>/saved_model.pb``, for the
    item tower (model ``item_model``, default ``<model_name>_item``) and, if ``deploy_user``,
    the user tower.  The newest ``keep_on_disk`` versions of each stay on disk.
    """

    base_path: Path | None = None
    item_model: str | None = None
    user_model: str | None = None
    deploy_user: bool = True
    keep_on_disk: int = Field(default=7, ge=1)

    @field_validator("item_model", "user_model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        return None if v is None else served_name(v, "model name")


class OracleTable(_Strict):
    table: str
    id: str
    vector: str
    bias: str | None = None


class OracleConfig(_Strict):
    """Planted preferences (synthetic data only): score = user.vector . item.vector + item.bias."""

    users: OracleTable
    items: OracleTable


class GateConfig(_Strict):
    """Publish a new version only if its ``metric`` on the bizdate's cold items is at least
    the active version's (measured on the same users and items) times ``1 - tolerance``."""

    metric: str = "recall@50"
    tolerance: float = Field(default=0.05, ge=0, le=1)


class EvaluationConfig(_Strict):
    """What the evaluate task measures.

    ``warm_holdout_share``: the share of the bizdate's returning users (by a stable hash of
    user and bizdate) whose exposures of older items on the bizdate are kept out of training
    to measure the warm-item split.  Cold items and cold users are held out whole.
    """

    k: list[int] = Field(default_factory=lambda: [20, 50, 100])
    warm_holdout_share: float = Field(default=0.1, ge=0.0, le=0.5)
    gate: GateConfig = Field(default_factory=GateConfig)
    oracle: OracleConfig | None = None

    @field_validator("k")
    @classmethod
    def _k(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 for k in v):
            raise ValueError("evaluation.k must be a non-empty list of positive integers")
        return sorted(set(v))

    @model_validator(mode="after")
    def _gate_metric(self) -> "EvaluationConfig":
        allowed = [f"{name}@{k}" for name in ("recall", "ndcg") for k in self.k]
        if self.gate.metric not in allowed:
            raise ValueError(f"evaluation.gate.metric {self.gate.metric!r} is not measured; "
                             f"allowed: {', '.join(allowed)} (from evaluation.k)")
        return self


class SampledNegativesConfig(_Strict):
    """Label-0 training samples of items the user did not touch, beside the real exposures.

    For each (user, day) of the training window with an exposure, ``per_user_day`` items drawn
    uniformly from the items that existed by the end of that day (created then or earlier,
    and before the bizdate: the bizdate's new items are the cold items, never trained on),
    skipping any item the user had an event with that day; their features are joined point in
    time like a real sample's.  The bizdate's own day gets none: its rows may be held out for
    evaluation, which must see real exposures only.  The draws hash ``(seed, user, day, k)``
    (no ``random()``), so a rerun of a bizdate writes the same samples; a (user, day) gets
    fewer than ``per_user_day`` only when its hashed draws run out of untouched items.

    Why: when exposures are self-selected (MovieLens records only the movies a user chose to
    rate), impressions without a click teach "liked, given watched", which ranks niche items
    first; negatives from the whole catalogue also teach which items get watched at all.
    """

    per_user_day: int = Field(description="items drawn per (user, day) with an exposure, 1-1000")
    seed: int = Field(default=0, description="changes which items are drawn")

    @field_validator("per_user_day", mode="before")
    @classmethod
    def _per_user_day(cls, v):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
            raise ValueError(f"per_user_day must be an integer from 1 to 1000 (items drawn per "
                             f"user and day), got {v!r}; to turn sampled negatives off, remove "
                             f"samples.sampled_negatives")
        return v


class SamplesConfig(_Strict):
    """Optional additions to the training samples (all off by default)."""

    sampled_negatives: SampledNegativesConfig | None = None


class RunsConfig(_Strict):
    """One pipeline run per model at a time (see :mod:`dropoutnet.registry`).

    A run (an Airflow DAG run, or ``dropoutnet run``) holds the model's run lock from its
    first task to its last.  Another run's first task waits up to ``lock_wait_minutes`` for
    it, then fails naming the holder.  A holder whose tasks stopped renewing the lock for
    ``lock_stale_minutes`` (its workers died) is taken over.
    """

    lock_wait_minutes: float = Field(default=60, ge=0)
    lock_stale_minutes: float = Field(default=30, gt=0)


class RetentionConfig(_Strict):
    """What the retention task (the DAG's last step, :mod:`dropoutnet.steps.retention`) keeps.

    Counted back from the newest bizdate the model has (the run's, or a later published
    one): the newest ``keep_versions`` published versions keep their embeddings and published
    towers; the sample, eval and boundary partitions and the training runs (checkpoints) of
    the last ``keep_days`` bizdates stay.  The active version, the newest published version
    before it and the run's own bizdate are never dropped.  Temporary and replaced folders
    (``.tmp-*``, ``.old-*``) older than ``leftover_hours`` are removed.
    """

    keep_versions: int = Field(default=7, ge=1)
    keep_days: int = Field(default=14, ge=1)
    leftover_hours: float = Field(default=6, gt=0)


class StreamConfig(_Strict):
    """The stream worker (``dropoutnet stream``, :mod:`dropoutnet.stream.worker`).

    It embeds items created within ``window_hours`` whose rows (or the rows their features
    read) change, in batches of up to ``batch_size`` changes collected for at most
    ``batch_wait_ms``, with the active version's item tower served at ``service_url`` (the
    model service, ``dropoutnet serve``; its bearer token from ``token_env`` when set).
    While it runs it serves Prometheus metrics on ``metrics_host:metrics_port`` (0 = off) and
    records its progress every ``heartbeat_seconds``; a slot that no worker has read for
    ``stale_after_minutes`` is reported stale (it keeps the change log from being recycled).
    """

    window_hours: float = Field(default=24, gt=0)
    batch_size: int = Field(default=256, ge=1)
    batch_wait_ms: int = Field(default=200, ge=1)
    service_url: str = "http://127.0.0.1:8501"
    token_env: str = "DROPOUTNET_SERVING_TOKEN"
    retry_max_seconds: float = Field(default=30, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    heartbeat_seconds: float = Field(default=5, gt=0)
    stale_after_minutes: float = Field(default=30, gt=0)

    @field_validator("service_url")
    @classmethod
    def _service_url(cls, v: str) -> str:
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL with a host; for example "
                             "http://model-service:8501")
        return v


class StorageConfig(_Strict):
    """Where the derived tables live, and how the embedding tables store a vector.

    ``vector_type`` is the pgvector type of ``user_embeddings`` and ``item_embeddings``:
    ``vector`` (default) stores the model's float32s exactly; ``halfvec`` (pgvector >= 0.7)
    stores each rounded to the nearest float16 (within 2^-11, 0.05 %, of the model's), half
    the bytes per vector, for large catalogues: the HNSW index shrinks less, its neighbour
    lists keep their size, and near-ties in the top N may swap.  The tables of a schema hold
    one type: a config that says the other is refused by the embedding tasks and the stream
    worker with the fix (:func:`dropoutnet.vectors.ensure_tables`).
    """

    schema_: str = Field(default="dropoutnet", alias="schema")
    vector_type: Literal["vector", "halfvec"] = Field(
        default="vector", description="pgvector type of the embedding tables: vector "
        "(float32, the model's values exactly) or halfvec (float16, half the size)")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: str) -> str:
        return _identifier(v, "storage.schema")


class PipelineConfig(_Strict):
    cold_start_recall: ColdStartRecall
    raw: RawConfig
    features: list[FeatureSpec] = Field(min_length=1)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    samples: SamplesConfig = Field(default_factory=SamplesConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    runs: RunsConfig = Field(default_factory=RunsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)

    @model_validator(mode="after")
    def _features(self) -> "PipelineConfig":
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique; repeated: {dupes}")
        reserved = {"dt", "sample_date", "user_id", "item_id", self.cold_start_recall.label.name}
        clash = sorted(reserved & set(names))
        if clash:
            raise ValueError(f"feature names {clash} clash with sample columns {sorted(reserved)}")
        for side in ("user", "item"):
            if not any(f.side == side for f in self.features):
                raise ValueError(f"no {side} feature: the {side} tower needs at least one feature "
                                 f"in {side}_content or {side}_preference")
        for f in self.features:
            if f.source_table is not None:
                allowed = ("users",) if f.side == "user" else ("items", "authors", "item_text")
                if f.source_table not in allowed:
                    raise ValueError(f"feature {f.name!r} ({f.group}) reads {f.source!r}; a "
                                     f"{f.side} feature reads from {', '.join(allowed)}")
            if f.preference and f.preference.collect:
                table, _, column = f.preference.collect.partition(".")
                allowed = ("items", "authors") if f.side == "user" else ("users",)
                if table not in allowed or not _IDENT.match(column or ""):
                    raise ValueError(f"preference.collect {f.preference.collect!r} of {f.name!r} "
                                     f"must be table.column with table one of {', '.join(allowed)}")
        return self

    @model_validator(mode="after")
    def _no_id_features(self) -> "PipelineConfig":
        """A content feature reading the entity's own id is rejected unless ``allow_id``.

        A new item's (user's) id was never seen in training: its embedding row is untrained
        while warm entities are memorised by id, so the tower learns to lean on the id and the
        content path, the only one a cold entity has, is under-used.  An author id in
        item_content is not the item's id (a new item's author is known) and stays allowed.
        """
        own_ids = {
            "user_content": {f"users.{self.raw.users.columns['user_id']}"},
            "item_content": {f"items.{self.raw.items.columns['item_id']}",
                             f"item_text.{self.raw.item_text.columns['item_id']}"},
        }
        for i, f in enumerate(self.features):
            if f.source not in own_ids.get(f.group, ()):
                continue
            if not f.allow_id:
                raise ValueError(
                    f"features.{i} ({f.name!r}, {f.group}) reads {f.source!r}, the {f.side}'s own "
                    f"id: an id feature leaks for cold {f.side}s (a new {f.side}'s id was never "
                    f"trained, while warm {f.side}s are memorised by it), so it is not allowed in "
                    f"a content group; remove it, or set allow_id: true on it to keep it anyway")
            log.warning("feature %r (%s) reads %r, the %s's own id (allow_id: true): it carries "
                        "nothing for cold %ss and can make the model lean on memorised ids",
                        f.name, f.group, f.source, f.side, f.side)
        return self

    @model_validator(mode="after")
    def _distill_features(self) -> "PipelineConfig":
        """The distillation target's two vectors: a user and an item precomputed preference
        vector of the same length (the preference model's factors)."""
        names = self.model.losses.distill_features
        if not names:
            return self
        by_name = {f.name: f for f in self.features}
        found = []
        for name, side in zip(names, ("user", "item")):
            f = by_name.get(name)
            if f is None or f.group != f"{side}_preference" or f.kind != "vector" \
                    or not f.precomputed:
                raise ValueError(
                    f"model.losses.distill_features names {name!r} as the {side} vector; it "
                    f"must be a {side}_preference feature with kind: vector and precomputed: "
                    f"true (the preference model's {side} factors)")
            found.append(f)
        if found[0].dim != found[1].dim:
            raise ValueError(
                f"model.losses.distill_features: {found[0].name!r} has dim {found[0].dim} but "
                f"{found[1].name!r} has dim {found[1].dim}; the target is their inner product, "
                f"so both must be factors of the same preference model")
        guess = self.model.factor_prior_feature
        if guess:
            f = by_name.get(guess)
            if f is None or f.group != "item_content" or f.kind != "vector" \
                    or f.dim != found[1].dim:
                raise ValueError(
                    f"model.factor_prior_feature {guess!r} must be an item_content feature with "
                    f"kind: vector and dim {found[1].dim} (a guess of {found[1].name!r}); "
                    "name such a feature, or remove model.factor_prior_feature")
        return self

    @model_validator(mode="after")
    def _popularity_features_exist(self) -> "PipelineConfig":
        names = self.model.popularity_features or []
        by_name = {f.name: f for f in self.features}
        for name in names:
            f = by_name.get(name)
            if f is None or f.group != "item_content" or f.age:
                raise ValueError(
                    f"model.popularity_features names {name!r}, which is not an item_content "
                    "feature (age features excluded: a new item's age is always 0); name "
                    "item content features of the features list")
        if len(set(names)) != len(names):
            raise ValueError("model.popularity_features names a feature twice; list each once")
        return self

    @model_validator(mode="after")
    def _negatives_below_batch(self) -> "PipelineConfig":
        n = self.model.losses.num_negatives
        if n is not None and n >= self.training.batch_size:
            raise ValueError(
                f"model.losses.softmax_negatives ({n}) must be less than training.batch_size "
                f"({self.training.batch_size}): the negatives are other rows of the same batch; "
                f"lower softmax_negatives, raise batch_size, or use softmax_negatives: all")
        return self

    # -- helpers used across the package --

    @property
    def model_name(self) -> str:
        return self.cold_start_recall.model_name

    @property
    def vector_dim(self) -> int:
        """Length of the exported (and stored) user and item vectors: the towers' part and,
        with ``model.factor_prior``, one dimension per preference factor."""
        return self.model.vector_dim + factor_dim(self.features, self.model)

    @property
    def label_name(self) -> str:
        return self.cold_start_recall.label.name

    def features_of(self, *, side: str | None = None, group: str | None = None) -> list[FeatureSpec]:
        return [f for f in self.features
                if (side is None or f.side == side) and (group is None or f.group == group)]

    @property
    def binned_features(self) -> list[FeatureSpec]:
        """Numeric features: binned by the per-bizdate boundaries table."""
        return [f for f in self.features if f.kind == "numeric"]


def factor_dim(features: Sequence[FeatureSpec], model: ModelConfig) -> int:
    """The factor prior's share of the exported vectors: the item factors' dim, or 0."""
    if model.factor_prior <= 0:
        return 0
    item_factors = model.losses.distill_features[1]
    return int(next(f.dim for f in features if f.name == item_factors) or 0)


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


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read and validate a pipeline config; raise :class:`ConfigError` naming every problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline config {path} does not exist; pass --config FILE or set "
                          "DROPOUTNET_CONFIG")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipeline config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"pipeline config {path} must be a YAML mapping at the top level")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, f"invalid pipeline config {path}")) from None


def default_config_path() -> Path:
    """``DROPOUTNET_CONFIG`` or the demo config shipped in the repository."""
    env = os.environ.get("DROPOUTNET_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "config" / "pipeline.yaml"
