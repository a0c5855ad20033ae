"""Deploy the active version's towers to the model service's base path (the DAG's last step).

TensorFlow Serving's layout: ``<serving root>/<model>/<yyyymmdd>/`` per version, for the item
tower and (``serving.deploy_user``) the user tower.  Each folder is copied beside its final
name (a hidden ``.<version>.tmp-*`` folder the server ignores) and renamed into place, so a
polling server never sees a half-copied version; a rerun of the bizdate replaces the folder,
which the server loads beside the one in service and swaps in when ready.  Only the active
version is deployed (publish comes first, behind the quality gate), from the copy publish
made.  The newest ``serving.keep_on_disk`` versions of each model are kept.

Then each model's ``<serving root>/<model>/version_policy.json`` names the active version,
TensorFlow Serving's ``model_version_policy { specific { versions: N } }`` as JSON::

    {"model_version_policy": {"specific": {"versions": [20261119]}}}

The model service loads the versions it names and answers requests without a version with
them, whatever newer folder is on disk (after ``dropoutnet rollback --to VERSION``, which
deploys the older version, the newer one is retired once the older one is loaded).  It is
written beside itself and renamed into place, after the version's folder; pruning never
removes a version named by the policy (the one in force, or the one being written).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db
from dropoutnet.core.errors import MissingDataError
from dropoutnet.registry import artifacts
from dropoutnet.serving.versions import POLICY_FILE, read_version_policy

log = logging.getLogger(__name__)


def served_models(cfg: PipelineConfig) -> dict[str, str]:
    """Tower side -> served model name."""
    s = cfg.serving
    out = {"item": s.item_model or f"{cfg.model_name}_item"}
    if s.deploy_user:
        out["user"] = s.user_model or f"{cfg.model_name}_user"
    return out


def _prune(model_dir: Path, keep: int, current: str) -> list[str]:
    """Remove version folders past the newest ``keep``, except ``current`` and the versions
    the policy in force names (the server may be serving them until the new policy)."""
    versions = sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()),
                      key=lambda p: int(p.name), reverse=True)
    pinned = {int(current)} | set(read_version_policy(model_dir).versions or ())
    removed = []
    for path in versions[keep:]:
        if int(path.name) not in pinned:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def write_version_policy(model_dir: Path, versions: list[str]) -> Path:
    """Write ``model_dir/version_policy.json`` naming ``versions`` (the model service serves
    those only): a temporary file beside it, renamed into place."""
    if not versions or not all(v.isdigit() for v in versions):
        raise ValueError(f"a version policy names integer versions, got {versions!r}")
    body = {"model_version_policy": {"specific": {"versions": [int(v) for v in versions]}}}
    path = model_dir / POLICY_FILE
    tmp = model_dir / f".{POLICY_FILE}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(body) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def deploy(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    """Copy the bizdate's version, which must be the active one, to the model service's base
    paths and point each model's version policy at it; skipped when a later bizdate is active
    (a backfill kept as superseded).  Returns the deployed folders and the pruned versions."""
    version = artifacts.model_version(bizdate)
    with db.transaction(url) as cur:
        active = registry.active(cur, cfg)
    if active is not None and active.bizdate > bizdate:  # a backfill kept as superseded
        return {"model_version": version, "deployed": {},
                "skipped": f"superseded by the active version {active.model_version}"}
    if active is None or active.model_version != version:
        raise MissingDataError(
            f"version {version} is not the active version "
            f"({active.model_version if active else 'none yet'}): run the publish task for "
            "that bizdate first (a version that failed the quality gate, or an older bizdate "
            "kept as superseded, is never deployed; `dropoutnet rollback --to VERSION` makes "
            "an older version active)")
    published = (artifacts.ModelPaths(active.export_path.parent) if active.export_path
                 else artifacts.published_paths(cfg.model_name, version))
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
    for model in deployed:
        policy = write_version_policy(root / model, [version])
        log.info("the model service serves %s version %s (%s)", model, version, policy)
    return {"model_version": version, "deployed": deployed, "removed_versions": removed}
