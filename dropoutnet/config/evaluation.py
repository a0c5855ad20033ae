"""``evaluation``: what the evaluate task measures and the quality gate."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from dropoutnet.config.base import Strict


class OracleTable(Strict):
    """One side of the planted preferences: the table, its id column, its latent vector column
    and (items only) the column of a per-item bias added to the score."""

    table: str
    id: str
    vector: str
    bias: str | None = None


class OracleConfig(Strict):
    """Planted preferences (synthetic data only): score = user.vector . item.vector + item.bias."""

    users: OracleTable
    items: OracleTable


class GateConfig(Strict):
    """Publish a new version only if its ``metric`` on the bizdate's cold items is at least
    the active version's (measured on the same users and items) times ``1 - tolerance``."""

    metric: str = "recall@50"
    tolerance: float = Field(default=0.05, ge=0, le=1)


class EvaluationConfig(Strict):
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

