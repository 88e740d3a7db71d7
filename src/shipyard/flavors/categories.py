"""pandas `category` columns in a signature: the categories recorded at log time, and the check
of a request's values against them.

A model trained on a category column (XGBoost with `enable_categorical=True`, LightGBM) knows a
category by its position in the column's categories, not by its text: the signature keeps the
categories in their order, and `Signature.to_model_input` rebuilds the column with exactly
those, whatever values a request holds. A value that is none of them is a missing value where
the column takes missing values (the booster routes it as missing, as it does an unseen
category), and is refused otherwise, naming the column and a few of its categories.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shipyard.errors import SignatureError

if TYPE_CHECKING:
    import numpy as np

    from shipyard.flavors.signature import ColumnSpec, Signature

# categories named in the error for a value that is none of them
SHOWN = 8


def categories_of(dtype: Any) -> tuple[Any, ...] | None:
    """The categories of a pandas CategoricalDtype, in order, as JSON values (None for any
    other dtype)."""
    categories = getattr(dtype, "categories", None)
    if categories is None:
        return None
    return tuple(categories.tolist())


def dtypes_of(inputs: Iterable[ColumnSpec]) -> dict[str, Any]:
    """The pandas CategoricalDtype of each category column of a signature (none: {})."""
    if all(c.categories is None for c in inputs):
        return {}
    import pandas as pd

    return {
        c.name: pd.CategoricalDtype(list(c.categories)) for c in inputs if c.categories is not None
    }


def column_of(doc: Mapping[str, Any]) -> ColumnSpec:
    """One input of a stored signature (one stored before "missing" takes no missing values)."""
    from shipyard.flavors.signature import ColumnSpec

    categories = doc.get("categories")
    return ColumnSpec(
        doc["name"],
        doc["type"],
        bool(doc.get("missing", False)),
        categories=None if categories is None else tuple(categories),
    )


def input_doc(c: ColumnSpec) -> dict[str, Any]:
    """One input of a stored signature; `categories` only for a category column (a signature
    stored before them reads as having none)."""
    doc: dict[str, Any] = {"name": c.name, "type": c.dtype, "missing": c.missing}
    if c.categories is not None:
        doc["categories"] = list(c.categories)
    return doc


def frame(columns: Mapping[str, Any], names: list[str], kinds: Mapping[str, Any]) -> Any:
    """The model's DataFrame: each category column rebuilt on its logged categories."""
    import pandas as pd

    return pd.DataFrame(
        {
            n: pd.Categorical(columns[n], dtype=kinds[n]) if n in kinds else columns[n]
            for n in names
        },
        copy=False,
    )


def checked(signature: Signature, name: str, arr: np.ndarray) -> np.ndarray:
    """A coerced column of `signature`, checked against its categories if it has them."""
    kind = signature.categorical.get(name)
    if kind is None:
        return arr
    return check_categories(name, arr, kind, name in signature.takes_missing)


def check_categories(name: str, arr: np.ndarray, kind: Any, takes_missing: bool) -> np.ndarray:
    """`arr` (a coerced column) with values that are not among `kind`'s categories made
    missing (`takes_missing`) or refused."""
    import numpy as np
    import pandas as pd

    codes = pd.Categorical(arr, dtype=kind).codes
    unseen = (codes == -1) & ~pd.isna(arr)
    if not unseen.any():
        return arr
    if takes_missing:
        out = arr.copy() if arr.dtype.kind == "O" else arr.astype(np.float64)
        out[unseen] = None if out.dtype.kind == "O" else np.nan
        return out
    rows = unseen.nonzero()[0]
    allowed = kind.categories.tolist()
    shown = ", ".join(map(repr, allowed[:SHOWN])) + (
        f", … ({len(allowed)} in all)" if len(allowed) > SHOWN else ""
    )
    raise SignatureError(
        f"feature '{name}' has {arr[rows[0]]!r} in row {int(rows[0])}, which is not one of the "
        f"categories the model was trained with: {shown}",
        field=name,
        row=int(rows[0]),
        allowed=allowed[:SHOWN],
    )


def not_converted(signature: Signature) -> str:
    """Why a model with these inputs is not converted to ONNX (the version's onnx_detail)."""
    if signature.categorical:
        names = ", ".join(repr(n) for n in signature.categorical)
        return (
            f"category column(s) {names}: the ONNX converters do not convert categorical "
            "splits; served by its own runtime"
        )
    return "only all-numeric inputs are converted"
