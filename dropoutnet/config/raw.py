"""``raw``: the user's own tables and the role columns the pipeline reads from each."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from dropoutnet.config.base import Identifier, Strict, identifier


class RawTable(Strict):
    """One raw table of the user's: its name and the role columns the pipeline needs."""

    table: Identifier("table")
    schema_: str | None = Field(default=None, alias="schema")
    columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str]) -> dict[str, str]:
        for role, column in v.items():
            identifier(column, f"column for {role!r}")
        return v


# The role columns each raw table must map (role -> meaning).
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    "events": ("user_id", "item_id", "event_type", "event_time"),
    "items": ("item_id", "author_id", "create_time"),
    "authors": ("author_id",),
    "item_text": ("item_id",),
    "users": ("user_id",),
}


class RawConfig(Strict):
    """``raw``: the five raw tables the pipeline reads (each with its role columns) and which
    event types are exposures, the events that make a (user, item, day) a sample."""

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
        """The raw table of a role name (``events``, ``items``, ...), for code that loops."""
        return getattr(self, name)

