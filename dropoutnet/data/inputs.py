"""Rows read from Postgres -> the model's raw-feature arrays.

The data contract between SQL and the model, per feature kind:

* categorical: ``str`` array, ``""`` when missing;
* numeric: ``float32`` array, ``NaN`` when missing;
* tags: ``str`` array of separator-joined values, ``""`` when missing or empty;
* vector: ``float32`` matrix ``[n, dim]``, zeros when missing.

A row whose preference features are all missing is a cold entity; the model encodes it as
a dropped preference row.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dropoutnet.config import FeatureSpec


def as_vector(value: Any) -> np.ndarray:
    """A pgvector value (pgvector-python's ``Vector``, or a sequence) as float32."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


def to_array(spec: FeatureSpec, values: Sequence[Any]) -> np.ndarray:
    """Convert one column of database values into the model's array for ``spec``."""
    if spec.kind == "numeric":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float32)
    if spec.kind == "vector":
        if any(isinstance(v, bytes) for v in values):
            return vectors_from_binary(spec, values)
        out = np.zeros((len(values), spec.dim), dtype=np.float32)
        for i, v in enumerate(values):
            if v is not None:
                vector = as_vector(v)
                if vector.shape != (spec.dim,):
                    raise ValueError(
                        f"feature {spec.name!r} has dim {spec.dim} in the config but its source "
                        f"{spec.source} holds a vector of length {vector.size} (row {i}); set "
                        f"its dim to the vectors' length or fix the column")
                out[i] = vector
        return out
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


def vectors_from_binary(spec: FeatureSpec, values: Sequence[bytes | None]) -> np.ndarray:
    """float32 ``[n, dim]`` from pgvector's binary form (an int16 dim, an unused int16, then
    big-endian float32s; :func:`dropoutnet.core.db.stream_columns` reads them so), a whole column
    in one numpy decode; ``None`` gives zeros, as for text values."""
    width = 4 + 4 * spec.dim
    present = [v for v in values if v is not None]
    wrong = next((v for v in present if len(v) != width), None)
    if wrong is not None:
        raise ValueError(
            f"feature {spec.name!r} has dim {spec.dim} in the config but its source "
            f"{spec.source} holds a vector of length {(len(wrong) - 4) // 4}; set its dim "
            "to the vectors' length or fix the column")
    out = np.zeros((len(values), spec.dim), dtype=np.float32)
    if present:
        raw = np.frombuffer(b"".join(present), dtype=np.uint8).reshape(len(present), width)
        decoded = raw[:, 4:].copy().view(">f4").astype(np.float32)
        if len(present) == len(values):
            return decoded
        out[[i for i, v in enumerate(values) if v is not None]] = decoded
    return out


def to_inputs(features: Sequence[FeatureSpec], columns: dict[str, list]) -> dict[str, np.ndarray]:
    """The model inputs for ``features`` from column-wise query results."""
    return {f.name: to_array(f, columns[f.name]) for f in features}
