"""The DropoutNet model: two towers, a learned score calibration, and its training step.

``DropoutNet(features, model_config, boundaries, seed)`` is a ``keras.Model`` holding

* ``user_tower`` and ``item_tower`` (:class:`~dropoutnet.model.towers.Tower`), each ending in
  an L2-normalised vector, so ``score = <user, item>`` is a cosine in [-1, 1];
* ``scale`` (initialised to 5) and ``bias``: ``probability = sigmoid(scale * score + bias)``.

Inputs are the raw feature tensors keyed by feature name (see :mod:`dropoutnet.features`).
A training batch is ``(x, labels)`` where ``x`` may also carry ``item_id`` (strings) and
``item_logq`` (float, log of the item's sampling frequency): they are used only by the in-batch
softmax (to mask other rows holding the same item, and for the logQ correction), never as
features.

``train_step`` computes the weighted sum of the pointwise, pairwise and softmax losses
(``model.losses`` in the config), applies Adam, and reports ``loss``, ``pointwise_loss``,
``pairwise_loss``, ``softmax_loss`` and ``auc`` (under preference dropout) as epoch means, so
``model.fit`` works unchanged, including under a ``tf.distribute`` strategy (the in-batch
pairwise and softmax terms are then computed per replica).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from dropoutnet.config import FeatureSpec, LossConfig, ModelConfig
from dropoutnet.features import input_signature
from dropoutnet.model.losses import pairwise_loss, pointwise_loss, softmax_loss
from dropoutnet.model.towers import Tower

__all__ = ["DropoutNet", "ITEM_ID_KEY", "ITEM_LOGQ_KEY"]

ITEM_ID_KEY = "item_id"
ITEM_LOGQ_KEY = "item_logq"


class DropoutNet(keras.Model):
    """User tower, item tower, cosine score and a learned sigmoid calibration."""

    def __init__(self, features: Sequence[FeatureSpec], model_config: ModelConfig,
                 boundaries: Mapping[str, Sequence[float]], seed: int = 42, **kwargs) -> None:
        super().__init__(name="dropoutnet", **kwargs)
        self.feature_specs = list(features)
        self.model_config = model_config
        self.loss_config: LossConfig = model_config.losses
        self.user_specs = [f for f in self.feature_specs if f.side == "user"]
        self.item_specs = [f for f in self.feature_specs if f.side == "item"]
        self.user_tower = Tower("user", self.user_specs, model_config, boundaries, seed=seed)
        self.item_tower = Tower("item", self.item_specs, model_config, boundaries, seed=seed + 1)
        self.scale = self.add_weight(shape=(), name="scale",
                                     initializer=keras.initializers.Constant(5.0))
        self.bias = self.add_weight(shape=(), name="bias", initializer="zeros")
        self._trackers = {name: keras.metrics.Mean(name=name)
                          for name in ("loss", "pointwise_loss", "pairwise_loss",
                                       "softmax_loss")}
        self._auc = keras.metrics.AUC(name="auc", num_thresholds=500)

    # -- inference ---------------------------------------------------------------------------

    def user_embedding(self, features: Mapping[str, tf.Tensor], training: bool = False,
                       keep: tf.Tensor | None = None) -> tf.Tensor:
        return self.user_tower(features, training=training, keep=keep)

    def item_embedding(self, features: Mapping[str, tf.Tensor], training: bool = False,
                       keep: tf.Tensor | None = None) -> tf.Tensor:
        return self.item_tower(features, training=training, keep=keep)

    def logits(self, score: tf.Tensor) -> tf.Tensor:
        return self.scale * score + self.bias

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False,
             user_keep: tf.Tensor | None = None, item_keep: tf.Tensor | None = None
             ) -> dict[str, tf.Tensor]:
        """``{"user_embedding", "item_embedding", "score", "probability"}`` for each row."""
        user = self.user_embedding(features, training=training, keep=user_keep)
        item = self.item_embedding(features, training=training, keep=item_keep)
        score = tf.reduce_sum(user * item, axis=1)
        return {"user_embedding": user, "item_embedding": item, "score": score,
                "probability": tf.sigmoid(self.logits(score))}

    def input_signature(self, side: str | None = None) -> dict[str, tf.TensorSpec]:
        """Raw-input signature of one side (``user``/``item``) or of both (``None``)."""
        specs = {"user": self.user_specs, "item": self.item_specs,
                 None: self.user_specs + self.item_specs}[side]
        return input_signature(specs)

    def build_from_signature(self) -> None:
        """Create every variable by calling the model on a one-row dummy batch."""
        dummy = {name: tf.zeros([1] + list(spec.shape[1:]), spec.dtype)
                 for name, spec in self.input_signature().items()}
        self(dummy, training=False)

    # -- training ----------------------------------------------------------------------------

    def compute_losses(self, x: Mapping[str, tf.Tensor], labels: tf.Tensor,
                       training: bool = True) -> dict[str, tf.Tensor]:
        """``loss`` (weighted total), each term's loss (0 when its weight is 0), ``outputs``."""
        out = self(x, training=training)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.float32)
        cfg = self.loss_config
        zero = tf.zeros([], tf.float32)
        pointwise = pairwise = softmax = zero
        if cfg.pointwise_weight > 0:
            pointwise = pointwise_loss(labels, out["score"], self.scale, self.bias)
        if cfg.pairwise_weight > 0:
            pairwise = pairwise_loss(labels, self.scale * out["score"])
        if cfg.softmax_weight > 0:
            logq = x.get(ITEM_LOGQ_KEY) if cfg.softmax_logq else None
            if cfg.softmax_logq and logq is None:
                raise ValueError(f"model.losses.softmax_logq is on but the batch has no "
                                 f"{ITEM_LOGQ_KEY!r}: pass item_ids to train_model")
            softmax = softmax_loss(
                out["user_embedding"], out["item_embedding"], labels, x.get(ITEM_ID_KEY), logq,
                num_negatives=cfg.num_negatives, margin=cfg.softmax_margin,
                scale=cfg.softmax_scale, sv_coefficient=cfg.softmax_sv_coefficient)
        total = (cfg.pointwise_weight * pointwise + cfg.pairwise_weight * pairwise
                 + cfg.softmax_weight * softmax)
        return {"loss": total, "pointwise_loss": pointwise, "pairwise_loss": pairwise,
                "softmax_loss": softmax, "outputs": out}

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [*self._trackers.values(), self._auc]

    def train_step(self, data):
        x, labels = data[0], data[1]
        with tf.GradientTape() as tape:
            parts = self.compute_losses(x, labels, training=True)
        grads = tape.gradient(parts["loss"], self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(parts, labels)

    def test_step(self, data):
        x, labels = data[0], data[1]
        return self._update_metrics(self.compute_losses(x, labels, training=False), labels)

    def _update_metrics(self, parts: dict[str, tf.Tensor], labels: tf.Tensor) -> dict:
        for name, tracker in self._trackers.items():
            tracker.update_state(parts[name])
        self._auc.update_state(tf.reshape(labels, [-1]), parts["outputs"]["probability"])
        return {m.name: m.result() for m in self.metrics}
