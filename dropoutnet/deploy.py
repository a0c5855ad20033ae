"""Deploy the active version's towers to the model service's base path (the DAG's last step).

TensorFlow Serving's layout: ``<serving root>/<model>/<yyyymmdd>/`` per version, for the item
tower and (``serving.deploy_user``) the user tower.  Each folder is copied beside its final
name (a hidden ``.<version>.tmp-*`` folder the server ignores) and renamed into place, so a
polling server never sees a half-copied version; a rerun of the bizdate replaces the folder,
which the server loads beside the one in service and swaps in when ready.  Only the active
version is deployed (publish comes first, behind the quality gate), from the copy publish
made.  The newest ``serving.keep_on_disk`` versions of each model are kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

from . import artifacts, db, retrieval
from .config import PipelineConfig
from .samples import MissingDataError

log = logging.getLogger(__name__)


def served_models(cfg: PipelineConfig) -> dict[str, str]:
    """Tower side -> served model name."""
    s = cfg.serving
    out = {"item": s.item_model or f"{cfg.model_name}_item"}
    if s.deploy_user:
        out["user"] = s.user_model or f"{cfg.model_name}_user"
    return out


def _prune(model_dir: Path, keep: int, current: str) -> list[str]:
    versions = sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()),
                      key=lambda p: int(p.name), reverse=True)
    removed = []
    for path in versions[keep:]:
        if path.name != current:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def deploy(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    version = artifacts.model_version(bizdate)
    with db.transaction(url) as cur:
        active = retrieval.active_version(cur, cfg)
    if active != version:
        raise MissingDataError(
            f"version {version} is not the active version ({active or 'none yet'}): run the "
            "publish task for that bizdate first (a version that failed the quality gate is "
            "never deployed)")
    published = artifacts.published_paths(cfg.model_name, version)
    root = artifacts.serving_root(cfg.serving.base_path)
    deployed, removed = {}, {}
    for side, model in served_models(cfg).items():
        source = getattr(published, side)
        if not (source / "saved_model.pb").exists():
            raise MissingDataError(f"the published {side} tower of version {version} is "
                                   f"missing ({source}); rerun the publish task")
        target = root / model / version
        artifacts.copy_dir(source, target)
        deployed[model] = str(target)
        removed[model] = _prune(target.parent, cfg.serving.keep_on_disk, version)
        log.info("deployed %s version %s to %s", model, version, target)
    return {"model_version": version, "deployed": deployed, "removed_versions": removed}
