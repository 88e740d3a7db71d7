"""Model signatures: the columns (name, type) a model takes, inferred from an input example,
and the checks that turn untrusted input into exactly that shape — without per-value Python
type checks: numpy decides the type of each column once."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from numbers import Real
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError, SignatureError
from shipyard.flavors import categories  # category columns (their categories, in order)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DType = Literal["double", "float", "long", "integer", "boolean", "string"]
_NUMERIC: frozenset[str] = frozenset({"double", "float", "long", "integer"})
_NUMPY_OF: dict[str, str] = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "object",
}
# The V2 (Open Inference Protocol) datatype of each signature type.
V2_DATATYPE: dict[str, str] = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}


class MatrixColumns(Mapping[str, Any]):
    """Columns that are views of one 2-D float array, which is kept (`.matrix`, one row per
    row): the ONNX path takes it as it is instead of copying 30 columns back into a new array,
    and a column's view is made only when something asks for that column (most requests never
    do). `position` maps each column name to its index in the matrix; `names` is the same
    names in order (a tuple shared by every request of a signature)."""

    __slots__ = ("_position", "_views", "matrix", "names")

    def __init__(
        self, matrix: Any, position: Mapping[str, int], names: tuple[str, ...] | None = None
    ) -> None:
        self.matrix = matrix
        self._position = position
        self.names = tuple(position) if names is None else names
        self._views: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = self.matrix[:, self._position[name]]
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)

    def __repr__(self) -> str:
        return f"MatrixColumns({list(self._position)}, rows={len(self.matrix)})"


@functools.cache
def _numpy() -> Any:
    """numpy, imported on first use (commands that never touch data start without it); a
    cached call costs far less per request than an import statement."""
    import numpy

    return numpy


@dataclass(frozen=True)
class ColumnSpec:
    """One input column. `missing`: the model takes missing values (null, NaN) in it — it was
    trained with them, or it handles them itself (gradient-boosted trees) — and a missing value
    is passed on as NaN; otherwise a request with one is refused, naming the column and row."""

    name: str
    dtype: str
    missing: bool = False
    # a pandas `category` column: its categories, in order (the model knows them by position)
    categories: tuple[Any, ...] | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Signature:
    """`kind` is "columns" when the model was fitted on a DataFrame (it wants named columns)
    and "tensor" when it was fitted on an array (columns are named f0, f1, …)."""

    inputs: tuple[ColumnSpec, ...]
    kind: Literal["columns", "tensor", "tensors"] = "columns"  # "tensors": TensorSignature

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.inputs]

    @cached_property
    def _order(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.inputs)

    @cached_property
    def _position(self) -> dict[str, int]:
        return {c.name: i for i, c in enumerate(self.inputs)}

    @property
    def all_numeric(self) -> bool:
        return all(c.dtype in _NUMERIC for c in self.inputs)

    def allowing_missing(self, names: Any) -> Signature:
        """This signature with missing values taken in `names` (True: in every column)."""
        if names is True:
            names = set(self.names)
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise InvalidArgumentError(
                f"allow_missing names column(s) the model does not take: {unknown}; "
                f"its columns are {self.names}",
                field="allow_missing",
            )
        return Signature(
            tuple(replace(c, missing=c.missing or c.name in names) for c in self.inputs),
            self.kind,
        )

    @cached_property
    def takes_missing(self) -> frozenset[str]:
        """The columns in which missing values are passed on (see `ColumnSpec.missing`)."""
        return frozenset(c.name for c in self.inputs if c.missing)

    @cached_property
    def categorical(self) -> dict[str, Any]:
        """The pandas CategoricalDtype of each category column (none: {})."""
        return categories.dtypes_of(self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "inputs": [categories.input_doc(c) for c in self.inputs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """A stored signature. One saved before signatures said so (no "missing") takes no
        missing values: a model trained without them predicts nonsense on them."""
        if data.get("kind") == "tensors":  # N-d inputs (flavors/tensors.py)
            from shipyard.flavors.tensors import TensorSignature

            return TensorSignature.from_dict(data)
        return cls(tuple(map(categories.column_of, data["inputs"])), data.get("kind", "columns"))

    def example_doc(self, example: Any, n: int = 100) -> dict[str, Any]:
        return example_rows(example, n)  # the input example as stored with the model

    def example_columns(self, doc: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        return self.columns_from_records(example_records(dict(doc)))  # the stored example

    # -- turning input into what the model takes -------------------------------------------------

    def columns_from_records(self, records: Any) -> Mapping[str, np.ndarray]:
        """`[{"a": 1, "b": 2}, …]` (or `[[1, 2], …]` for tensor signatures) → arrays by column."""
        if not isinstance(records, list):
            raise SignatureError("'instances' must be a list of objects", field="instances")
        if not records:
            raise SignatureError("'instances' is empty: send at least one row", field="instances")
        first = records[0]
        if isinstance(first, list):
            import numpy as np

            try:
                matrix = np.asarray(records)
            except ValueError as exc:
                raise SignatureError(
                    "rows of 'instances' have different lengths", field="instances"
                ) from exc
            return self.columns_from_matrix(matrix, field="instances")
        if self.all_float:
            fast = self._float_matrix(records)
            if fast is not None:
                return fast
        expected = set(self._order)
        for i, row in enumerate(records):
            if not isinstance(row, dict):
                raise SignatureError(
                    f"instances[{i}] must be an object of feature values", field=f"instances[{i}]"
                )
            if row.keys() != expected:
                missing = sorted(expected - row.keys())
                unknown = sorted(row.keys() - expected)
                parts = []
                if missing:
                    parts.append(f"missing feature(s) {', '.join(map(repr, missing))}")
                if unknown:
                    parts.append(f"unknown feature(s) {', '.join(map(repr, unknown))}")
                raise SignatureError(
                    f"instances[{i}]: {'; '.join(parts)}",
                    field=f"instances[{i}]",
                    missing=missing,
                    unknown=unknown,
                )
        return {
            name: self.coerce_column(name, dtype, [row[name] for row in records])
            for name, dtype in ((c.name, c.dtype) for c in self.inputs)
        }

    @cached_property
    def _seen_order(self) -> list[tuple[str, ...]]:
        """The key tuple of the last request whose rows were in signature order."""
        return [self._order]

    @cached_property
    def all_float(self) -> bool:
        return all(c.dtype in ("double", "float") for c in self.inputs)

    def _float_matrix(self, records: list[Any]) -> MatrixColumns | None:
        """All-float rows in one numpy conversion, without a Python loop over rows or values;
        None when a row is not an object with exactly the signature's keys or a value is not a
        number (the row-by-row and column-by-column checks then name the problem).

        The key set is checked once per distinct key order, not once per row: clients send
        every row with the same keys in the same order, so that is usually one check."""
        np = _numpy()
        if set(map(type, records)) != {dict}:
            return None
        order = self._order
        permute = None
        first = tuple(records[0])
        # the common case, every row's keys in signature order: compared with the first row's
        # in C. orjson reuses one string object per key, so once a request's keys matched,
        # comparing the next request's with them is identity checks, not string compares.
        seen = self._seen_order
        if (first == seen[0] or first == order) and all(map(first.__eq__, map(tuple, records))):
            seen[0] = first
            rows: list[Any] = list(map(list, map(dict.values, records)))
        else:
            orders = set(map(tuple, records))  # the key order of each row, in one C-level pass
            expected = self._position.keys()
            if any(len(o) != len(order) or expected != set(o) for o in orders):
                return None
            if len(orders) == 1:  # one other order: convert as sent, then reorder the columns
                sent = {name: i for i, name in enumerate(next(iter(orders)))}
                permute = [sent[name] for name in order]
                rows = list(map(list, map(dict.values, records)))
            else:  # rows disagree on the order: look every value up by name
                rows = [[row[n] for n in order] for row in records]
        try:
            raw = np.array(rows)
        except (ValueError, TypeError):
            return None
        if raw.ndim != 2 or raw.dtype.kind not in "fiu":  # text, None, lists: the slow path
            return None
        matrix = raw.astype(np.float64, copy=False)
        if permute is not None:
            matrix = matrix[:, permute]
        return MatrixColumns(matrix, self._position, order)

    def columns_from_matrix(
        self, matrix: np.ndarray, *, field: str = "inputs"
    ) -> Mapping[str, np.ndarray]:
        if matrix.ndim != 2 or matrix.shape[1] != len(self.inputs):
            raise SignatureError(
                f"'{field}' has shape {list(matrix.shape)}; expected [n, {len(self.inputs)}] "
                f"with columns in signature order: {', '.join(self.names)}",
                field=field,
            )
        if matrix.shape[0] == 0:
            raise SignatureError(f"'{field}' is empty: send at least one row", field=field)
        return {
            c.name: self.coerce_column(c.name, c.dtype, matrix[:, i])
            for i, c in enumerate(self.inputs)
        }

    def complete(self, columns: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """Columns built one by one from per-column input (V2 tensors, each coerced) → the
        model's input: as they are; a signature whose model fetches features adds them."""
        return columns

    def coerce_column(self, name: str, dtype: str, values: Any, *, origin: str = "") -> np.ndarray:
        """One column of untrusted values as the signature's type; `origin` says where values
        the caller did not send came from (the feature store), for the error. A category
        column's values are checked against its categories (`categories.check_categories`)."""
        return categories.checked(self, name, self._coerce(name, dtype, values, origin))

    def _coerce(self, name: str, dtype: str, values: Any, origin: str) -> np.ndarray:
        import numpy as np

        try:
            arr = np.asarray(values)
        except (ValueError, TypeError) as exc:
            raise SignatureError(
                f"feature '{name}' has values of mixed shapes", field=name
            ) from exc
        if arr.ndim != 1:
            raise SignatureError(
                f"feature '{name}' must be a single value per row, got shape {list(arr.shape)}",
                field=name,
            )
        kind = arr.dtype.kind
        if dtype in _NUMERIC:
            return self._numbers(name, dtype, values, arr, origin)
        if dtype == "boolean":
            return self._booleans(name, arr, origin)
        if kind not in "USO" or (
            kind == "U" and isinstance(values, list) and not _all_text(values)
        ):
            raise SignatureError(f"feature '{name}' expects string values", field=name)
        if kind == "O":  # strings among other things: only missing values may be among them
            import pandas as pd

            missing = pd.isna(arr)
            if not all(isinstance(v, str) for v in arr[~missing].tolist()):
                raise SignatureError(f"feature '{name}' expects string values", field=name)
            if name not in self.takes_missing:
                _refuse_missing(name, missing, origin)
        return arr.astype(object)

    def _booleans(self, name: str, arr: np.ndarray, origin: str) -> np.ndarray:
        """A true/false column; with missing values (None, pd.NA) where it takes them, passed
        as float64 1.0/0.0/NaN — what scikit-learn made of a nullable boolean column."""
        import numpy as np

        if arr.dtype.kind == "b":
            return arr
        values = arr.tolist() if arr.dtype.kind == "O" else None
        if values is None or not all(isinstance(v, bool) or _missing(v) for v in values):
            raise SignatureError(f"feature '{name}' expects true/false values", field=name)
        missing = np.array([_missing(v) for v in values], dtype=bool)
        if name not in self.takes_missing:
            _refuse_missing(name, missing, origin)
        out: np.ndarray = np.array([np.nan if _missing(v) else float(v) for v in values])
        return out if name in self.takes_missing else out.astype(bool)

    def _numbers(
        self, name: str, dtype: str, values: Any, arr: np.ndarray, origin: str
    ) -> np.ndarray:
        """A numeric column: numbers only (a missing value where the column takes them), finite,
        within the column type's range."""
        import numpy as np

        kind = arr.dtype.kind
        if kind == "O":  # numbers and missing values (None, pd.NA): anything else is refused
            if not all(map(_number_or_missing, arr.tolist())):
                raise SignatureError(f"feature '{name}' expects {dtype} values", field=name)
            arr = np.array([np.nan if _missing(v) else v for v in arr.tolist()], dtype=np.float64)
            kind = "f"
        if kind not in "iuf":
            got = {"b": "boolean", "U": "string", "S": "string"}.get(kind, str(arr.dtype))
            raise SignatureError(f"feature '{name}' expects {dtype} values, got {got}", field=name)
        if kind == "f":
            if name not in self.takes_missing:
                _refuse_missing(name, np.isnan(arr), origin)
            if np.isinf(arr).any():
                raise SignatureError(f"feature '{name}' must be a finite number", field=name)
            if dtype in ("long", "integer") and not np.all(arr[~np.isnan(arr)] % 1 == 0):
                raise SignatureError(f"feature '{name}' expects whole numbers", field=name)
        limit = _LIMITS[dtype]
        if len(arr) and float(np.nanmax(np.abs(arr), initial=0)) > limit:  # float32 too
            raise SignatureError(
                f"feature '{name}' has a value beyond the {dtype} range (±{limit:.4g})", field=name
            )
        if dtype in ("long", "integer") and name in self.takes_missing:
            # int64 holds no NaN: a whole-number column that takes missing values is passed as
            # float64 with NaN, always (what scikit-learn made of an Int64 column with pd.NA)
            return arr.astype(np.float64, copy=False)
        return arr.astype(_NUMPY_OF[dtype], copy=False)

    def to_model_input(self, columns: Mapping[str, np.ndarray]) -> pd.DataFrame | np.ndarray:
        """What the native model is called with: a DataFrame for column signatures, a 2-D array
        for tensor signatures."""
        import numpy as np

        if self.kind == "tensor":
            return np.column_stack([columns[n] for n in self.names])
        import pandas as pd

        if self.categorical:  # the categories in the order of training: the codes match
            return categories.frame(columns, self.names, self.categorical)  # type: ignore[no-any-return]
        return pd.DataFrame({n: columns[n] for n in self.names}, copy=False)

    def matrix(self, columns: Mapping[str, np.ndarray], dtype: str = "float32") -> np.ndarray:
        """A dense 2-D array in signature order (the ONNX fast path)."""
        kept: np.ndarray | None = getattr(columns, "matrix", None)
        if kept is not None:
            if kept.dtype == dtype:
                return kept
            with _numpy().errstate(over="ignore"):  # checked below, with a clear error
                out = kept.astype(dtype)
        else:
            np = _numpy()
            out = np.empty((len(next(iter(columns.values()))), len(self.inputs)), dtype=dtype)
            with np.errstate(over="ignore"):
                for i, n in enumerate(self.names):
                    out[:, i] = columns[n]
        if dtype == "float32" and _numpy().isinf(out).any():  # finite doubles beyond float32
            raise SignatureError(
                "a value is beyond the model's float32 input range (±3.4e38)", field="instances"
            )
        return out

    def check_frame(self, data: Any) -> Mapping[str, np.ndarray]:
        """Python-API input (DataFrame, array, dict of columns or list of records) → columns.
        Extra DataFrame columns are ignored; missing ones are an error."""
        import numpy as np

        if hasattr(data, "columns") and hasattr(data, "iloc"):  # a DataFrame
            missing = [n for n in self.names if n not in data.columns]
            if missing and self.kind == "tensor" and data.shape[1] == len(self.inputs):
                return self.columns_from_matrix(data.to_numpy())
            if missing:
                raise SignatureError(
                    f"input is missing column(s) {', '.join(map(repr, missing))}", missing=missing
                )
            if len(data) == 0:
                raise SignatureError("input has no rows")
            return {
                c.name: self.coerce_column(c.name, c.dtype, _column_values(data[c.name]))
                for c in self.inputs
            }
        if isinstance(data, Mapping):
            return self.columns_from_records(
                [
                    dict(zip(data.keys(), row, strict=True))
                    for row in zip(*data.values(), strict=True)
                ]
            )
        if isinstance(data, list):
            return self.columns_from_records(data)
        arr = np.asarray(data)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        return self.columns_from_matrix(arr, field="input")


# the largest magnitude a column of each numeric type holds (float32 beyond it is infinite)
_LIMITS: dict[str, float] = {
    "double": 1.7976931348623157e308,
    "float": 3.4028234663852886e38,
    "long": 9.223372036854775e18,  # 2**63, as a float: whole numbers below it fit int64
    "integer": 2147483647.0,
}


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA: a missing value in a column of objects."""
    if value is None or (isinstance(value, float) and value != value):
        return True
    return type(value).__name__ == "NAType"


def _all_text(values: list[Any]) -> bool:
    """Whether a list numpy made text of was text (numpy turns `["x", 1]` into `["x", "1"]`)."""
    return all(isinstance(v, str) for v in values)


def _number_or_missing(value: Any) -> bool:
    return (isinstance(value, Real) and not isinstance(value, bool)) or _missing(value)


def _refuse_missing(name: str, missing: np.ndarray, origin: str) -> None:
    """A SignatureError naming the column and the first row with a missing value, if any."""
    if not missing.any():
        return
    rows = missing.nonzero()[0]
    more = f" (and {len(rows) - 1} more row(s))" if len(rows) > 1 else ""
    raise SignatureError(
        f"feature '{name}' is missing (null) in row {int(rows[0])}{more}{origin}; the model "
        f"was trained without missing values in '{name}'. Send a value, or register the model "
        f"with allow_missing=['{name}'] if it handles them",
        field=name,
        row=int(rows[0]),
        rows=len(rows),
    )


def _column_values(series: Any) -> np.ndarray:
    """A DataFrame column as numpy: a pandas extension column (`Int64`, `boolean`, `string`,
    `category`, …) as objects with None where a value is missing, so the checks see pd.NA as
    they see a null; a complete nullable number or boolean column as its numpy type."""
    dtype = series.dtype
    if not hasattr(dtype, "na_value"):  # a numpy dtype
        return series.to_numpy()  # type: ignore[no-any-return]
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if numpy_dtype is not None and numpy_dtype.kind in "iufb" and not series.hasnans:
        return series.to_numpy(dtype=numpy_dtype)  # type: ignore[no-any-return]
    return series.to_numpy(dtype=object, na_value=None)  # type: ignore[no-any-return]


# column kinds a signature holds no type for, and what to do about them
_UNSUPPORTED: dict[str, str] = {
    "M": "convert it to numbers (e.g. `df[c].astype('int64')`, epoch time) or to "
    "features such as `df[c].dt.dayofweek` before training and logging",
    "m": "convert it to numbers (e.g. `df[c].dt.total_seconds()`) before training and logging",
    "c": "split it into real and imaginary columns",
}


def _dtype_name(dtype: Any, column: str = "f*") -> str:
    """The signature type of a numpy or pandas (extension) dtype: `Int64` → long with
    `Float32` → float, `boolean` → boolean, `string` → string; a `category` → the type of its
    categories (text categories: string). Dates and durations are refused, naming the column."""
    categories = getattr(dtype, "categories", None)
    if categories is not None:  # category: its values are its categories'
        return _dtype_name(categories.dtype, column)
    kind = getattr(dtype, "kind", "O")
    if kind in _UNSUPPORTED or str(dtype).startswith(("period", "interval")):
        raise InvalidArgumentError(
            f"input_example column '{column}' has type {dtype}, which a signature does not "
            f"hold (numbers, true/false, text); "
            + _UNSUPPORTED.get(kind, "convert it to numbers or text"),
            field="input_example",
            column=column,
        )
    if kind == "f":
        return "float" if dtype.itemsize <= 4 else "double"
    if kind in "iu":  # an unsigned 32-bit value may exceed int32
        return "integer" if dtype.itemsize < 4 or (kind == "i" and dtype.itemsize == 4) else "long"
    if kind == "b":
        return "boolean"
    return "string"


def missing_columns(data: Any) -> set[str]:
    """The columns of a DataFrame (or f0, f1, … of an array) that hold a missing value."""
    import numpy as np
    import pandas as pd

    if data is None:
        return set()
    if hasattr(data, "columns") and hasattr(data, "isna"):
        return {str(c) for c, has in data.isna().any().items() if has}
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        return set()
    return {f"f{i}" for i in np.flatnonzero(pd.isna(arr).any(axis=0))}


def infer_signature(example: Any, names: list[str] | None = None) -> Signature:
    """The signature of a DataFrame (named, typed columns) or a 2-D array (f0, f1, …); of an
    array of 3+ dimensions or a dict of arrays, a tensor signature (flavors/tensors.py)."""
    import numpy as np

    from shipyard.flavors import tensors

    if tensors.is_tensor_example(example):
        return tensors.infer_tensor_signature(example, names)
    if hasattr(example, "columns") and hasattr(example, "dtypes"):
        if len(example.columns) == 0:
            raise InvalidArgumentError("input_example has no columns")
        return Signature(
            tuple(
                ColumnSpec(str(c), _dtype_name(dt, str(c)), categories=categories.categories_of(dt))
                for c, dt in example.dtypes.items()
            ),
            "columns",
        )
    arr = np.asarray(example)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidArgumentError(
            f"input_example must be a DataFrame, a 2-D array, an array of 3+ dimensions or a "
            f"dict of arrays, got shape {list(arr.shape)}"
        )
    name = _dtype_name(arr.dtype)
    return Signature(tuple(ColumnSpec(f"f{i}", name) for i in range(arr.shape[1])), "tensor")


def example_rows(example: Any, n: int = 5) -> dict[str, Any]:
    """A JSON-ready slice of the input example in "split" form (`columns` + row `data`), which
    keeps column order through any JSON round trip. Stored with the model; warms it up."""
    import numpy as np

    if hasattr(example, "iloc"):
        head = example.iloc[:n]
        if hasattr(head, "columns"):  # extension columns: pd.NA as None, numbers as Python's
            values = [_column_values(head.iloc[:, i]).tolist() for i in range(head.shape[1])]
            data = [list(row) for row in zip(*values, strict=True)]
            return {"columns": [str(c) for c in head.columns], "data": data}
        rows = head.to_dict(orient="split", index=False)
        return {"columns": [str(c) for c in rows["columns"]], "data": rows["data"]}
    arr = np.asarray(example)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    return {"columns": [f"f{i}" for i in range(arr.shape[1])], "data": arr[:n].tolist()}


def example_records(example: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored example as `[{column: value}, …]` (the shape of a predict request)."""
    cols = example["columns"]
    return [dict(zip(cols, row, strict=True)) for row in example["data"]]
