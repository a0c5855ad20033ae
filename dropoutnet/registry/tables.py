"""The registry's tables and the one way its statements run (``sql_templates/registry/``):
every statement is about one model, so each gets the model's name and the config's schema."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    """Create the registry's tables in the config's schema if they are missing (idempotent)."""
    db.ensure_ddl(url, "registry/ddl/model_tables.sql", schema=cfg.storage.schema_)


def config_hash(cfg: PipelineConfig) -> str:
    """A short fingerprint of the whole config, recorded with each training run."""
    text = json.dumps(cfg.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def execute(cur, cfg: PipelineConfig, template: str, **params: Any) -> None:
    """Run ``sql_templates/registry/<template>.sql`` for ``cfg``'s model with ``params``."""
    sql.execute(cur, f"registry/{template}.sql", params={"model_name": cfg.model_name, **params},
                schema=cfg.storage.schema_)
