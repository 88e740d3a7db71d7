"""Tensor signatures: named inputs, each an N-d array with a dtype and a shape (-1 where a
dimension varies; dimension 0 is the batch), beside the column signatures of tables.

    sig = infer_signature(np.zeros((2, 3, 8, 8), np.float32))   # input [-1, 3, 8, 8] float
    tensors = sig.check_frame(batch)        # {"input": float32 array of [n, 3, 8, 8]}

A tensor signature is a `Signature` (so every caller that loads, stores or serves one takes
it), whose checks turn untrusted input into exactly the declared arrays: the names, the shape
(every fixed dimension, the same batch size for every input) and the dtype — values cast only
where nothing is lost, a V2 tensor's declared datatype must be the input's. A refusal is a
SignatureError (HTTP 422) naming the input, with `expected` and `received`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.flavors.signature import ColumnSpec, Signature

if TYPE_CHECKING:
    import numpy as np

# signature type → (numpy dtype, V2 datatype); the column types and the V2 ones beyond them
TENSOR_TYPES: dict[str, tuple[str, str]] = {
    "double": ("float64", "FP64"),
    "float": ("float32", "FP32"),
    "float16": ("float16", "FP16"),
    "long": ("int64", "INT64"),
    "integer": ("int32", "INT32"),
    "int16": ("int16", "INT16"),
    "int8": ("int8", "INT8"),
    "uint64": ("uint64", "UINT64"),
    "uint32": ("uint32", "UINT32"),
    "uint16": ("uint16", "UINT16"),
    "uint8": ("uint8", "UINT8"),
    "boolean": ("bool", "BOOL"),
    "string": ("object", "BYTES"),
}
_TYPE_OF_NUMPY = {numpy: name for name, (numpy, _) in TENSOR_TYPES.items()}
EXAMPLE_VALUES = 100_000  # an input example larger than this is stored by its shapes only
DEFAULT_NAME = "input"


@dataclass(frozen=True)
class TensorSpec(ColumnSpec):
    """One input (or output): an array of `dtype` and `shape` (-1: any size; dim 0 is the
    batch). `missing`: NaN is taken in it (a float input), else refused."""

    shape: tuple[int, ...] = (-1,)

    @property
    def datatype(self) -> str:
        """The Open Inference Protocol (V2) datatype."""
        return TENSOR_TYPES[self.dtype][1]

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "type": self.dtype, "shape": list(self.shape)}
        if self.missing:
            doc["missing"] = True
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TensorSpec:
        dtype = str(doc["type"])
        if dtype not in TENSOR_TYPES:
            raise InvalidArgumentError(
                f"tensor '{doc['name']}' has type {dtype!r}; known: {', '.join(TENSOR_TYPES)}"
            )
        return cls(str(doc["name"]), dtype, bool(doc.get("missing")), tuple(doc["shape"]))


class TensorColumns(dict[str, Any]):
    """A request's checked tensors by input name (batch on axis 0). The prediction log asks
    it for `log_columns`: a summary per row, never the tensors themselves."""

    __slots__ = ()

    def log_columns(self) -> dict[str, np.ndarray]:
        """Per row of each input: its shape and, for numbers, mean, std, min and max."""
        import numpy as np

        out: dict[str, np.ndarray] = {}
        for name, arr in self.items():
            rows = len(arr)
            out[f"{name}.shape"] = np.full(rows, "x".join(map(str, arr.shape[1:])), dtype=object)
            if arr.dtype.kind in "biuf":
                flat = arr.reshape(rows, -1).astype(np.float64)
                if flat.shape[1] == 0:
                    continue
                for stat in ("mean", "std", "min", "max"):
                    out[f"{name}.{stat}"] = getattr(np, stat)(flat, axis=1)
        return out


@dataclass(frozen=True)
class TensorSignature(Signature):
    """Named tensor inputs (and the outputs, when known). `kind` is "tensors"."""

    inputs: tuple[TensorSpec, ...]
    kind: Literal["columns", "tensor", "tensors"] = "tensors"
    outputs: tuple[TensorSpec, ...] = ()

    @property
    def all_numeric(self) -> bool:
        return all(c.dtype not in ("string", "boolean") for c in self.inputs)

    @property
    def all_float(self) -> bool:
        return False

    def allowing_missing(self, names: Any) -> TensorSignature:
        """NaN taken in the float inputs `names` names (True: every float input)."""
        if names is True:
            names = {c.name for c in self.inputs if c.dtype in ("double", "float", "float16")}
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise InvalidArgumentError(
                f"allow_missing names input(s) the model does not take: {unknown}; "
                f"its inputs are {self.names}",
                field="allow_missing",
            )
        if not names:
            return self
        specs = tuple(
            TensorSpec(c.name, c.dtype, c.missing or c.name in names, c.shape) for c in self.inputs
        )
        return TensorSignature(specs, "tensors", self.outputs)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": "tensors", "inputs": [c.to_dict() for c in self.inputs]}
        if self.outputs:
            doc["outputs"] = [c.to_dict() for c in self.outputs]
        return doc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSignature:
        return cls(
            tuple(TensorSpec.from_dict(c) for c in data["inputs"]),
            "tensors",
            tuple(TensorSpec.from_dict(c) for c in data.get("outputs") or ()),
        )

    def describe(self) -> str:
        """`x float [-1, 3, 8, 8]`, one per input (for messages)."""
        return "; ".join(f"{c.name} {c.dtype} {list(c.shape)}" for c in self.inputs)

    # -- turning input into what the model takes -------------------------------------------------

    def check_tensors(
        self, sent: Mapping[str, Any], datatypes: Mapping[str, str] | None = None
    ) -> TensorColumns:
        """Arrays (or nested lists) by input name → the model's tensors, every one checked.
        `datatypes`: the V2 datatype the caller declared for each (must be the input's)."""
        missing = [n for n in self._order if n not in sent]
        unknown = [n for n in sent if n not in self._position]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(map(repr, missing))}")
            if unknown:
                parts.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
            raise SignatureError(
                f"{'; '.join(parts)}; this model takes {self.describe()}",
                field="inputs",
                missing=missing,
                unknown=unknown,
                expected=list(self._order),
            )
        out = TensorColumns()
        batch: tuple[str, int] | None = None
        for spec in self.inputs:
            if datatypes is not None and datatypes[spec.name] != spec.datatype:
                raise SignatureError(
                    f"input '{spec.name}' has datatype {datatypes[spec.name]}; the model "
                    f"takes {spec.datatype} ({spec.dtype})",
                    field=spec.name,
                    expected=spec.datatype,
                    received=datatypes[spec.name],
                )
            arr = _as_array(sent[spec.name], spec.name)
            check_shape(spec, arr.shape)
            if batch is None:
                batch = (spec.name, arr.shape[0])
            elif arr.shape[0] != batch[1]:
                raise SignatureError(
                    f"input '{spec.name}' has {arr.shape[0]} rows but '{batch[0]}' has "
                    f"{batch[1]}: every input needs the same batch size (dimension 0)",
                    field=spec.name,
                    expected=[batch[1], *spec.shape[1:]],
                    received=list(arr.shape),
                )
            out[spec.name] = cast(spec, arr)
        return out

    def columns_from_records(self, records: Any) -> Mapping[str, np.ndarray]:
        """`instances`: one element per row — the row's tensor for a one-input model, an
        object of tensors by input name otherwise."""
        if not isinstance(records, list):
            raise SignatureError("'instances' must be a list of rows", field="instances")
        if not records:
            raise SignatureError("'instances' is empty: send at least one row", field="instances")
        if all(isinstance(r, dict) for r in records):
            keys = list(records[0])
            for i, row in enumerate(records):
                if list(row) != keys and set(row) != set(keys):
                    raise SignatureError(
                        f"instances[{i}] names inputs {sorted(row)}, instances[0] {sorted(keys)}",
                        field=f"instances[{i}]",
                    )
            return self.check_tensors({k: [row[k] for row in records] for k in keys})
        if len(self.inputs) != 1:
            raise SignatureError(
                f"this model takes {len(self.inputs)} inputs ({self.describe()}): send each "
                "instance as an object of them, or 'inputs' as an object of tensors",
                field="instances",
            )
        return self.check_tensors({self.inputs[0].name: records})

    def columns_from_inputs(self, inputs: Any) -> Mapping[str, np.ndarray]:
        """`inputs`: an object of tensors by input name, or (one input) the batch itself."""
        if isinstance(inputs, dict):
            return self.check_tensors(inputs)
        if len(self.inputs) == 1 and isinstance(inputs, list):
            return self.check_tensors({self.inputs[0].name: inputs})
        raise SignatureError(
            "'inputs' must be an object of tensors by input name "
            f"({self.describe()})" + (" or the batch itself" if len(self.inputs) == 1 else ""),
            field="inputs",
        )

    def columns_from_matrix(
        self, matrix: np.ndarray, *, field: str = "inputs"
    ) -> Mapping[str, np.ndarray]:
        if len(self.inputs) != 1:
            raise SignatureError(
                f"this model takes {len(self.inputs)} inputs ({self.describe()})", field=field
            )
        return self.check_tensors({self.inputs[0].name: matrix})

    def check_frame(self, data: Any) -> Mapping[str, np.ndarray]:
        """Python-API input (an array, a dict of arrays) → the model's tensors."""
        if hasattr(data, "columns") and hasattr(data, "iloc"):
            raise SignatureError(
                f"this model takes tensors ({self.describe()}), not a DataFrame: pass an "
                "array" + (" or a dict of arrays by input name" if len(self.inputs) > 1 else ""),
                field="input",
            )
        if isinstance(data, Mapping):
            return self.check_tensors(data)
        if len(self.inputs) != 1:
            raise SignatureError(
                f"this model takes {len(self.inputs)} inputs ({self.describe()}): pass a dict "
                "of arrays by input name",
                field="input",
            )
        return self.check_tensors({self.inputs[0].name: data})

    def to_model_input(self, columns: Mapping[str, np.ndarray]) -> Any:
        """The one input's array, or a dict of arrays by input name."""
        if len(self.inputs) == 1:
            return columns[self.inputs[0].name]
        return {c.name: columns[c.name] for c in self.inputs}

    def matrix(self, columns: Mapping[str, np.ndarray], dtype: str = "float32") -> np.ndarray:
        raise SignatureError(
            f"this model takes tensors ({self.describe()}), not a matrix of columns",
            field="inputs",
        )

    def coerce_column(self, name: str, dtype: str, values: Any, *, origin: str = "") -> np.ndarray:
        raise SignatureError(
            f"this model takes tensors ({self.describe()}), not columns", field=name
        )

    # -- the stored input example ------------------------------------------------------------

    def example_doc(self, example: Any, n: int = 100) -> dict[str, Any]:
        """The input example as stored with the model: at most `n` rows of each input, or
        only their shapes when that is more than EXAMPLE_VALUES values (warm-up then uses
        zeros of those shapes)."""
        tensors = self.check_frame(example)
        shapes = {k: [min(n, len(v)), *v.shape[1:]] for k, v in tensors.items()}
        doc: dict[str, Any] = {"kind": "tensors", "shapes": shapes}
        size = sum(_prod(s) for s in shapes.values())
        if size <= EXAMPLE_VALUES:
            doc["data"] = {k: v[:n].tolist() for k, v in tensors.items()}
        return doc

    def example_columns(self, doc: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        import numpy as np

        data = doc.get("data")
        if data is not None:
            return self.check_tensors(data)
        return self.check_tensors(
            {
                c.name: np.zeros(doc["shapes"][c.name], dtype=TENSOR_TYPES[c.dtype][0])
                for c in self.inputs
            }
        )


def _prod(shape: list[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    """Refuse a shape that is not `spec`'s (rank, every fixed dimension) or an empty batch."""
    expected = spec.shape
    if len(shape) != len(expected) or any(
        e != -1 and e != s for e, s in zip(expected, shape, strict=True)
    ):
        raise SignatureError(
            f"input '{spec.name}' has shape {list(shape)}; the model takes "
            f"{list(expected)} (-1: any size, dimension 0 is the batch)",
            field=spec.name,
            expected=list(expected),
            received=list(shape),
        )
    if shape[0] == 0:
        raise SignatureError(
            f"input '{spec.name}' is empty: send at least one row",
            field=spec.name,
            expected=list(expected),
            received=list(shape),
        )


def _as_array(value: Any, name: str) -> np.ndarray:
    """Nested lists, a numpy array or anything with `__array__` (a torch tensor: detached,
    on the CPU) as a numpy array."""
    import numpy as np

    detach = getattr(value, "detach", None)
    if callable(detach) and hasattr(value, "cpu"):
        value = detach().cpu()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise SignatureError(
            f"input '{name}' is ragged: its rows have different shapes", field=name
        ) from exc


def _kind_name(arr: np.ndarray) -> str:
    if arr.dtype.kind == "O":
        return "mixed or null values"
    return _TYPE_OF_NUMPY.get(arr.dtype.name) or (
        "string" if arr.dtype.kind in "US" else str(arr.dtype)
    )


def cast(spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    """`arr` as `spec`'s dtype where nothing is lost: numbers to a float type (finite, within
    its range), whole numbers within range to an integer type, true/false to boolean, text to
    string. Anything else is refused, naming the input, the expected and the received type."""
    import numpy as np

    numpy_dtype, _ = TENSOR_TYPES[spec.dtype]
    target = np.dtype(numpy_dtype)
    kind = arr.dtype.kind
    if arr.dtype == target and kind != "O":
        out = arr
    elif target.kind == "f" and kind in "iuf":
        with np.errstate(over="ignore", invalid="ignore"):
            out = arr.astype(target)
    elif target.kind in "iu" and kind in "iuf":
        out = _whole(spec, arr, target)
    elif target.kind == "b" and kind == "b":
        out = arr
    elif target.kind == "O" and (
        kind in "US" or (kind == "O" and all(isinstance(v, str) for v in arr.ravel().tolist()))
    ):
        return arr.astype(object)
    else:
        got = _kind_name(arr)
        raise SignatureError(
            f"input '{spec.name}' expects {spec.dtype} values, got {got}",
            field=spec.name,
            expected=spec.dtype,
            received=got,
        )
    if target.kind == "f" and not spec.missing:
        bad = ~np.isfinite(out)
        if bad.any():
            at = [int(i) for i in np.argwhere(bad)[0]]
            raise SignatureError(
                f"input '{spec.name}' has a value at {at} that is NaN, infinite or beyond "
                f"{spec.dtype}'s range; the model was logged without missing values",
                field=spec.name,
                index=at,
            )
    return out


def _whole(spec: TensorSpec, arr: np.ndarray, target: np.dtype[Any]) -> np.ndarray:
    import numpy as np

    if arr.size == 0:
        return arr.astype(target)
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr % 1 == 0).all()):
        raise SignatureError(
            f"input '{spec.name}' expects whole numbers ({spec.dtype})",
            field=spec.name,
            expected=spec.dtype,
            received=_kind_name(arr),
        )
    info = np.iinfo(target)
    low, high = arr.min(), arr.max()
    if low < info.min or high > info.max:
        raise SignatureError(
            f"input '{spec.name}' has a value beyond the {spec.dtype} range "
            f"({info.min} to {info.max})",
            field=spec.name,
            expected=spec.dtype,
        )
    return arr.astype(target)


# -- inference from an input example ------------------------------------------------------------


def is_tensor_example(example: Any) -> bool:
    """A dict of arrays, or an array (numpy, or anything with `__array__` and `.shape`, such
    as a torch tensor) of 3 or more dimensions. 1-D and 2-D arrays and DataFrames are tables."""
    if isinstance(example, Mapping):
        return bool(example) and all(_array_like(v) for v in example.values())
    return _array_like(example) and len(example.shape) >= 3


def _array_like(value: Any) -> bool:
    return hasattr(value, "__array__") and hasattr(value, "shape") and not hasattr(value, "iloc")


def infer_tensor_signature(example: Any, names: list[str] | None = None) -> TensorSignature:
    """The tensor signature of an example (see `is_tensor_example`); a single array's input is
    named `names[0]` (the model's own input name, when its flavor knows it) or "input"."""
    if not isinstance(example, Mapping):
        name = names[0] if names and len(names) == 1 else DEFAULT_NAME
        example = {name: example}
    specs = []
    for name, value in example.items():
        arr = _as_array(value, str(name))
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise InvalidArgumentError(
                f"input_example '{name}' needs a batch dimension with at least one row, got "
                f"shape {list(arr.shape)}",
                field="input_example",
            )
        specs.append(
            TensorSpec(str(name), _dtype_name(arr, str(name)), False, (-1, *arr.shape[1:]))
        )
    return TensorSignature(tuple(specs))


def _dtype_name(arr: np.ndarray, name: str) -> str:
    if arr.dtype.kind in "USO":
        return "string"
    found = _TYPE_OF_NUMPY.get(arr.dtype.name)
    if found is None:
        raise InvalidArgumentError(
            f"input_example '{name}' has dtype {arr.dtype}, which a tensor signature does not "
            f"hold ({', '.join(TENSOR_TYPES)})",
            field="input_example",
        )
    return found


def agree_with_model(
    signature: TensorSignature, declared: Mapping[str, tuple[str | None, list[int] | None]]
) -> TensorSignature:
    """Check the example's signature against what the model itself declares (input name →
    (type or None, shape with -1 for a symbolic dimension)): the same names, ranks, types and
    fixed dimensions. Returns it with -1 wherever the model's dimension is symbolic."""
    names, known = list(signature.names), list(declared)
    if sorted(names) != sorted(known):
        raise InvalidArgumentError(
            f"input_example names input(s) {names}; the model takes {known}",
            field="input_example",
            expected=known,
            received=names,
        )
    specs = []
    for spec in signature.inputs:
        dtype, said = declared[spec.name]
        example = [*spec.shape]
        dims = example if said is None else said
        mismatch = len(dims) != len(example) or any(
            d != -1 and e != -1 and d != e for d, e in zip(dims, example, strict=True)
        )
        if mismatch:
            raise InvalidArgumentError(
                f"input_example '{spec.name}' has shape {example} (-1: the batch); the model "
                f"declares {dims} (-1: any size)",
                field="input_example",
                expected=dims,
                received=example,
            )
        if dtype is not None and dtype != spec.dtype:
            raise InvalidArgumentError(
                f"input_example '{spec.name}' is {spec.dtype}; the model takes {dtype}",
                field="input_example",
                expected=dtype,
                received=spec.dtype,
            )
        shape = tuple(-1 if d == -1 else e for e, d in zip(example, dims, strict=True))
        specs.append(TensorSpec(spec.name, spec.dtype, spec.missing, (-1, *shape[1:])))
    return TensorSignature(tuple(specs), "tensors", signature.outputs)
