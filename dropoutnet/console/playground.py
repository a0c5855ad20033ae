"""The recall playground: what a user is recommended, and why it might be.

A user id and the recall API's own parameters (``n``, ``created_within_hours``,
``exclude_interacted``, ``ef_search``, ``filter.<column>``) give the active version's top-N
through :func:`dropoutnet.recall.retrieval.recall`, the function behind ``/v1/recall``, so the
list equals the API's for the same request.  Beside it: the user's latest events with each
item's content (the raw item row), and optionally another version's list for the same request
(``other``) with the items the two share.
"""

from __future__ import annotations

from typing import Any

from dropoutnet.config import PipelineConfig
from dropoutnet.core import sql
from dropoutnet.recall import retrieval
from dropoutnet.recall.api import parse_query

HISTORY = 20
LONG_VALUE = 8  # a raw value with more elements than this (an embedding) is shortened


def _short(value: Any) -> Any:
    if isinstance(value, list) and len(value) > LONG_VALUE:
        return [*value[:LONG_VALUE], f"… {len(value)} values"]
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + "…"
    return value


def item_content(cur, cfg: PipelineConfig, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each item's raw row (long values shortened), by id; items not in the table are left
    out."""
    if not item_ids:
        return {}
    sql.execute(cur, "console/item_rows.sql", params={"item_ids": list(item_ids)},
                items=cfg.raw.items)
    return {item: {k: _short(v) for k, v in row.items()} for item, row in cur.fetchall()}


def user_history(cur, cfg: PipelineConfig, user_id: str, limit: int = HISTORY
                 ) -> list[dict[str, Any]]:
    """The user's latest ``limit`` events, newest first."""
    sql.execute(cur, "console/user_events.sql", params={"user_id": user_id, "limit": limit},
                events=cfg.raw.events)
    return [{"item_id": item, "event_type": kind, "event_time": at}
            for item, kind, at in cur.fetchall()]


def playground(cur, cfg: PipelineConfig, pairs: list[tuple[str, str]],
               other: str | None = None) -> dict[str, Any]:
    """The answer for the recall API's query (its ``(name, value)`` pairs), with the user's
    history, every item's content and, with ``other``, that version's list too.  Raises
    what :func:`~dropoutnet.recall.retrieval.recall` raises for a bad request."""
    request = retrieval.check_request(cfg, **parse_query(pairs), names=retrieval.API_NAMES)
    answer = retrieval.recall_checked(cur, cfg, request, retrieval.API_NAMES)
    out: dict[str, Any] = {"request": dict(pairs), "recall": answer, "other": None}
    lists = [answer["items"]]
    if other is not None:
        beside = retrieval.recall_checked(cur, cfg, request, retrieval.API_NAMES, other)
        shared = {i["item_id"] for i in answer["items"]} & {i["item_id"] for i in beside["items"]}
        out["other"] = {**beside, "shared": len(shared)}
        lists.append(beside["items"])
    out["history"] = user_history(cur, cfg, request.user_id)
    ids = {i["item_id"] for items in lists for i in items} | {h["item_id"]
                                                             for h in out["history"]}
    out["content"] = item_content(cur, cfg, sorted(ids))
    return out
