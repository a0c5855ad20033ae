"""Raw features -> tensors the towers consume, computed inside the model.

Every transformation from the raw values the SQL side produces to dense vectors happens in
Keras layers, so the exported SavedModels take raw features and nothing outside the model
(no vocabulary file, no Python preprocessing) can drift from training.

One encoder per declared feature, chosen by its ``kind``:

* ``categorical`` (strings, ``""`` = missing): ``tf.strings.to_hash_bucket_fast`` into
  ``spec.buckets`` (or ``model.hash_buckets``) buckets; missing gets its own extra row, so a
  missing value never shares an embedding with a real one.
* ``numeric`` (float32, ``NaN`` = missing): bucketised by the bizdate's quantile boundaries,
  baked into the graph as constants; ``NaN`` gets its own reserved bucket.  The table has
  ``max(num_bins, len(boundaries) + 1) + 1`` rows so its shape stays the same from one day to
  the next (warm start) even when duplicate quantile edges collapse.
* ``tags`` (strings joined by ``spec.separator``, ``""`` = none): split, hashed, embedded and
  mean-pooled; a row without any tag encodes as the zero vector.
* ``vector`` (float32 ``[n, dim]``, zeros = missing): passed through as a dense input; ``NaN``
  entries count as 0, so an all-zero or all-``NaN`` row is missing (a cold entity when the
  vector is a precomputed preference feature, e.g. CF factors).

**Prepared inputs (training).**  Hashing strings is the same work every epoch, and a column of
Python strings is slow to shuffle and to make into a tensor, so training hashes each string
feature once, when its samples are first read (:func:`prepare_features`, with the very
functions the encoders call): a categorical value becomes its embedding row (int64), a tags
value its non-blank tags' buckets (:class:`RaggedIds`), an item id a 64-bit code
(:func:`item_codes`).  Every encoder takes either form and tells them apart by dtype, so the
exported towers still take raw strings, and the same row gives the same output both ways.

Each encoder also reports, per row, whether the feature is *present*.  The towers use this for
the preference groups only: a row without any present preference feature is a cold entity and is
encoded exactly like a row whose preference input was dropped during training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from dropoutnet.config import FeatureSpec, ModelConfig

__all__ = [
    "FeatureEncoder", "CategoricalEncoder", "NumericEncoder", "TagsEncoder", "VectorEncoder",
    "RaggedIds", "concat_columns", "input_signature", "item_codes", "make_encoder",
    "prepare_features", "prepared_signature", "table_rows", "to_numpy_batch", "to_tensor",
    "to_tensors",
]


class BuildsOnFirstCall:
    """A layer made of other layers, which build themselves from the real shapes of the first
    batch it passes them.

    Without a ``build`` of its own, Keras builds such a layer by first tracing its ``call``
    symbolically (``compute_output_spec``), which costs about as long again as the call: for
    the whole model, seconds of graph construction in every process that builds it (each
    train, export and evaluate task).  The weights come out the same either way: every
    initializer drew its random seed when its layer was constructed, not when it is built.
    """

    def build(self, input_shape=None) -> None:
        """Nothing to create before the first call (see the class)."""


class FeatureEncoder(BuildsOnFirstCall, keras.layers.Layer):
    """Base class: ``call(raw) -> [n, output_dim]`` and ``present(raw) -> bool [n]``.

    ``design(raw)`` is the feature's columns in a linear model, ``[n, design_width]`` sparse:
    the one-hot of the row its embedding looks up (the mean over tags), or the raw vector; the
    wide half of the item tower's popularity prior (:mod:`dropoutnet.model.popularity`).
    """

    def __init__(self, spec: FeatureSpec, **kwargs) -> None:
        super().__init__(name=spec.name, **kwargs)
        self.spec = spec

    @property
    def output_dim(self) -> int:  # pragma: no cover - abstract
        """Width of ``call``'s output: the columns this feature adds to its tower's input."""
        raise NotImplementedError

    @property
    def design_width(self) -> int:  # pragma: no cover - abstract
        """Width of ``design``: the columns this feature adds to a closed-form linear head."""
        raise NotImplementedError

    def present(self, raw: tf.Tensor) -> tf.Tensor:  # pragma: no cover - abstract
        """``bool [n]``: whether each row has a value; a row with no preference feature present
        is a cold entity, encoded as if its preference input had been dropped."""
        raise NotImplementedError

    def design(self, raw: tf.Tensor) -> tf.SparseTensor:  # pragma: no cover - abstract
        """``[n, design_width]`` sparse: the feature's columns in a linear model (the
        popularity and factor priors' ridges), matching the row its embedding reads."""
        raise NotImplementedError


def _one_hot(ids: tf.Tensor, width: int, values: tf.Tensor | None = None,
             rows: tf.Tensor | None = None, n: tf.Tensor | None = None) -> tf.SparseTensor:
    """``[n, width]`` sparse: ``values`` (default 1) at ``(rows[k], ids[k])`` (rows default
    ``0..n-1``); repeated positions add up when the matrix is multiplied."""
    ids = tf.cast(tf.reshape(ids, [-1]), tf.int64)
    rows = tf.range(tf.size(ids, out_type=tf.int64)) if rows is None else tf.cast(rows, tf.int64)
    n = tf.size(ids, out_type=tf.int64) if n is None else tf.cast(n, tf.int64)
    values = tf.ones_like(ids, tf.float32) if values is None else tf.cast(values, tf.float32)
    return tf.SparseTensor(tf.stack([rows, ids], axis=1), values, tf.stack([n, width]))


def categorical_ids(raw: tf.Tensor, buckets: int) -> tf.Tensor:
    """int64 per string: its hash bucket in ``[0, buckets)``, or ``buckets`` for ``""``."""
    ids = tf.strings.to_hash_bucket_fast(raw, buckets)
    return tf.where(tf.not_equal(raw, ""), ids, tf.constant(buckets, tf.int64))


def tag_tokens(raw: tf.Tensor, separator: str, buckets: int
               ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Every non-blank tag of every row, split on ``separator`` and stripped: its hash bucket
    (int64) and the row it belongs to (sorted), and the number of rows.  Blank tags
    (``"a,,b"``, ``" "``) are dropped after hashing, so only integers are gathered."""
    tokens = tf.strings.strip(tf.strings.split(raw, sep=separator))
    flat = tokens.flat_values
    kept = tf.not_equal(flat, "")
    return (tf.boolean_mask(tf.strings.to_hash_bucket_fast(flat, buckets), kept),
            tf.boolean_mask(tokens.value_rowids(), kept), tokens.nrows())


class CategoricalEncoder(FeatureEncoder):
    """Hash a string into ``buckets`` rows; ``""`` maps to the reserved last row."""

    def __init__(self, spec: FeatureSpec, buckets: int, embedding_dim: int, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.buckets = int(buckets)
        self.embedding_dim = int(embedding_dim)
        self.embedding = keras.layers.Embedding(self.buckets + 1, self.embedding_dim,
                                                name="embedding")

    @property
    def output_dim(self) -> int:
        """The embedding's width (``model.feature_embedding_dim``)."""
        return self.embedding_dim

    def present(self, raw: tf.Tensor) -> tf.Tensor:
        """A value is present unless it is the empty string (prepared: the reserved row)."""
        if raw.dtype.is_integer:  # prepared
            return tf.not_equal(raw, tf.constant(self.buckets, raw.dtype))
        return tf.not_equal(raw, "")

    @property
    def design_width(self) -> int:
        """One column per hash bucket, plus the missing value's reserved column."""
        return self.buckets + 1

    def ids(self, raw: tf.Tensor) -> tf.Tensor:
        """The embedding row per value: its hash bucket, or the last row when missing (a
        prepared column holds them already)."""
        return raw if raw.dtype.is_integer else categorical_ids(raw, self.buckets)

    def design(self, raw: tf.Tensor) -> tf.SparseTensor:
        """The one-hot of each value's embedding row."""
        return _one_hot(self.ids(raw), self.design_width)

    def call(self, raw: tf.Tensor) -> tf.Tensor:
        return self.embedding(self.ids(raw))


def table_rows(boundaries: Sequence[float], num_bins: int) -> int:
    """Rows of a numeric feature's embedding table: every bucket, plus the NaN row."""
    return max(int(num_bins), len(boundaries) + 1) + 1


class NumericEncoder(FeatureEncoder):
    """Bucketise by constant quantile edges; ``NaN`` goes to the reserved last row.

    Bucket ``i`` holds ``boundaries[i-1] <= x < boundaries[i]`` (``tf.raw_ops.Bucketize``).
    """

    def __init__(self, spec: FeatureSpec, boundaries: Sequence[float], num_bins: int,
                 embedding_dim: int, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        edges = np.asarray(list(boundaries), dtype=np.float64)
        if edges.size and not np.all(np.isfinite(edges)):
            raise ValueError(f"boundaries of numeric feature {spec.name!r} must be finite numbers; "
                             f"got {list(boundaries)}")
        self.boundaries = [float(b) for b in np.unique(edges)]  # sorted, duplicates collapsed
        self.rows = table_rows(self.boundaries, num_bins)
        self.missing_row = self.rows - 1
        self.embedding_dim = int(embedding_dim)
        self.embedding = keras.layers.Embedding(self.rows, self.embedding_dim, name="embedding")

    @property
    def output_dim(self) -> int:
        """The embedding's width (``model.feature_embedding_dim``)."""
        return self.embedding_dim

    def present(self, raw: tf.Tensor) -> tf.Tensor:
        """A value is present unless it is ``NaN``."""
        return tf.logical_not(tf.math.is_nan(raw))

    def bucket(self, raw: tf.Tensor) -> tf.Tensor:
        """Bucket index per row (``missing_row`` for NaN)."""
        ok = self.present(raw)
        if self.boundaries:
            ids = tf.raw_ops.Bucketize(input=tf.where(ok, raw, tf.zeros_like(raw)),
                                       boundaries=self.boundaries)
        else:
            ids = tf.zeros_like(raw, dtype=tf.int32)
        return tf.where(ok, ids, tf.constant(self.missing_row, tf.int32))

    @property
    def design_width(self) -> int:
        """One column per embedding row: every bucket and the ``NaN`` row."""
        return self.rows

    def design(self, raw: tf.Tensor) -> tf.SparseTensor:
        """The one-hot of each value's bucket."""
        return _one_hot(self.bucket(raw), self.rows)

    def call(self, raw: tf.Tensor) -> tf.Tensor:
        return self.embedding(self.bucket(raw))


class TagsEncoder(FeatureEncoder):
    """Split on the separator, hash each tag, mean-pool the embeddings; no tag -> zeros.

    A blank tag (``"a,,b"``, ``" "``) counts for nothing: it is dropped after hashing, so only
    integers are gathered.  (Pooling with one fused ``SparseSegmentSum`` over the table was
    about 5 % faster in training, but lowered the demo's cold-item metrics on the same day in
    two seeds, so it is not used; see ``docs/scale.md``.)"""

    def __init__(self, spec: FeatureSpec, buckets: int, embedding_dim: int, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.separator = spec.separator
        self.buckets = int(buckets)
        self.embedding_dim = int(embedding_dim)
        self.embedding = keras.layers.Embedding(self.buckets, self.embedding_dim, name="embedding")

    @property
    def output_dim(self) -> int:
        """The embedding's width (``model.feature_embedding_dim``)."""
        return self.embedding_dim

    def _tokens(self, raw: tf.Tensor | tf.RaggedTensor
                ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Every non-blank tag's hash bucket, the row it belongs to (sorted), and each row's
        number of tags (float32); a prepared input (:func:`prepare_features`) holds the first
        two already."""
        if isinstance(raw, tf.RaggedTensor):
            return raw.flat_values, raw.value_rowids(), tf.cast(raw.row_lengths(), tf.float32)
        ids, rows, nrows = tag_tokens(raw, self.separator, self.buckets)
        count = tf.math.unsorted_segment_sum(tf.ones_like(rows, tf.float32), rows, nrows)
        return ids, rows, count

    def present(self, raw: tf.Tensor) -> tf.Tensor:
        """A row is present when it holds at least one non-blank tag."""
        return self._tokens(raw)[2] > 0

    @property
    def design_width(self) -> int:
        """One column per hash bucket (a row without tags is all zeros)."""
        return self.buckets

    def design(self, raw: tf.Tensor) -> tf.SparseTensor:
        """Each row's tags as ``1 / tag count`` in their buckets, like the mean pooling."""
        ids, rows, count = self._tokens(raw)
        return _one_hot(ids, self.buckets, 1.0 / tf.gather(count, rows), rows, tf.size(count))

    def call(self, raw: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        ids, rows, count = self._tokens(raw)
        total = tf.math.unsorted_segment_sum(self.embedding(ids), rows, tf.size(count))
        return tf.math.divide_no_nan(total, count[:, None])


class VectorEncoder(FeatureEncoder):
    """A dense vector, used as it is (the content MLP projects it); all zeros = missing."""

    def __init__(self, spec: FeatureSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.dim = int(spec.dim or 0)

    @property
    def output_dim(self) -> int:
        """The vector's length (``dim`` of the feature)."""
        return self.dim

    @staticmethod
    def _clean(raw: tf.Tensor) -> tf.Tensor:
        raw = tf.cast(raw, tf.float32)
        return tf.where(tf.math.is_nan(raw), tf.zeros_like(raw), raw)

    def present(self, raw: tf.Tensor) -> tf.Tensor:
        """A row is present when any entry is non-zero (``NaN`` counts as 0)."""
        return tf.reduce_any(tf.not_equal(self._clean(raw), 0.0), axis=-1)

    @property
    def design_width(self) -> int:
        """The vector's length: the raw entries are the linear model's columns."""
        return self.dim

    def design(self, raw: tf.Tensor) -> tf.SparseTensor:
        """The cleaned vector itself, as a sparse matrix."""
        return tf.sparse.from_dense(self.call(raw))

    def call(self, raw: tf.Tensor) -> tf.Tensor:
        return tf.ensure_shape(self._clean(raw), [None, self.dim])


def make_encoder(spec: FeatureSpec, model: ModelConfig,
                 boundaries: Mapping[str, Sequence[float]]) -> FeatureEncoder:
    """The encoder for one declared feature."""
    buckets = spec.buckets or model.hash_buckets
    if spec.kind == "categorical":
        return CategoricalEncoder(spec, buckets, model.feature_embedding_dim)
    if spec.kind == "tags":
        return TagsEncoder(spec, buckets, model.feature_embedding_dim)
    if spec.kind == "numeric":
        if spec.name not in boundaries:
            raise KeyError(f"no boundaries for numeric feature {spec.name!r}; the boundaries "
                           f"table has {sorted(boundaries)}")
        return NumericEncoder(spec, boundaries[spec.name], model.num_bins,
                              model.feature_embedding_dim)
    if spec.kind == "vector":
        return VectorEncoder(spec)
    raise ValueError(f"unknown feature kind {spec.kind!r} of {spec.name!r}")


# --- raw inputs ---------------------------------------------------------------------------


def _tensor_spec(spec: FeatureSpec) -> tf.TensorSpec:
    if spec.kind in ("categorical", "tags"):
        return tf.TensorSpec([None], tf.string, name=spec.name)
    if spec.kind == "numeric":
        return tf.TensorSpec([None], tf.float32, name=spec.name)
    return tf.TensorSpec([None, int(spec.dim or 0)], tf.float32, name=spec.name)


def input_signature(specs: Sequence[FeatureSpec]) -> dict[str, tf.TensorSpec]:
    """The raw-input signature of a set of features, keyed by feature name."""
    return {s.name: _tensor_spec(s) for s in specs}


def _strings(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype == object:
        values = values.copy()
        values[np.equal(values, None)] = ""
        return values
    if values.dtype.kind in ("U", "S"):
        return values
    raise TypeError(f"expected strings, got dtype {values.dtype}")


def to_numpy_batch(specs: Sequence[FeatureSpec], features: Mapping[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """Check and normalise a raw batch: the features of ``specs`` only, contract dtypes.

    Strings stay strings (``None`` becomes ``""``), numerics become float32 (``NaN`` kept),
    vectors float32 ``[n, dim]``.  Raises with the feature's name on a missing key, a wrong
    shape or rows of unequal length.
    """
    out: dict[str, np.ndarray] = {}
    n: int | None = None
    for spec in specs:
        if spec.name not in features:
            raise KeyError(f"feature {spec.name!r} ({spec.group}, {spec.kind}) is missing from "
                           f"the batch; it has {sorted(features)}")
        raw = np.asarray(features[spec.name])
        try:
            if spec.kind in ("categorical", "tags"):
                value = _strings(raw)
                if value.ndim != 1:
                    raise ValueError(f"shape {value.shape}, expected [n]")
            elif spec.kind == "numeric":
                value = raw.astype(np.float32)
                if value.ndim != 1:
                    raise ValueError(f"shape {value.shape}, expected [n]")
            else:
                value = raw.astype(np.float32)
                if value.ndim != 2 or value.shape[1] != spec.dim:
                    raise ValueError(f"shape {value.shape}, expected [n, {spec.dim}]")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"feature {spec.name!r} ({spec.kind}): {exc}") from None
        if n is not None and len(value) != n:
            raise ValueError(f"feature {spec.name!r} has {len(value)} rows, others have {n}")
        n = len(value)
        out[spec.name] = value
    return out


def to_tensors(specs: Sequence[FeatureSpec], features: Mapping[str, np.ndarray]
               ) -> dict[str, tf.Tensor]:
    """:func:`to_numpy_batch`, as tensors of the serving signature's dtypes."""
    sig = input_signature(specs)
    return {name: tf.constant(value, dtype=sig[name].dtype)
            for name, value in to_numpy_batch(specs, features).items()}


# --- prepared inputs (training) -----------------------------------------------------------


@dataclass(frozen=True)
class RaggedIds:
    """Rows of a varying number of ids in numpy: ``values`` (int64) of every row in turn, and
    ``splits`` (int64 ``[n + 1]``), row ``i`` being ``values[splits[i]:splits[i + 1]]``; a
    prepared tags column.  Indexing by a slice or an array of rows gives those rows, like a
    numpy column, so a chunk's columns are cut and shuffled alike."""

    values: np.ndarray
    splits: np.ndarray

    def __len__(self) -> int:
        return len(self.splits) - 1

    def __getitem__(self, rows: slice | np.ndarray) -> RaggedIds:
        if isinstance(rows, slice) and rows.step in (None, 1):
            start, stop, _ = rows.indices(len(self))
            splits = self.splits[start:max(start, stop) + 1]
            return RaggedIds(self.values[splits[0]:splits[-1]], splits - splits[0])
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        starts = self.splits[rows]
        lengths = self.splits[rows + 1] - starts
        splits = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=splits[1:])
        # each kept value's position: its row's start, plus its place in the row
        at = np.repeat(starts - splits[:-1], lengths) + np.arange(splits[-1])
        return RaggedIds(self.values[at], splits)

    @staticmethod
    def concat(parts: Sequence[RaggedIds]) -> RaggedIds:
        """The rows of ``parts``, in order."""
        ends = np.cumsum([0] + [p.splits[-1] for p in parts[:-1]])
        return RaggedIds(np.concatenate([p.values for p in parts]),
                         np.concatenate([parts[0].splits[:1]]
                                        + [p.splits[1:] + e for p, e in zip(parts, ends)]))

    def to_tensor(self) -> tf.RaggedTensor:
        """The rows as a ``tf.RaggedTensor`` (int64, int64 row splits)."""
        return tf.RaggedTensor.from_row_splits(self.values, self.splits, validate=False)


def concat_columns(parts: Sequence[np.ndarray | RaggedIds]) -> np.ndarray | RaggedIds:
    """A column's parts (numpy arrays or :class:`RaggedIds`) as one column, in order."""
    if isinstance(parts[0], RaggedIds):
        return RaggedIds.concat(parts)
    return np.concatenate(parts)


def to_tensor(value: np.ndarray | RaggedIds) -> tf.Tensor | tf.RaggedTensor:
    """A column (raw, or prepared by :func:`prepare_features`) as the tensor an encoder takes."""
    return value.to_tensor() if isinstance(value, RaggedIds) else tf.constant(value)


def _is_raw(value: np.ndarray | RaggedIds) -> bool:
    return not isinstance(value, RaggedIds) and value.dtype.kind in ("O", "U", "S")


def prepare_features(specs: Sequence[FeatureSpec], model: ModelConfig,
                     features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray | RaggedIds]:
    """The training form of a batch of contract-dtype features (:func:`to_numpy_batch`): each
    categorical column as its embedding rows (int64), each tags column as its non-blank tags'
    buckets (:class:`RaggedIds`), hashed by the encoders' own functions; the other columns,
    and columns already prepared, as they are.  The encoders give the same outputs from
    either form (the module's docstring)."""
    out = dict(features)
    for spec in specs:
        value = features.get(spec.name)
        if value is None or spec.kind not in ("categorical", "tags") or not _is_raw(value):
            continue
        buckets = spec.buckets or model.hash_buckets
        raw = tf.constant(value, tf.string)
        if spec.kind == "categorical":
            out[spec.name] = categorical_ids(raw, buckets).numpy()
            continue
        ids, rows, _ = (t.numpy() for t in tag_tokens(raw, spec.separator, buckets))
        splits = np.zeros(len(value) + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=len(value)), out=splits[1:])
        out[spec.name] = RaggedIds(ids, splits)
    return out


# item codes: a 64-bit hash of the id; two of a day's items share one with a chance of about
# items^2 / 2^64 (1e-8 at 500k items), which would only drop one in-batch negative
_ITEM_CODES = 2 ** 63 - 1


def item_codes(item_ids: np.ndarray) -> np.ndarray:
    """int64 per item id (strings): the training form of the item ids, which the in-batch
    softmax only compares and the logQ correction only looks up; int64 input is returned as it
    is."""
    item_ids = np.asarray(item_ids)
    if not _is_raw(item_ids):
        return item_ids.astype(np.int64, copy=False)
    return tf.strings.to_hash_bucket_fast(tf.constant(item_ids, tf.string),
                                          _ITEM_CODES).numpy()


def prepared_signature(specs: Sequence[FeatureSpec]) -> dict[str, tf.TypeSpec]:
    """The signature of :func:`prepare_features`' output, keyed by feature name."""
    sig: dict[str, tf.TypeSpec] = {}
    for spec in specs:
        if spec.kind == "categorical":
            sig[spec.name] = tf.TensorSpec([None], tf.int64)
        elif spec.kind == "tags":
            sig[spec.name] = tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1,
                                                 row_splits_dtype=tf.int64)
        else:
            value = _tensor_spec(spec)
            sig[spec.name] = tf.TensorSpec(value.shape, value.dtype)
    return sig
