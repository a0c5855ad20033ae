"""``serving``: where the daily DAG deploys each published version for the model service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dropoutnet.config.base import ServedName, Strict


class ServingConfig(Strict):
    """Where the daily DAG deploys each published version for the model service.

    ``base_path`` (default ``$DROPOUTNET_SERVING_ROOT`` or ``$DROPOUTNET_HOME/serving``) holds
    TensorFlow Serving's layout, ``<base_path>/<model>/<yyyymmdd>/saved_model.pb``, for the
    item tower (model ``item_model``, default ``<model_name>_item``) and, if ``deploy_user``,
    the user tower.  The newest ``keep_on_disk`` versions of each stay on disk.
    """

    base_path: Path | None = None
    item_model: ServedName("model name") | None = None
    user_model: ServedName("model name") | None = None
    deploy_user: bool = True
    keep_on_disk: int = Field(default=7, ge=1)

