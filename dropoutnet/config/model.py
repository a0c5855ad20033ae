"""``model``: the towers, the score and the losses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dropoutnet.config.base import Strict


class LossConfig(Strict):
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


class ModelConfig(Strict):
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
