"""``retention``: what the retention task keeps."""

from __future__ import annotations

from pydantic import Field

from dropoutnet.config.base import Strict


class RetentionConfig(Strict):
    """What the retention task (the DAG's last step, :mod:`dropoutnet.steps.retention`) keeps.

    Counted back from the newest bizdate the model has (the run's, or a later published
    one): the newest ``keep_versions`` published versions keep their embeddings and published
    towers; the sample, eval and boundary partitions, the served log's partitions and the
    training runs (checkpoints) of the last ``keep_days`` bizdates stay.  The active version,
    the newest published version before it and the run's own bizdate are never dropped.
    Temporary and replaced folders (``.tmp-*``, ``.old-*``) older than ``leftover_hours`` are
    removed.
    """

    keep_versions: int = Field(default=7, ge=1)
    keep_days: int = Field(default=14, ge=1)
    leftover_hours: float = Field(default=6, gt=0)

