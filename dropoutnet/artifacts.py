"""Where models, checkpoints and exported versions live.

``<models root>/<model_name>/<bizdate>/{checkpoints, export/final, export/user, export/item}``.
The models root is ``DROPOUTNET_MODELS_ROOT`` or ``$DROPOUTNET_HOME/models``; on a cluster
point it at shared storage.  The model version of a bizdate is the bizdate as ``yyyymmdd``
(TensorFlow Serving's version folders are integers).
"""

from __future__ import annotations

import datetime as dt
import os
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
