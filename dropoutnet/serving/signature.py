"""A version's ``serving_default`` signature: the named inputs and outputs it declares.

TensorFlow Serving's vocabulary: each input and output is a dtype (``DT_FLOAT``...) and a
shape whose first dimension is the batch.  Requests are checked against it
(:mod:`.requests`) and the metadata endpoint reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

SIGNATURE = "serving_default"


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature: dtype name (``DT_FLOAT``...) and shape."""

    name: str
    dtype: str                   # TensorFlow's enum name, as TF Serving's metadata shows it
    shape: tuple[int | None, ...]

    @property
    def row_shape(self) -> tuple[int | None, ...]:
        """The shape of one row: ``shape`` without the leading batch dimension."""
        return self.shape[1:]


@dataclass
class Signature:
    """A version's ``serving_default`` signature: its named inputs and outputs, as TF
    Serving's metadata endpoint reports them."""

    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str = "tensorflow/serving/predict"
