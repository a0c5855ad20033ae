"""Where models, checkpoints and exported versions live.

``<models root>/<model_name>/<bizdate>/{checkpoints, export/final, export/user, export/item}``
is a bizdate's working area: train and export replace it on every run.
``<models root>/<model_name>/published/<version>/export/{final,user,item}`` is the copy that
publish made when the version went live: a rerun of the live version's bizdate never
changes it before it passes the quality gate.
The models root is ``DROPOUTNET_MODELS_ROOT`` or ``$DROPOUTNET_HOME/models``; on a cluster
point it at shared storage.  The model version of a bizdate is the bizdate as ``yyyymmdd``
(TensorFlow Serving's version folders are integers).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import embedded_pg


def models_root() -> Path:
    env = os.environ.get("DROPOUTNET_MODELS_ROOT")
    return Path(env).resolve() if env else embedded_pg.home() / "models"


def model_version(bizdate: dt.date) -> str:
    return bizdate.strftime("%Y%m%d")


@dataclass(frozen=True)
class ModelPaths:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def final(self) -> Path:
        return self.export / "final"

    @property
    def user(self) -> Path:
        return self.export / "user"

    @property
    def item(self) -> Path:
        return self.export / "item"


def paths(model_name: str, bizdate: dt.date) -> ModelPaths:
    return ModelPaths(models_root() / model_name / bizdate.isoformat())


def serving_root(configured: Path | None = None) -> Path:
    """The model service's base folder: the config's ``serving.base_path``, else
    ``DROPOUTNET_SERVING_ROOT``, else ``$DROPOUTNET_HOME/serving``."""
    if configured is not None:
        return Path(configured).resolve()
    env = os.environ.get("DROPOUTNET_SERVING_ROOT")
    return Path(env).resolve() if env else embedded_pg.home() / "serving"


def published_paths(model_name: str, version: str) -> ModelPaths:
    """The published copy of ``version``'s exported towers (no checkpoints)."""
    return ModelPaths(models_root() / model_name / "published" / version)


def replace_dir(tmp: Path, target: Path) -> None:
    """Swap ``tmp`` into ``target`` (two renames; the old folder is removed afterwards)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def copy_dir(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a temporary sibling, never half-copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    shutil.copytree(source, tmp)
    replace_dir(tmp, target)
