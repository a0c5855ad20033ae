"""``samples``: optional additions to the training samples."""

from __future__ import annotations

from pydantic import Field, field_validator

from dropoutnet.config.base import Strict


class SampledNegativesConfig(Strict):
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


class SamplesConfig(Strict):
    """Optional additions to the training samples (all off by default)."""

    sampled_negatives: SampledNegativesConfig | None = None

