"""``online``: how the served log is judged against what users did next."""

from __future__ import annotations

from pydantic import Field, field_validator

from dropoutnet.config.base import Strict


class OnlineConfig(Strict):
    """Online metrics (:mod:`dropoutnet.online`, the DAG's ``online_metrics`` task).

    An event of ``positive_events`` (a click, a like) counts for a served item when the same
    user acted on the same item within ``attribution_hours`` after it was served; where the
    raw events carry the response's ``request_id`` (the optional role
    ``raw.events.columns.request_id``) an event is matched to that response exactly.  With no
    ``positive_events`` the task writes nothing and says so: which events are positive is the
    data's, not a default's.  Intervals are percentile bootstraps over users
    (``bootstrap_samples`` resamples at ``confidence``), with a fixed ``seed``.
    """

    positive_events: list[str] = Field(
        default_factory=list, description="event types that are a positive reaction to a "
        "served item (e.g. [click, like]); none: online metrics are not computed")
    attribution_hours: float = Field(default=24, gt=0, le=24 * 30)
    bootstrap_samples: int = Field(default=1000, ge=50, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    seed: int = 0

    @field_validator("positive_events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        if any(not isinstance(e, str) or not e for e in v) or len(set(v)) != len(v):
            raise ValueError(f"must be distinct, non-empty event types, got {v!r}")
        return v
