"""The DropoutNet model: feature encoders (``dropoutnet.model.features``), towers, losses, model.

Importing this package imports TensorFlow; the rest of the pipeline (config, SQL, Airflow
wiring) must not import it at module level.
"""

from dropoutnet.model.dropoutnet import ITEM_ID_KEY, ITEM_LOGQ_KEY, DropoutNet
from dropoutnet.model.losses import (
    distill_loss,
    item_log_frequency,
    pairwise_loss,
    pointwise_loss,
    softmax_loss,
)
from dropoutnet.model.towers import Tower

__all__ = ["DropoutNet", "ITEM_ID_KEY", "ITEM_LOGQ_KEY", "Tower", "distill_loss", "item_log_frequency",
           "pairwise_loss", "pointwise_loss", "softmax_loss"]
