"""The one pipeline config file, validated at load.

A pipeline is described by a single YAML file (see ``config/pipeline.yaml``):

* ``cold_start_recall`` is the template section of EasyRec's DropoutNet recipe, verbatim:
  model name and type, the label (its name, the SQL ``selection`` aggregate evaluated over one
  sample's events, and its type) and ``train_days``.  ``selection`` is SQL the pipeline runs:
  the config file is code.
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
from pathlib import Path
from typing import Sequence

import yaml
from pydantic import Field, ValidationError, model_validator

from dropoutnet.config.base import IDENT, ConfigError, Strict, format_errors
from dropoutnet.config.cold_start_recall import ColdStartRecall
from dropoutnet.config.evaluation import EvaluationConfig
from dropoutnet.config.features import FeatureSpec
from dropoutnet.config.model import ModelConfig
from dropoutnet.config.online import OnlineConfig
from dropoutnet.config.raw import RawConfig
from dropoutnet.config.retention import RetentionConfig
from dropoutnet.config.retrieval import RetrievalConfig
from dropoutnet.config.runs import RunsConfig
from dropoutnet.config.samples import SamplesConfig
from dropoutnet.config.serving import ServingConfig
from dropoutnet.config.storage import StorageConfig
from dropoutnet.config.stream import StreamConfig
from dropoutnet.config.training import TrainingConfig
from dropoutnet.core.locations import REPOSITORY

log = logging.getLogger(__name__)


class PipelineConfig(Strict):
    """The whole pipeline config file: one attribute per top-level section, validated together
    (cross-section checks below), plus the helpers the tasks use to look features up."""

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
    online: OnlineConfig = Field(default_factory=OnlineConfig)

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
                if table not in allowed or not IDENT.match(column or ""):
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
        """``cold_start_recall.model_name``: the key of the model's runs, versions and folders."""
        return self.cold_start_recall.model_name

    @property
    def vector_dim(self) -> int:
        """Length of the exported (and stored) user and item vectors: the towers' part and,
        with ``model.factor_prior``, one dimension per preference factor."""
        return self.model.vector_dim + factor_dim(self.features, self.model)

    @property
    def label_name(self) -> str:
        """The label's column name in the samples (``cold_start_recall.label.name``)."""
        return self.cold_start_recall.label.name

    def features_of(self, *, side: str | None = None, group: str | None = None) -> list[FeatureSpec]:
        """The features of one tower (``side``) and/or one group, in the config's order."""
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
    return REPOSITORY / "config" / "pipeline.yaml"
