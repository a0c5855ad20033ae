"""Where models, checkpoints and exported versions live.

``<models root>/<model_name>/<bizdate>/runs/<run id>/{checkpoints, export/{final,user,item},
train_report.json}`` is one training run of a bizdate.  Every train task starts a new run
folder, so nothing a reader may be using is ever written over; ``<bizdate>/CURRENT`` names the
bizdate's current run and is replaced in one atomic rename once the run's checkpoint is
complete: a train task killed at any point leaves the previous run current.
``<models root>/<model_name>/published/<version>.<run id>/export/{final,user,item}`` is the
copy publish makes of a run's towers, under a name no later run can take: the registry points
at it in the transaction that makes the version live.  (A bizdate folder without ``CURRENT``
is the layout before runs: its ``checkpoints`` and ``export`` are read as its only run.)
The models root is ``DROPOUTNET_MODELS_ROOT`` or ``$DROPOUTNET_HOME/models``; on a cluster
point it at shared storage.  The model version of a bizdate is the bizdate as ``yyyymmdd``
(TensorFlow Serving's version folders are integers).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from dropoutnet.core.failpoints import failpoint
from dropoutnet.core.locations import home


def models_root() -> Path:
    """Where every model's runs and published versions live: ``DROPOUTNET_MODELS_ROOT``, else
    ``$DROPOUTNET_HOME/models`` (on a cluster, shared storage all workers see)."""
    env = os.environ.get("DROPOUTNET_MODELS_ROOT")
    return Path(env).resolve() if env else home() / "models"


def model_version(bizdate: dt.date) -> str:
    """The model version of a bizdate, ``yyyymmdd``: an integer, as TensorFlow Serving's
    version folders must be, that sorts like the bizdates."""
    return bizdate.strftime("%Y%m%d")


@dataclass(frozen=True)
class ModelPaths:
    """The folders of one training run (or one published copy) under ``root``."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        """The Keras checkpoint and ``model_meta.json``: what export and warm start read."""
        return self.root / "checkpoints"

    @property
    def export(self) -> Path:
        """The folder of the run's three exported SavedModels."""
        return self.root / "export"

    @property
    def final(self) -> Path:
        """The whole model as one SavedModel: all features in, probability and score out."""
        return self.export / "final"

    @property
    def user(self) -> Path:
        """The user tower's SavedModel: user features in, the user's embedding out."""
        return self.export / "user"

    @property
    def item(self) -> Path:
        """The item tower's SavedModel: item features in, the item's embedding out."""
        return self.export / "item"


def bizdate_root(model_name: str, bizdate: dt.date) -> Path:
    """The folder of one bizdate's training runs and its ``CURRENT`` marker."""
    return models_root() / model_name / bizdate.isoformat()


def new_run_id(bizdate: dt.date) -> str:
    """A fresh training run's id: ``<yyyymmdd>-<utc time>-<random>``, sortable by start."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%H%M%S")
    return f"{model_version(bizdate)}-{now}-{uuid.uuid4().hex[:6]}"


def current_run(model_name: str, bizdate: dt.date) -> str | None:
    """The bizdate's current run id (``CURRENT``), or None before its first completed run."""
    marker = bizdate_root(model_name, bizdate) / "CURRENT"
    try:
        return marker.read_text().strip() or None
    except FileNotFoundError:
        return None


def set_current_run(model_name: str, bizdate: dt.date, run_id: str) -> None:
    """Make ``run_id`` the bizdate's current run: write ``CURRENT`` beside itself, rename it
    into place (atomic)."""
    root = bizdate_root(model_name, bizdate)
    tmp = root / f".CURRENT.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(run_id + "\n")
    os.replace(tmp, root / "CURRENT")


def run_paths(model_name: str, bizdate: dt.date, run_id: str) -> ModelPaths:
    """The folders of one training run of a bizdate, current or not."""
    return ModelPaths(bizdate_root(model_name, bizdate) / "runs" / run_id)


def paths(model_name: str, bizdate: dt.date) -> ModelPaths:
    """The bizdate's current run (the bizdate folder itself in the layout before runs)."""
    run = current_run(model_name, bizdate)
    root = bizdate_root(model_name, bizdate)
    return run_paths(model_name, bizdate, run) if run else ModelPaths(root)


def serving_root(configured: Path | None = None) -> Path:
    """The model service's base folder: the config's ``serving.base_path``, else
    ``DROPOUTNET_SERVING_ROOT``, else ``$DROPOUTNET_HOME/serving``."""
    if configured is not None:
        return Path(configured).resolve()
    env = os.environ.get("DROPOUTNET_SERVING_ROOT")
    return Path(env).resolve() if env else home() / "serving"


def published_paths(model_name: str, version: str, run_id: str | None = None) -> ModelPaths:
    """The published copy of one run's exported towers (no checkpoints); without ``run_id``
    the folder name of copies made before runs were recorded."""
    name = f"{version}.{run_id}" if run_id else version
    return ModelPaths(models_root() / model_name / "published" / name)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system or the file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(tmp: Path, target: Path) -> None:
    """Swap ``tmp`` into ``target``; the old folder is removed afterwards.

    Where the system can, the two folders trade places in one atomic step, so ``target`` is
    never missing, even to a process killed midway.  Elsewhere it takes two renames; a kill
    between them leaves ``target`` missing (and ``.<name>.old-*`` beside it) until the task is
    rerun.
    """
    if target.exists() and _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        return
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
    failpoint(f"copy_dir.{target.name}")
    replace_dir(tmp, target)
