"""The export step: the final, user and item SavedModels of the bizdate's current run
(:func:`dropoutnet.training.saved_models.export_models`), into the run's own folder."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core.errors import MissingDataError


def export(cfg: PipelineConfig, bizdate: dt.date) -> dict[str, Any]:
    """Export the bizdate's current run's checkpoint as its three SavedModels; a clear error
    when the train task has not written the checkpoint."""
    from dropoutnet.training.saved_models import (
        export_models,  # TensorFlow only when a task needs it
    )

    run = registry.current_run(cfg, bizdate)
    paths = registry.run_paths(cfg, bizdate, run)
    if not paths.checkpoints.exists():
        raise MissingDataError(f"no checkpoint for bizdate {bizdate} at {paths.checkpoints}: "
                               "run the train task first")
    return {"bizdate": bizdate.isoformat(), "run_id": run,
            **export_models(cfg, paths.checkpoints, paths.export)}
