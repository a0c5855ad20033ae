"""TensorFlow Serving's predict request and response bodies, checked against the signature.

A request is ``{"signature_name"?, "instances": [...]}`` (row format: one object per
instance, keyed by input name; or the bare value when the signature has one input) or
``{"signature_name"?, "inputs": {...}}`` (columnar: a list of rows per input name; or the bare
list when there is one input).  Every input is checked before TensorFlow sees it: names
(unknown or missing), the JSON type against the dtype, and each row's shape against the
signature's.  ``null`` is a missing value: ``""`` for a string input, NaN for a float input
(the pipeline's data contract: how a feature with no value looks).

The answer mirrors the request: ``{"predictions": [...]}`` for rows (each row the bare output
when the signature has one output, else an object), ``{"outputs": ...}`` for columns; beside
it, ``"model_version"`` names the version that answered (a string, as TF Serving writes
versions; clients that read only ``predictions`` / ``outputs`` are unaffected).

Two parsers give the same arrays.  :class:`PredictDecoder` is the fast path for the shape
nearly every client sends, ``{"instances": [{input: value, ...}, ...]}`` with plain values:
msgspec decodes the bytes and checks every value against types built once per signature, in
C, without Python objects per value.  Everything else (the columnar format, a one-input
signature's bare values, ``{"b64": ...}`` strings, an integral float for an integer input, a
null inside a list) and every malformed body fall back to :func:`parse_body`, the general
parser: so each error message is the general parser's, naming the field and the fix.
"""

from __future__ import annotations

import json
import operator
from itertools import chain
from typing import Annotated, Any, Optional

import msgspec
import numpy as np

from dropoutnet.serving.signature import SIGNATURE, Signature, TensorInfo


class BadRequest(ValueError):
    """A malformed request (HTTP 400); the message names the field and what was expected."""


_FLOATS = {"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"}
_INTS = {"DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16",
         "DT_UINT32", "DT_UINT64"}
_NUMPY = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_HALF": np.float16,
          "DT_BFLOAT16": np.float32, "DT_BOOL": np.bool_}


def _expected(info: TensorInfo) -> str:
    kind = ("a string" if info.dtype == "DT_STRING" else "a boolean" if info.dtype == "DT_BOOL"
            else "an integer" if info.dtype in _INTS else "a number")
    if not info.row_shape:
        return kind
    dims = "x".join("?" if d is None else str(d) for d in info.row_shape)
    return f"a list of shape [{dims}] of {kind.split(' ', 1)[1]}s"


def _scalar(value: Any, info: TensorInfo, where: str) -> Any:
    dtype = info.dtype
    if value is None:
        if dtype == "DT_STRING":
            return ""
        if dtype in _FLOATS:
            return float("nan")
        raise BadRequest(f"{where}: null is not allowed for {dtype} input {info.name!r}")
    if dtype == "DT_STRING":
        if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
            import base64

            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError:
                raise BadRequest(f"{where}: invalid base64 in {{'b64': ...}}") from None
        if not isinstance(value, str):
            raise BadRequest(f"{where}: expected a string for input {info.name!r}, got "
                             f"{type(value).__name__} {value!r:.40}")
        return value
    if dtype == "DT_BOOL":
        if not isinstance(value, bool):
            raise BadRequest(f"{where}: expected true/false for input {info.name!r}, got "
                             f"{value!r:.40}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{where}: expected a number for input {info.name!r}, got "
                         f"{type(value).__name__} {value!r:.40}")
    if dtype in _INTS and not (isinstance(value, int) or float(value).is_integer()):
        raise BadRequest(f"{where}: expected an integer for input {info.name!r}, got {value!r}")
    return value


def _row(value: Any, info: TensorInfo, where: str) -> Any:
    """One instance's value of one input, checked against the row shape."""
    shape = info.row_shape

    def walk(v: Any, dims: tuple[int | None, ...], path: str) -> Any:
        if not dims:
            if isinstance(v, list):
                raise BadRequest(f"{where}: input {info.name!r} expects {_expected(info)} per "
                                 f"instance, got a nested list at {path or 'the top'}")
            return _scalar(v, info, where)
        if not isinstance(v, list):
            raise BadRequest(f"{where}: input {info.name!r} expects {_expected(info)} per "
                             f"instance, got {type(v).__name__} {v!r:.40}")
        if dims[0] is not None and len(v) != dims[0]:
            raise BadRequest(f"{where}: input {info.name!r} expects {_expected(info)} per "
                             f"instance, got a list of length {len(v)}")
        return [walk(x, dims[1:], f"{path}[{i}]") for i, x in enumerate(v)]

    return walk(value, shape, "")


def _array(rows: list[Any], info: TensorInfo) -> np.ndarray:
    dtype = object if info.dtype == "DT_STRING" else _NUMPY.get(info.dtype, np.int64)
    try:
        return np.asarray(rows, dtype=dtype)
    except ValueError:  # ragged rows of a dimension the signature leaves open
        raise BadRequest(f"input {info.name!r}: rows have different shapes") from None
    except OverflowError:
        raise BadRequest(f"input {info.name!r}: a value is out of the range of "
                         f"{info.dtype}") from None


def parse_body(raw: bytes, signature: Signature) -> tuple[dict[str, np.ndarray], str, int]:
    """The general parser: a predict body's bytes as JSON, then :func:`parse_predict`."""
    if not raw.strip():
        raise BadRequest("the request body is empty: send a JSON object with "
                         "\"instances\" or \"inputs\"")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequest(f"the request body is not valid JSON: {err}") from None
    return parse_predict(body, signature)


Columns = dict[str, Any]
"""A decoded request's inputs: per input name an array, or (the fast path) a tuple of plain
values, one per instance, made into an array once per TensorFlow call by
:meth:`PredictDecoder.arrays`."""


class PredictDecoder:
    """The fast path of one signature (see the module's docstring): ``decode(raw)`` checks
    a body as :func:`parse_body` does, and is :func:`parse_body` for anything but plain
    ``instances``; ``arrays`` makes the arrays of one call from its requests' columns."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self.names = list(signature.inputs)
        fields = [f"f{i}" for i in range(len(self.names))]  # input names need not be identifiers
        instance = msgspec.defstruct(
            "Instance", [(f, _fast_type(signature.inputs[n])) for f, n in zip(fields, self.names)],
            rename=dict(zip(fields, self.names)), forbid_unknown_fields=True)
        body = msgspec.defstruct(
            "PredictBody", [("instances", Annotated[list[instance], msgspec.Meta(min_length=1)]),
                            ("signature_name", str, SIGNATURE)],
            forbid_unknown_fields=True)
        self._decoder = msgspec.json.Decoder(body)
        self._values = operator.attrgetter(*fields) if len(fields) > 1 else (
            lambda x, f=fields[0]: (getattr(x, f),))
        self._makers = [_array_maker(signature.inputs[n]) for n in self.names]
        # a row length the signature leaves open can differ between rows: checked per request
        self._eager = {n for n in self.names if None in signature.inputs[n].row_shape}

    def decode(self, raw: bytes) -> tuple[Columns, str, int]:
        """(inputs, 'row' or 'columnar', rows) of a predict body's bytes; :class:`BadRequest`
        naming the problem when it is malformed."""
        try:
            body = self._decoder.decode(raw)
        except msgspec.MsgspecError:
            return parse_body(raw, self.signature)
        if body.signature_name != SIGNATURE:
            return parse_body(raw, self.signature)
        rows = body.instances
        values = self._values
        columns = dict(zip(self.names, zip(*(values(x) for x in rows))))
        for name in self._eager:
            columns[name] = _array(list(columns[name]), self.signature.inputs[name])
        return columns, "row", len(rows)

    def arrays(self, parts: list[Columns]) -> dict[str, np.ndarray]:
        """The inputs of one TensorFlow call: the rows of ``parts`` (decoded requests), in
        order, one array per input."""
        out = {}
        for name, make in zip(self.names, self._makers):
            columns = [part[name] for part in parts]
            if all(type(c) is tuple for c in columns):
                out[name] = make(columns[0] if len(columns) == 1
                                 else tuple(chain.from_iterable(columns)))
            else:
                out[name] = np.concatenate([make(c) if type(c) is tuple else c
                                            for c in columns])
        return out


def _fast_type(info: TensorInfo) -> Any:
    """The msgspec type of one instance's value of ``info``: the plain JSON values the
    general parser accepts (a string, a number, true/false; ``null`` for a missing string or
    float scalar), nested lists of the row shape's lengths.  Integers are bounded to int64, so
    that making the call's arrays cannot fail."""
    kind = (str if info.dtype == "DT_STRING" else bool if info.dtype == "DT_BOOL"
            else Annotated[int, msgspec.Meta(ge=-2**63, le=2**63 - 1)] if info.dtype in _INTS
            else float)
    if not info.row_shape:
        return Optional[kind] if kind in (str, float) else kind
    for dim in reversed(info.row_shape):
        kind = (list[kind] if dim is None
                else Annotated[list[kind], msgspec.Meta(min_length=dim, max_length=dim)])
    return kind


def _array_maker(info: TensorInfo):
    """How one input's plain values (one per instance) become its array, as :func:`_array`
    makes it from the general parser's values."""
    dtype = object if info.dtype == "DT_STRING" else _NUMPY.get(info.dtype, np.int64)
    if not info.row_shape and info.dtype == "DT_STRING":
        return lambda values: np.asarray(["" if v is None else v for v in values], dtype=object)
    if not info.row_shape and info.dtype in _FLOATS:
        nan = float("nan")
        return lambda values: np.asarray([nan if v is None else v for v in values], dtype=dtype)
    return lambda values: np.asarray(values, dtype=dtype)


def parse_predict(body: Any, signature: Signature) -> tuple[dict[str, np.ndarray], str, int]:
    """Check a predict body; return (inputs as arrays, 'row' or 'columnar', rows)."""
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object with \"instances\" or "
                         f"\"inputs\", got {type(body).__name__}")
    unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown} in the request; expected "
                         "\"instances\" (row format) or \"inputs\" (columnar format), and "
                         "optionally \"signature_name\"")
    name = body.get("signature_name", SIGNATURE)
    if name != SIGNATURE:
        raise BadRequest(f"signature_name {name!r} not found; this model has "
                         f"{SIGNATURE!r}")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("the request must have exactly one of \"instances\" (row format) "
                         "or \"inputs\" (columnar format)")
    specs = signature.inputs
    if "instances" in body:
        return _parse_rows(body["instances"], specs), "row", len(body["instances"])
    arrays, n = _parse_columns(body["inputs"], specs)
    return arrays, "columnar", n


def _parse_rows(instances: Any, specs: dict[str, TensorInfo]) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise BadRequest(f"\"instances\" must be a list (one entry per instance), got "
                         f"{type(instances).__name__}")
    if not instances:
        raise BadRequest("\"instances\" is empty: send at least one instance")
    names = list(specs)
    columns: dict[str, list] = {n: [] for n in names}
    for i, instance in enumerate(instances):
        where = f"instances[{i}]"
        if len(names) == 1 and not isinstance(instance, dict):
            instance = {names[0]: instance}
        if not isinstance(instance, dict):
            raise BadRequest(f"{where}: expected an object keyed by input name "
                             f"({', '.join(names)}), got {type(instance).__name__}")
        _check_names(instance, specs, where)
        for n in names:
            columns[n].append(_row(instance[n], specs[n], where))
    return {n: _array(columns[n], specs[n]) for n in names}


def _parse_columns(inputs: Any, specs: dict[str, TensorInfo]) -> tuple[dict[str, np.ndarray], int]:
    names = list(specs)
    if len(names) == 1 and isinstance(inputs, list):
        inputs = {names[0]: inputs}
    if not isinstance(inputs, dict):
        raise BadRequest(f"\"inputs\" must be an object keyed by input name "
                         f"({', '.join(names)}), got {type(inputs).__name__}")
    _check_names(inputs, specs, "inputs")
    arrays, n = {}, None
    for name in names:
        rows = inputs[name]
        where = f"inputs[{name!r}]"
        if not isinstance(rows, list):
            raise BadRequest(f"{where}: expected a list with one entry per instance, got "
                             f"{type(rows).__name__}")
        if not rows:
            raise BadRequest(f"{where} is empty: send at least one instance")
        if n is not None and len(rows) != n:
            raise BadRequest(f"{where} has {len(rows)} rows but the other inputs have {n}; "
                             "every input needs one entry per instance")
        n = len(rows)
        arrays[name] = _array([_row(r, specs[name], f"{where}[{i}]")
                               for i, r in enumerate(rows)], specs[name])
    return arrays, int(n or 0)


def _check_names(given: dict, specs: dict[str, TensorInfo], where: str) -> None:
    unknown = sorted(set(given) - set(specs))
    missing = sorted(set(specs) - set(given))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown input(s) {unknown}")
        if missing:
            parts.append(f"missing input(s) {missing}")
        raise BadRequest(f"{where}: {' and '.join(parts)}; the signature's inputs are "
                         f"{sorted(specs)}")


def format_predict(outputs: dict[str, np.ndarray], fmt: str,
                   version: int | None = None) -> dict[str, Any]:
    """TF Serving's answer: ``predictions`` (row format) or ``outputs`` (columnar), and
    ``model_version`` (when given): the version that computed it."""
    as_lists = {k: _jsonable(v) for k, v in outputs.items()}
    if fmt == "columnar":
        out = {"outputs": next(iter(as_lists.values())) if len(as_lists) == 1 else as_lists}
    elif len(as_lists) == 1:
        out = {"predictions": next(iter(as_lists.values()))}
    else:
        n = len(next(iter(as_lists.values())))
        out = {"predictions": [{k: v[i] for k, v in as_lists.items()} for i in range(n)]}
    if version is not None:
        out["model_version"] = str(version)
    return out


def _jsonable(value: np.ndarray) -> list:
    if value.dtype.kind in "OS":
        return np.vectorize(lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes)
                            else b, otypes=[object])(value).tolist()
    rows = value.tolist()
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        rows = _finite(rows)  # JSON has no NaN or Infinity
    return rows


def _finite(x: Any) -> Any:
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def metadata(name: str, version: int, signature: Signature) -> dict[str, Any]:
    """``GetModelMetadataResponse`` as TF Serving renders it in JSON."""
    def tensor(info: TensorInfo, kind: str) -> dict[str, Any]:
        return {"dtype": info.dtype,
                "tensor_shape": {"dim": [{"size": str(-1 if d is None else d), "name": ""}
                                         for d in info.shape], "unknown_rank": False},
                "name": f"{kind}_{info.name}:0"}

    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: {
            "inputs": {k: tensor(v, "serving_default") for k, v in signature.inputs.items()},
            "outputs": {k: tensor(v, "StatefulPartitionedCall") for k, v in
                        signature.outputs.items()},
            "method_name": signature.method_name,
        }}}},
    }
