"""The user tower and the item tower.

A tower turns one side's raw features into a vector of ``embedding_dim`` (L2-normalised unless
``model.normalization`` is ``none``) and, for the item tower with ``model.item_prior``, a
scalar prior:

    content features    -> concat -> content MLP ----------------------------.
    preference features -> concat -> preference MLP -> * row mask, and mask --+-> tower MLP
                                                                  (hidden)  -+-> linear -> L2 norm
                                                                             '-> linear -> prior

The prior reads the same hidden layer as the vector: it comes from the item's content, and
from its behaviour when it has any; a cold item's prior therefore comes from content alone.
With ``model.popularity_prior`` the item tower adds a linear model of its content features
(their sparse ``design`` columns, age features left out, or ``model.popularity_features``)
with fixed weights, fitted in closed form before training (:mod:`dropoutnet.model.popularity`),
times that setting, as its ``popularity`` output (zeros in training: it is kept out of the
losses).  With ``model.factor_prior`` both towers also output ``factors``: the user's
preference factors, and the direction of the item's factors or, for an item without them, of
a fixed content → factors ridge on the same design (:mod:`dropoutnet.model.factors`; zeros
in training too).

With ``model.linear_shortcut`` a linear map of the encoded inputs (content, masked preference
and the mask) is added to the output before normalisation: a wide path beside the MLPs, so a
near-linear relation (content to a preference model's factors, say) is one layer away instead
of having to survive the ReLU layers.  A cold row's preference part is zero there too.

**Preference dropout, decided once.**  The preference group's encoding of a row is its
preference-MLP output multiplied by a 0/1 row mask ``present * keep``, with no ``1/keep``
rescaling, and the mask itself is appended as one more input of the tower MLP (so the tower can
tell "no behaviour" from "behaviour that happens to encode near zero"):

* ``present`` is 1 when the row has at least one non-missing preference feature (numeric not
  NaN, categorical/tags not ``""``), else 0: a cold entity;
* ``keep`` is drawn per row from Bernoulli(1 - rate) in training only and is 1 at inference.

A row dropped during training is therefore encoded *exactly* as a cold entity at serving: both
see ``mask = 0``, a zero preference vector, and the same content path.  Content is never dropped.
``keep`` can be forced (a ``[n]`` float tensor) to test that equality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from dropoutnet.config import FeatureSpec, ModelConfig
from dropoutnet.model.features import (
    BuildsOnFirstCall,
    FeatureEncoder,
    RaggedIds,
    make_encoder,
    to_tensor,
)

__all__ = ["Tower", "mlp"]


def mlp(units: Sequence[int], name: str) -> keras.Sequential:
    """Dense + ReLU layers; no batch norm, whose train/inference gap would break the cold
    equality."""
    return keras.Sequential([keras.layers.Dense(u, activation="relu", name=f"dense_{i}")
                             for i, u in enumerate(units)], name=name)


class Tower(BuildsOnFirstCall, keras.layers.Layer):
    """One side's tower: ``call(features, training, keep) -> {"vector", "prior",
    "popularity"}`` (and ``"factors"`` with ``model.factor_prior``).

    ``vector`` is ``[n, embedding_dim]`` (unit length unless ``normalization: none``);
    ``prior`` is ``[n]``: the item prior, or zeros for the user tower and without
    ``model.item_prior``; ``popularity`` ``[n]`` and ``factors`` ``[n, factor dim]`` are the
    closed-form terms described above.
    """

    def __init__(self, side: str, features: Sequence[FeatureSpec], model: ModelConfig,
                 boundaries: Mapping[str, Sequence[float]], seed: int, **kwargs) -> None:
        super().__init__(name=f"{side}_tower", **kwargs)
        if side not in ("user", "item"):
            raise ValueError(f"side must be 'user' or 'item', not {side!r}")
        self.side = side
        self.content_specs = [f for f in features if f.group == f"{side}_content"]
        self.preference_specs = [f for f in features if f.group == f"{side}_preference"]
        if not self.content_specs and not self.preference_specs:
            raise ValueError(f"the {side} tower has no feature")
        self.dropout_rate = float(model.user_dropout_rate if side == "user"
                                  else model.item_dropout_rate)
        # encoders keyed by feature name: variable paths (and so warm start) follow the name
        self.encoders: dict[str, FeatureEncoder] = {
            f.name: make_encoder(f, model, boundaries)
            for f in self.content_specs + self.preference_specs}
        self.content_mlp = mlp(model.content_mlp, "content_mlp") if self.content_specs else None
        self.preference_mlp = (mlp(model.preference_mlp, "preference_mlp")
                               if self.preference_specs else None)
        self.tower_mlp = mlp(model.tower_mlp, "tower_mlp")
        self.output_layer = keras.layers.Dense(model.embedding_dim, name="output")
        self.shortcut = (keras.layers.Dense(model.embedding_dim, use_bias=False,
                                            name="linear_shortcut")
                         if model.linear_shortcut else None)
        self.normalize = model.normalization != "none"
        self.prior_layer = (keras.layers.Dense(1, name="prior")
                            if side == "item" and model.item_prior else None)
        self.popularity_weight = float(model.popularity_prior) if side == "item" else 0.0
        # the preference factors of the factor prior: this side's (user or item) feature
        self.factor_feature = (model.losses.distill_features[0 if side == "user" else 1]
                               if model.factor_prior > 0 else None)
        # an item content vector that already guesses the factors: it replaces the ridge
        self.factor_guess = model.factor_prior_feature if side == "item" else None
        has_map = side == "item" and self.factor_feature is not None and not self.factor_guess
        # the closed-form heads' inputs: the content features' design, age left out
        self.design_specs = ([f for f in self.content_specs if not f.age]
                             if self.popularity_weight > 0 or has_map else [])
        if (self.popularity_weight > 0 or has_map) and not self.design_specs:
            raise ValueError("model.popularity_prior and model.factor_prior need an item "
                             "content feature that is not an age feature; add one, or set "
                             "them to 0")
        width = sum(self.encoders[f.name].design_width for f in self.design_specs)
        # the popularity ridge's inputs: model.popularity_features, else the whole design
        chosen = model.popularity_features
        self.popularity_specs = [f for f in self.design_specs
                                 if self.popularity_weight > 0 and (not chosen or f.name in chosen)]
        self.popularity = self.factor_map = None
        if self.popularity_weight > 0:
            # the ridge's weights, the intercept last; set by fit_popularity, not by Adam
            popularity_width = sum(self.encoders[f.name].design_width
                                   for f in self.popularity_specs)
            self.popularity = self.add_weight(shape=(popularity_width + 1,),
                                              name="popularity_prior",
                                              initializer="zeros", trainable=False)
        if has_map:
            # content -> item factors, the intercept row last; set by fit_factors
            dim = self.encoders[self.factor_feature].design_width
            self.factor_map = self.add_weight(shape=(width + 1, dim), name="factor_map",
                                              initializer="zeros", trainable=False)
        self.seed_generator = keras.random.SeedGenerator(seed, name="dropout_seed")

    @property
    def feature_names(self) -> list[str]:
        """The raw inputs this tower reads: its content features, then its preference ones."""
        return [f.name for f in self.content_specs + self.preference_specs]

    def content_design(self, features: Mapping[str, tf.Tensor],
                       specs: Sequence[FeatureSpec] | None = None) -> tf.SparseTensor:
        """``[n, columns]``: the closed-form heads' inputs, each content feature's design
        (of ``specs``, default :attr:`design_specs`)."""
        return tf.sparse.concat(axis=1, sp_inputs=[
            self.encoders[f.name].design(features[f.name])
            for f in (self.design_specs if specs is None else specs)])

    def expected_popularity(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """float32 [n]: the popularity ridge's prediction (log1p of expected positives)."""
        design = self.content_design(features, self.popularity_specs)
        weights = tf.reshape(self.popularity[:-1], [-1, 1])
        return tf.sparse.sparse_dense_matmul(design, weights)[:, 0] + self.popularity[-1]

    def factors(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """float32 [n, factor dim]: the factor prior's side of the score.

        The user tower: the user's preference factors (zeros when the user has none).  The
        item tower: the direction (unit vector) of the item's factors, or, for an item without
        factors (a new one), of the content → factors ridge's prediction or of
        ``model.factor_prior_feature``."""
        encoder = self.encoders[self.factor_feature]
        own = encoder(features[self.factor_feature])
        if self.factor_guess:
            predicted = tf.cast(features[self.factor_guess], tf.float32)
        elif self.factor_map is None:
            return own
        else:
            predicted = tf.sparse.sparse_dense_matmul(
                self.content_design(features), self.factor_map[:-1]) + self.factor_map[-1]
        present = encoder.present(features[self.factor_feature])[:, None]
        return tf.math.l2_normalize(tf.where(present, own, predicted), axis=1)

    def preference_present(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """float32 [n]: 1 when the row has any non-missing preference feature, else 0."""
        flags = [self.encoders[f.name].present(features[f.name]) for f in self.preference_specs]
        return tf.cast(tf.reduce_any(tf.stack(flags, axis=1), axis=1), tf.float32)

    def preference_mask(self, features: Mapping[str, tf.Tensor], training: bool = False,
                        keep: tf.Tensor | None = None) -> tf.Tensor:
        """float32 [n, 1]: ``present * keep``; ``keep`` drawn in training unless forced."""
        return self._mask(self.preference_present(features), training, keep)

    def _mask(self, present: tf.Tensor, training: bool, keep: tf.Tensor | None) -> tf.Tensor:
        if keep is None:
            if training and self.dropout_rate > 0:
                draw = keras.random.uniform(tf.shape(present), seed=self.seed_generator)
                keep = tf.cast(draw >= self.dropout_rate, tf.float32)
            else:
                keep = tf.ones_like(present)
        return (present * tf.cast(keep, tf.float32))[:, None]

    def encode(self, features: Mapping[str, tf.Tensor], training: bool = False
               ) -> dict[str, tf.Tensor]:
        """What does not depend on the preference mask: each group's encoded inputs, its MLP's
        output and (with preference features) ``present``.  The costly part of a tower (the
        features' hashing and lookups, the group MLPs), computed once per batch however many
        masks are applied to it (:meth:`head`): the alignment loss encodes every item as
        trained, cold and warm."""
        encoding = {}
        if self.content_specs:
            content = tf.concat([self.encoders[f.name](features[f.name])
                                 for f in self.content_specs], axis=1)
            encoding["content"] = content
            encoding["content_hidden"] = self.content_mlp(content, training=training)
        if self.preference_specs:
            preference = tf.concat([self.encoders[f.name](features[f.name])
                                    for f in self.preference_specs], axis=1)
            encoding["preference"] = preference
            encoding["preference_hidden"] = self.preference_mlp(preference, training=training)
            encoding["present"] = self.preference_present(features)
        return encoding

    def mask(self, encoding: Mapping[str, tf.Tensor], training: bool = False,
             keep: tf.Tensor | None = None) -> tf.Tensor | None:
        """The preference mask of an :meth:`encode`\ d batch (``None`` without preference
        features): ``present * keep``, ``keep`` drawn in training unless forced."""
        if "present" not in encoding:
            return None
        return self._mask(encoding["present"], training, keep)

    def head(self, features: Mapping[str, tf.Tensor], encoding: Mapping[str, tf.Tensor],
             mask: tf.Tensor | None, training: bool = False) -> dict[str, tf.Tensor]:
        """The tower's outputs from an :meth:`encode`\ d batch and a preference mask."""
        parts, encoded = [], []
        if "content" in encoding:
            parts.append(encoding["content_hidden"])
            encoded.append(encoding["content"])
        if mask is not None:
            parts += [encoding["preference_hidden"] * mask, mask]
            encoded += [encoding["preference"] * mask, mask]
        hidden = self.tower_mlp(tf.concat(parts, axis=1), training=training)
        vector = self.output_layer(hidden)
        if self.shortcut is not None:
            vector += self.shortcut(tf.concat(encoded, axis=1))
        if self.normalize:
            vector = tf.math.l2_normalize(vector, axis=1)
        if self.prior_layer is None:
            prior = tf.zeros(tf.shape(vector)[:1], vector.dtype)
        else:
            prior = tf.reshape(self.prior_layer(hidden), [-1])
        # outside the losses, so not computed in training (the alignment's cold and warm
        # vectors would share it): no sparse design on the training hot path
        popularity = (self.popularity_weight * self.expected_popularity(features)
                      if self.popularity is not None and not training else tf.zeros_like(prior))
        out = {"vector": vector, "prior": prior, "popularity": popularity}
        if self.factor_feature is not None:  # outside the losses too
            out["factors"] = (tf.zeros_like(features[self.factor_feature], tf.float32)
                              if training else self.factors(features))
        return out

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False,
             keep: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        encoding = self.encode(features, training=training)
        return self.head(features, encoding, self.mask(encoding, training, keep),
                         training=training)


# rows of a design built at once
_DESIGN_BATCH = 4096


def design_matrix(tower: Tower, features: Mapping[str, np.ndarray | RaggedIds],
                  specs: Sequence[FeatureSpec] | None = None) -> sp.csr_matrix:
    """The content design (:meth:`Tower.content_design`) of the rows of ``features`` (raw or
    prepared, :func:`dropoutnet.model.features.prepare_features`), over
    ``specs`` (default: the tower's ``design_specs``), as a scipy CSR matrix."""
    specs = tower.design_specs if specs is None else specs
    columns = {f.name: features[f.name] if isinstance(features[f.name], RaggedIds)
               else np.asarray(features[f.name]) for f in specs}
    n = len(columns[specs[0].name])
    parts = []
    for start in range(0, n, _DESIGN_BATCH):
        batch = {name: to_tensor(value[start:start + _DESIGN_BATCH])
                 for name, value in columns.items()}
        design = tf.sparse.reorder(tower.content_design(batch, specs))
        index = design.indices.numpy()
        parts.append(sp.csr_matrix((design.values.numpy(), (index[:, 0], index[:, 1])),
                                   shape=tuple(design.dense_shape.numpy())))
    return sp.vstack(parts).tocsr()
