"""Write the trained model as three SavedModels, and load them for batch prediction.

:func:`export_models` rebuilds the trained model from its checkpoint folder (the features,
model config and boundaries recorded in ``model_meta.json``, not today's config) and writes

* ``export_dir/final``: all features -> ``probability``, ``logit``, ``score`` (the inner
  product of the two embeddings), ``user_embedding``, ``item_embedding`` and the towers' parts
  (``similarity``, ``prior``, ``popularity``, ``factor``, ``user_vector``, ``item_vector``);
* ``export_dir/user``: user features -> ``embedding`` (``vector_dim`` floats);
* ``export_dir/item``: item features -> ``embedding`` (with ``model.item_prior``, its entry
  after the tower's vector is the item's prior plus the global bias and its popularity prior,
  matched by a constant 1 in the user's; with ``model.factor_prior`` both end in the factor
  prior's part).

Each has one ``serving_default`` signature whose inputs are the *raw* features by name:
``tf.string [None]`` for categorical and tags, ``tf.float32 [None]`` for numeric (NaN =
missing), ``tf.float32 [None, dim]`` for vectors.  Hashing, binning (the boundaries are graph
constants) and lookups run inside, so the towers are separate models rather than graph surgery
on the final one (EasyRec's split broke on TF2), and the user and item exports compute exactly
the final model's towers: ``<user, item> == final.score``.

Each SavedModel is written to a temporary folder next to its target and renamed into place.
:func:`load_tower` / :func:`load_serving` load one with ``tf.saved_model.load`` (no Keras,
no project code needed) and predict in batches.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dropoutnet.config import PipelineConfig
from dropoutnet.model.dropoutnet import load_meta, load_trained_model
from dropoutnet.registry.artifacts import replace_dir

__all__ = ["export_models", "load_serving", "load_tower"]

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"


def _write(model: keras.Model, fn: Callable, signature: dict[str, tf.TensorSpec],
           target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=fn, input_signature=[signature])
    archive.write_out(str(tmp), verbose=False)
    replace_dir(tmp, target)


def export_models(cfg: PipelineConfig, checkpoint_dir: Path, export_dir: Path) -> dict[str, Any]:
    """Write ``final``, ``user`` and ``item`` SavedModels under ``export_dir``; return their paths.

    ``cfg`` is only compared with the checkpoint's recorded features: a difference is logged
    (the export always matches what was trained).
    """
    checkpoint_dir, export_dir = Path(checkpoint_dir), Path(export_dir)
    meta = load_meta(checkpoint_dir)
    trained = [f.name for f in meta["features"]]
    if trained != [f.name for f in cfg.features]:
        log.warning("the config's features differ from the trained model's; exporting the "
                    "trained ones: %s", trained)
    model = load_trained_model(checkpoint_dir)
    export_dir.mkdir(parents=True, exist_ok=True)

    def final(x):
        return model(x, training=False)

    def user(x):
        return {"embedding": model.user_embedding(x, training=False)}

    def item(x):
        return {"embedding": model.item_embedding(x, training=False)}

    paths = {}
    for name, fn, side in (("final", final, None), ("user", user, "user"),
                           ("item", item, "item")):
        target = export_dir / name
        _write(model, fn, model.input_signature(side), target)
        paths[name] = str(target)
        log.info("exported %s model to %s", name, target)
    return {
        **paths,
        "embedding_dim": int(meta["embedding_dim"]),
        "vector_dim": int(meta["model"].vector_dim),
        "user_features": [f.name for f in model.user_specs],
        "item_features": [f.name for f in model.item_specs],
        "checkpoint_dir": str(checkpoint_dir),
    }


def _as_input(value: np.ndarray, spec: tf.TensorSpec) -> tf.Tensor:
    if spec.dtype == tf.string:
        value = np.asarray(value)
        if value.dtype == object:
            value = value.copy()
            value[np.equal(value, None)] = ""
        return tf.constant(value, tf.string)
    return tf.constant(np.asarray(value, dtype=spec.dtype.as_numpy_dtype), spec.dtype)


def load_serving(path: Path, batch_size: int = 4096
                 ) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """Load a SavedModel's ``serving_default``; return ``predict(features) -> {output: array}``.

    ``features`` maps every input name of the signature to an array of n rows (extra keys are
    ignored); the model runs on slices of ``batch_size`` rows.
    """
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures[SIGNATURE]
    inputs: dict[str, tf.TensorSpec] = signature.structured_input_signature[1]
    outputs = list(signature.structured_outputs)

    def predict(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = sorted(set(inputs) - set(features))
        if missing:
            raise KeyError(f"{path} needs features {missing}; the batch has {sorted(features)}")
        n = len(features[next(iter(inputs))])
        parts: dict[str, list[np.ndarray]] = {k: [] for k in outputs}
        for start in range(0, n, batch_size):
            out = signature(**{k: _as_input(np.asarray(features[k])[start:start + batch_size],
                                            spec)
                               for k, spec in inputs.items()})
            for k in outputs:
                parts[k].append(out[k].numpy())
        if n == 0:
            return {k: np.zeros([0] + [d or 0 for d in signature.structured_outputs[k].shape[1:]],
                                np.float32) for k in outputs}
        return {k: np.concatenate(v) for k, v in parts.items()}

    predict.model = loaded  # keep the variables alive with the function
    predict.input_names = sorted(inputs)
    return predict


def load_tower(path: Path, batch_size: int = 4096) -> Callable[[Mapping[str, np.ndarray]],
                                                               np.ndarray]:
    """Load an exported user or item tower; return ``embed(features) -> float32 [n, dim]``."""
    serve = load_serving(path, batch_size)

    def embed(features: Mapping[str, np.ndarray]) -> np.ndarray:
        return serve(features)["embedding"]

    embed.input_names = serve.input_names
    return embed
