"""``features``: every model input, declared once with its group and kind."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dropoutnet.config.base import RAW_TABLES, Identifier, OneOf, Strict, identifier

GROUPS = ("user_content", "user_preference", "item_content", "item_preference")
KINDS = ("categorical", "numeric", "tags", "vector")
AGGREGATES = ("count", "rate", "collect")


class PreferenceSpec(Strict):
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


class FeatureSpec(Strict):
    """One model input (an entry of ``features``): its name, its DropoutNet group (whose tower,
    content or preference), its kind (how it is encoded) and where its value comes from, a raw
    ``source`` column or a point-in-time ``preference`` statistic."""

    name: Identifier("feature name")
    group: OneOf("group", GROUPS)
    kind: OneOf("kind", KINDS)
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
            identifier(column, "source column")
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
        """The raw table role of ``source`` (``items`` of ``items.duration``), or None."""
        return self.source.partition(".")[0] if self.source else None

    @property
    def source_column(self) -> str | None:
        """The column of ``source`` (``duration`` of ``items.duration``), or None."""
        return self.source.partition(".")[2] if self.source else None

