"""The DropoutNet model: two towers, an optional item prior, a learned score calibration.

``DropoutNet(features, model_config, boundaries, seed)`` is a ``keras.Model`` holding

* ``user_tower`` and ``item_tower`` (:class:`~dropoutnet.model.towers.Tower`): vectors ``u``,
  ``v`` (unit length unless ``model.normalization`` is ``none``) and, with
  ``model.item_prior``, the item's scalar ``prior``;
* ``scale`` (initialised to 5 for unit vectors, 1 otherwise) and ``bias``.

**One score, one inner product.**  The model's logit of a click is

    logit = scale * <u, v> + prior + bias

and what retrieval ranks by is the inner product of the *exported* vectors
(:meth:`user_embedding`, :meth:`item_embedding`), which the model also returns as ``score``:

* with ``item_prior``: user ``[scale * u, 1]``, item ``[v, prior + bias + popularity]``, so
  ``score == logit + popularity`` (``popularity`` is ``model.popularity_prior`` times the
  item's expected reach from content, 0 without it: :mod:`dropoutnet.model.popularity`;
  ``logit`` is a log-odds, negative for an item less likely than not to be clicked);
* with ``model.factor_prior`` both vectors also end in the factor prior's part, user
  ``c * U_u``, item ``d_i``, and ``score`` gains ``factor = c * <U_u, d_i>``
  (:mod:`dropoutnet.model.factors`);
* without it: user ``scale * u``, item ``v``, so ``score == logit - bias``;
* ``normalization: cosine``: unit vectors ``u`` and ``v``, ``score`` is their cosine.

In every case ranking items by ``score`` is ranking them by ``logit`` (plus ``popularity``
and ``factor``).

Inputs are the raw feature tensors keyed by feature name (see :mod:`dropoutnet.model.features`).
A training batch is ``(x, labels)`` where ``x`` may also carry ``item_id`` (strings) and
``item_logq`` (float, log of the item's sampling frequency): they are used only by the in-batch
softmax (to mask other rows holding the same item, and for the logQ correction), never as
features.

``train_step`` computes the weighted sum of the pointwise, pairwise, softmax and distillation losses
(``model.losses`` in the config), applies Adam, and reports ``loss``, each term, and ``auc`` (under
preference dropout) as epoch means, so ``model.fit`` works unchanged, including under a
``tf.distribute`` strategy (:mod:`dropoutnet.training.cluster`): the in-batch terms (pairwise,
softmax negatives) are then computed within each replica's share of the global batch, and the loss
is divided by the number of replicas before the gradient, because the optimizer sums the replicas'
gradients.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from dropoutnet.config import FeatureSpec, LossConfig, ModelConfig, PipelineConfig
from dropoutnet.model.features import BuildsOnFirstCall, input_signature
from dropoutnet.model.losses import (
    distill_loss,
    masked_mean,
    pairwise_loss,
    pointwise_loss,
    softmax_loss,
)
from dropoutnet.model.optimizer import Adam
from dropoutnet.model.towers import Tower

__all__ = ["DropoutNet", "ITEM_ID_KEY", "ITEM_LOGQ_KEY"]

ITEM_ID_KEY = "item_id"
ITEM_LOGQ_KEY = "item_logq"


class DropoutNet(BuildsOnFirstCall, keras.Model):
    """User tower, item tower (with an optional prior), scaled score and a bias."""

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
        initial_scale = 1.0 if model_config.normalization == "none" else 5.0
        self.scale = self.add_weight(shape=(), name="scale",
                                     initializer=keras.initializers.Constant(initial_scale))
        self.bias = self.add_weight(shape=(), name="bias", initializer="zeros")
        self.distill_features = self.loss_config.distill_features
        self.factor_scale = None
        if model_config.factor_prior > 0:
            # c of the factor prior (weight / the factor score's spread): set by
            # fit_factors, not by Adam
            self.factor_scale = self.add_weight(shape=(), name="factor_scale",
                                                initializer="zeros", trainable=False)
        if self.loss_config.distill_weight > 0:
            # the affine map from the score to the preference model's U.V (only correlation
            # matters: the score's own scale is set by the other losses)
            self.distill_scale = self.add_weight(
                shape=(), name="distill_scale",
                initializer=keras.initializers.Constant(1.0 / initial_scale))
            self.distill_bias = self.add_weight(shape=(), name="distill_bias",
                                                initializer="zeros")
        names = ("loss", "pointwise_loss", "pairwise_loss", "softmax_loss", "distill_loss",
                 "align_loss")
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self._auc = keras.metrics.AUC(name="auc", num_thresholds=500)

    # -- inference ---------------------------------------------------------------------------

    @property
    def has_prior(self) -> bool:
        """Whether the exports carry the item prior dimension (``model.item_prior``): user
        vectors end in a 1, item vectors in ``prior + popularity + bias``."""
        return self.model_config.item_prior

    def _export_user(self, user: Mapping[str, tf.Tensor]) -> tf.Tensor:
        vector = user["vector"]
        if self.model_config.normalization == "cosine":
            return vector
        vector = self.scale * vector
        if self.has_prior:
            vector = tf.concat([vector, tf.ones_like(vector[:, :1])], axis=1)
        if self.factor_scale is not None:
            vector = tf.concat([vector, self.factor_scale * user["factors"]], axis=1)
        return vector

    def _export_item(self, item: Mapping[str, tf.Tensor]) -> tf.Tensor:
        vector = item["vector"]
        if self.has_prior:
            prior = item["prior"] + item["popularity"] + self.bias
            vector = tf.concat([vector, prior[:, None]], axis=1)
        if self.factor_scale is not None:
            vector = tf.concat([vector, item["factors"]], axis=1)
        return vector

    def user_embedding(self, features: Mapping[str, tf.Tensor], training: bool = False,
                       keep: tf.Tensor | None = None) -> tf.Tensor:
        """The exported user vector, ``[n, vector_dim]`` (:attr:`PipelineConfig.vector_dim`)."""
        return self._export_user(self.user_tower(features, training=training, keep=keep))

    def item_embedding(self, features: Mapping[str, tf.Tensor], training: bool = False,
                       keep: tf.Tensor | None = None) -> tf.Tensor:
        """The exported item vector, ``[n, vector_dim]`` (:attr:`PipelineConfig.vector_dim`)."""
        return self._export_item(self.item_tower(features, training=training, keep=keep))

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False,
             user_keep: tf.Tensor | None = None, item_keep: tf.Tensor | None = None
             ) -> dict[str, tf.Tensor]:
        """Per row: ``user_embedding``, ``item_embedding`` (exported), ``score`` (their inner
        product), the towers' raw ``user_vector``, ``item_vector``, their ``similarity``,
        ``prior`` (0 without one), ``popularity`` and ``factor`` (the two closed-form terms of
        the score, 0 when off or in training), ``logit`` and ``probability``."""
        user = self.user_tower(features, training=training, keep=user_keep)
        item = self.item_tower(features, training=training, keep=item_keep)
        return self._outputs(user, item)

    def _outputs(self, user: Mapping[str, tf.Tensor], item: Mapping[str, tf.Tensor]
                 ) -> dict[str, tf.Tensor]:
        """:meth:`call`'s outputs from the two towers' outputs."""
        similarity = tf.reduce_sum(user["vector"] * item["vector"], axis=1)
        user_embedding = self._export_user(user)
        item_embedding = self._export_item(item)
        logit = self.scale * similarity + item["prior"] + self.bias
        factor = (self.factor_scale * tf.reduce_sum(user["factors"] * item["factors"], axis=1)
                  if self.factor_scale is not None else tf.zeros_like(logit))
        return {"user_embedding": user_embedding, "item_embedding": item_embedding,
                "score": tf.reduce_sum(user_embedding * item_embedding, axis=1),
                "user_vector": user["vector"], "item_vector": item["vector"],
                "similarity": similarity, "prior": item["prior"],
                "popularity": item["popularity"], "factor": factor, "logit": logit,
                "probability": tf.sigmoid(logit)}

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
        """``loss`` (weighted total), each term's loss (0 when its weight is 0), ``outputs``.

        Every term sees the same ranking score ``z = scale * similarity + prior``: pointwise
        on ``z + bias``, pairwise on ``z``, the softmax on ``softmax_scale * (similarity +
        prior / scale)`` (EasyRec's ``gamma * cosine`` plus the prior in the same units), the
        distillation on an affine map of ``z``.
        """
        cfg = self.loss_config
        if cfg.align_weight > 0:  # the item tower's encoding shared by its three masks
            out, align = self._aligned(x, training)
        else:
            out, align = self(x, training=training), tf.zeros([], tf.float32)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.float32)
        zero = tf.zeros([], tf.float32)
        pointwise = pairwise = softmax = distill = zero
        ranking = out["logit"] - self.bias
        if cfg.pointwise_weight > 0:
            pointwise = pointwise_loss(labels, out["logit"])
        if cfg.pairwise_weight > 0:
            pairwise = pairwise_loss(labels, ranking)
        if cfg.softmax_weight > 0:
            logq = x.get(ITEM_LOGQ_KEY) if cfg.softmax_logq else None
            if cfg.softmax_logq and logq is None:
                raise ValueError(f"model.losses.softmax_logq is on but the batch has no "
                                 f"{ITEM_LOGQ_KEY!r}: pass item_ids to train_model")
            item_bias = (cfg.softmax_scale * out["prior"] / self.scale) if self.has_prior else None
            softmax = softmax_loss(
                out["user_vector"], out["item_vector"], labels, x.get(ITEM_ID_KEY), logq,
                num_negatives=cfg.num_negatives, margin=cfg.softmax_margin,
                scale=cfg.softmax_scale, sv_coefficient=cfg.softmax_sv_coefficient,
                item_bias=item_bias)
        if cfg.distill_weight > 0:
            user_name, item_name = self.distill_features
            user_factors = tf.cast(x[user_name], tf.float32)
            item_factors = tf.cast(x[item_name], tf.float32)
            known = tf.logical_and(self.user_tower.encoders[user_name].present(user_factors),
                                   self.item_tower.encoders[item_name].present(item_factors))
            target = tf.reduce_sum(user_factors * item_factors, axis=1)
            distill = distill_loss(self.distill_scale * ranking + self.distill_bias, target,
                                   known)
        total = (cfg.pointwise_weight * pointwise + cfg.pairwise_weight * pairwise
                 + cfg.softmax_weight * softmax + cfg.distill_weight * distill
                 + cfg.align_weight * align)
        return {"loss": total, "pointwise_loss": pointwise, "pairwise_loss": pairwise,
                "softmax_loss": softmax, "distill_loss": distill, "align_loss": align,
                "outputs": out}

    def _aligned(self, x: Mapping[str, tf.Tensor], training: bool
                 ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """:meth:`call`'s outputs and the alignment loss: the mean squared distance between
        an item's cold and warm exported vectors.

        For each row whose item has behaviour, the item tower encodes it twice more: cold (its
        preference input masked, as for a new item) and warm (kept); the warm vector is a
        fixed target (stop-gradient), so the content path learns to place a new item where its
        behaviour would have put it, prior included (cf. ALDI, SIGIR 2023), while the task
        losses keep shaping the warm vector.  0 when no row has behaviour.  The three
        encodings differ only in the preference mask, so the features are encoded once
        (:meth:`Tower.encode`): the same values as three tower calls, in less time.
        """
        user = self.user_tower(x, training=training)
        tower = self.item_tower
        encoding = tower.encode(x, training=training)
        item = tower.head(x, encoding, tower.mask(encoding, training), training=training)
        out = self._outputs(user, item)
        if "present" not in encoding:  # no item preference feature: nothing to align
            return out, tf.zeros([], tf.float32)
        n = tf.shape(encoding["present"])[0]
        cold, warm = (tower.head(x, encoding, tower.mask(encoding, training, keep),
                                 training=training) for keep in (tf.zeros([n]), tf.ones([n])))
        cold, warm = self._export_item(cold), tf.stop_gradient(self._export_item(warm))
        return out, masked_mean(tf.reduce_sum(tf.square(cold - warm), axis=1),
                                encoding["present"])

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras 3's TensorFlow trainer, under a ``tf.distribute`` strategy, reads one batch
        before ``fit`` and ``strategy.reduce("MEAN", ...)``\ s it to build the model symbolically; a
        batch holding string features (ours) cannot be averaged, so ``fit`` fails.  The model is
        built and its optimizer too (:func:`build_model`) and it compiles no loss or metric, so
        there is nothing to build: skip it then (a private Keras hook; any other case goes to Keras
        as before)."""
        built = (self.built and all(layer.built for layer in self._flatten_layers())
                 and self.optimizer is not None and self.optimizer.built
                 and getattr(self, "_compile_loss", None) is None
                 and getattr(self, "_compile_metrics", None) is None)
        if built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [*self._trackers.values(), self._auc]

    def train_step(self, data):
        x, labels = data[0], data[1]
        with tf.GradientTape() as tape:
            parts = self.compute_losses(x, labels, training=True)
            loss = parts["loss"]
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            if replicas > 1:
                # Keras's optimizer sums the replicas' gradients (an all-reduce SUM), so each
                # replica's mean loss is divided by their number: the step is the gradient
                # of the mean over the global batch, as in one process (Keras's own losses
                # do the same in scale_loss_for_distribution)
                loss = loss / replicas
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        results = self._update_metrics(parts, labels)
        if replicas > 1:
            # Keras 3.15 reduces a step's logs across workers with reduce(MEAN, axis=0),
            # whatever distribute_reduction_method says, which fails on a scalar: give each
            # log one axis (the epoch's logs are read from the metrics, as scalars)
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def test_step(self, data):
        x, labels = data[0], data[1]
        return self._update_metrics(self.compute_losses(x, labels, training=False), labels)

    def _update_metrics(self, parts: dict[str, tf.Tensor], labels: tf.Tensor) -> dict:
        for name, tracker in self._trackers.items():
            tracker.update_state(parts[name])
        self._auc.update_state(tf.reshape(labels, [-1]), parts["outputs"]["probability"])
        return {m.name: m.result() for m in self.metrics}


# --- built from the config, checkpointed, rebuilt ------------------------------------------
#
# A trained model is a checkpoint folder: a ``tf.train.Checkpoint`` of every weight (and, in
# training, Adam's slots), keyed by the variable's path, beside ``model_meta.json``, the
# features, model config, boundaries and seed it was built from, so that it is rebuilt exactly
# whatever the config says later.

META_FILE = "model_meta.json"

def build_model(features: Sequence[FeatureSpec], model_config: ModelConfig,
                boundaries: Mapping[str, Sequence[float]], seed: int,
                learning_rate: float | None = None, weight_decay: float = 0.0,
                steps_per_execution: int = 1) -> DropoutNet:
    """A DropoutNet with every variable created; compiled with Adam when ``learning_rate``
    (AdamW when ``weight_decay`` > 0: :class:`dropoutnet.model.optimizer.Adam`, exact for
    the embedding tables' sparse gradients), running ``steps_per_execution`` training steps
    per call into TensorFlow (``training.steps_per_execution``).

    Seeds Python, NumPy and TensorFlow from ``seed`` first, so the same inputs give the same
    initial weights, dropout draws and shuffling.
    """
    keras.utils.set_random_seed(seed)
    model = DropoutNet(features, model_config, boundaries, seed=seed)
    model.build_from_signature()
    if learning_rate is not None:
        optimizer = Adam(learning_rate, weight_decay=weight_decay if weight_decay > 0 else None)
        model.compile(optimizer=optimizer, jit_compile=False,
                      steps_per_execution=steps_per_execution)
        model.optimizer.build(model.trainable_variables)
    return model


def _checkpoint_key(path: str) -> str:
    return path.replace("/", "-")


def checkpoint_variables(model: DropoutNet) -> dict[str, Any]:
    """Checkpoint key -> variable: the model's weights and, if compiled, the optimizer's slots.

    The optimizer's learning rate is left out on purpose: it comes from the config.
    """
    named = [(v.path, v) for v in model.weights]
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        # Keras uniquifies optimizer names (adam, adam_1, ...): key slots by a fixed prefix
        prefix = optimizer.name + "/"
        named += [("optimizer/" + v.path.removeprefix(prefix), v) for v in optimizer.variables
                  if not v.path.endswith("/learning_rate")]
    out: dict[str, Any] = {}
    for path, v in named:
        key = _checkpoint_key(path)
        if key in out:
            raise RuntimeError(f"two variables share the checkpoint key {key!r}")
        out[key] = v
    return out


def model_meta(cfg: PipelineConfig, boundaries: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """What :func:`load_trained_model` rebuilds the model from, written beside its checkpoint
    (``model_meta.json``): the features, the model config, the boundaries and the random
    seed."""
    return {
        "model_name": cfg.model_name,
        "features": [f.model_dump(mode="json", by_alias=True, exclude_none=True)
                     for f in cfg.features],
        "model": cfg.model.model_dump(mode="json"),
        "boundaries": {f.name: [float(b) for b in boundaries[f.name]]
                       for f in cfg.binned_features},
        "seed": cfg.training.seed,
        "embedding_dim": cfg.model.embedding_dim,
    }


def load_meta(checkpoint_dir: Path) -> dict[str, Any]:
    """``model_meta.json`` of a checkpoint folder, with ``features`` / ``model`` validated."""
    path = Path(checkpoint_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {checkpoint_dir} is not a trained "
                                "model folder (run the train task first)")
    meta = json.loads(path.read_text())
    meta["features"] = [FeatureSpec.model_validate(f) for f in meta["features"]]
    meta["model"] = ModelConfig.model_validate(meta["model"])
    return meta


def load_trained_model(checkpoint_dir: Path) -> DropoutNet:
    """Rebuild the exact trained model from ``model_meta.json`` and restore every weight.

    Unlike a warm start this is strict: every model weight must be in the checkpoint.
    """
    checkpoint_dir = Path(checkpoint_dir)
    meta = load_meta(checkpoint_dir)
    model = build_model(meta["features"], meta["model"], meta["boundaries"], meta["seed"])
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir}")
    weights = {_checkpoint_key(v.path): v for v in model.weights}
    tf.train.Checkpoint(**weights).read(latest).expect_partial().assert_existing_objects_matched()
    return model
