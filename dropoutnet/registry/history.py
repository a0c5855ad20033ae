"""The activation history: every change of a model's active version, who made it and why.

Publish, a ``make_live`` run, ``dropoutnet rollback`` and the Airflow UI's **Make live** all
move the active version through :func:`activate`; a trigger on the ``active_version`` table
appends one ``activations`` row per change in the same transaction, so a change cannot happen
without its row (a hand-written ``UPDATE`` is recorded too, as action ``sql`` by its database
role), and the rows are append-only (the table refuses updates, deletes and truncation).

:class:`Change` says who and why: the actor (the Airflow user who triggered the run or pressed
the button, ``scheduler`` / ``backfill`` for runs nobody triggered, ``user@host`` on the
command line), where it came from (``airflow dag``, ``airflow ui``, ``cli``), the pipeline run,
the reason given; the action and the gate's verdict come from the step that acts.
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import asdict, dataclass
from typing import Any

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.registry.tables import execute

ACTIONS = ("publish", "make_live", "rollback", "sql")
SOURCES = ("airflow dag", "airflow ui", "cli", "sql")


def cli_actor() -> str:
    """Who runs a command on this machine: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Change:
    """Who changes the active version, from where, in which pipeline run and why."""

    actor: str
    source: str = "cli"
    pipeline_run: str | None = None
    reason: str | None = None

    @classmethod
    def cli(cls, pipeline_run: str | None = None, reason: str | None = None) -> "Change":
        """A change made by a command on this machine (``user@host``)."""
        return cls(cli_actor(), "cli", pipeline_run, reason)


def change_setting(change: Change, action: str, gate: dict[str, Any] | None = None) -> str:
    """The JSON the history trigger reads from the transaction's ``dropoutnet.activation``."""
    if action not in ACTIONS or change.source not in SOURCES:
        raise ValueError(f"unknown action {action!r} or source {change.source!r}")
    return json.dumps({**asdict(change), "action": action, "gate": gate}, default=str)


def activations(cur, cfg: PipelineConfig, version: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
    """The model's activation history, newest first (of changes to or from ``version`` when
    given; at most ``limit`` rows); empty before the registry's tables exist."""
    if not db.table_exists(cur, cfg.storage.schema_, "activations"):
        return []
    sql.execute(cur, "registry/activations.sql",
                params={"model_name": cfg.model_name, "model_version": version, "limit": limit},
                schema=cfg.storage.schema_, version=version, limit=limit)
    return db.fetch_dicts(cur)


def activate(cur, cfg: PipelineConfig, version: str, change: Change, action: str,
             gate: dict[str, Any] | None = None) -> None:
    """Make a recorded version the model's active one, in the caller's transaction, so a
    reader sees either the old active version or the new one; the history row (who, why,
    the gate's verdict) commits or rolls back with it."""
    execute(cur, cfg, "activate", model_version=version,
            change=change_setting(change, action, gate))
