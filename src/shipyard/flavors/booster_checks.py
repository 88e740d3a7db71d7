"""A saved XGBoost model read and checked by shipyard itself before XGBoost sees it.

XGBoost's loader trusts its file: a split index past the features, a child pointing back up
the tree or out of it, a tree_info entry past the classes, a 100,000-deep JSON nesting or
num_class=1e9 crash the process (SIGSEGV, heap corruption) or allocate gigabytes — with no
pickle and no `trusted=True` involved. So the file (UBJSON, or JSON) is decoded here with a
bounded decoder, checked (below), and what XGBoost then loads is the checked document written
again by shipyard: XGBoost never parses bytes shipyard did not check. A UBJSON file is
written back as UBJSON in the subset XGBoost itself writes, typed arrays kept typed (XGBoost
reads that as its own file, ten times faster than JSON; a real model's bytes come out
unchanged); a JSON file, or a document holding anything outside that subset (booleans, null,
numbers that are not float32), as JSON.

The bounds (a real model is far inside them):
- nesting depth ≤ MAX_DEPTH, num_feature ≤ MAX_FEATURES, num_class and num_target
  ≤ MAX_OUTPUTS, trees ≤ MAX_TREES, nodes (all trees) ≤ MAX_NODES, categories of a split
  < MAX_CATEGORY;
- per tree: every node array as long as num_nodes, child ids forward (> the node's id, so no
  loop) and < num_nodes, a node a leaf on both sides or neither, split indices < num_feature,
  finite split conditions, parents backwards; tree_info entries < the model's outputs.

LightGBM's text model is checked by `lightgbm_checks`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import struct
from typing import TYPE_CHECKING, Any

from shipyard.errors import ModelLoadError

if TYPE_CHECKING:
    import numpy as np

MAX_DEPTH = 32
MAX_FEATURES = 1_000_000
MAX_OUTPUTS = 10_000
MAX_TREES = 1_000_000
MAX_NODES = 50_000_000
MAX_CATEGORY = 1 << 20
ROOT_PARENT = (2147483647, -1)


class BadBooster(ModelLoadError):
    """A model file shipyard refuses to hand to the native library."""


def checked_xgboost_model(data: bytes) -> bytes:
    """The bytes XGBoost may load for a saved model's bytes (UBJSON or JSON), checked and
    written again (UBJSON for UBJSON, else JSON); BadBooster (a ModelLoadError) naming what is
    wrong otherwise."""
    doc = decode(data)
    check_xgboost(doc)
    if not _is_json(data):
        try:
            return encode_ubjson(doc)
        except _Unwritable:
            pass  # outside the subset XGBoost writes: JSON reads it as XGBoost means it
    return json.dumps(doc, separators=(",", ":")).encode()


def _is_json(data: bytes) -> bool:
    head = data[:64].lstrip()
    return head[:1] == b"{" and head[1:].lstrip()[:1] in (b'"', b"}")


def decode(data: bytes) -> Any:
    """A JSON or UBJSON document, nesting bounded by MAX_DEPTH."""
    if _is_json(data):
        return _decode_json(data)
    if data[:64].lstrip()[:1] == b"{":
        return _Ubj(data).document()
    raise BadBooster("not an XGBoost model file: neither JSON nor UBJSON")


def _decode_json(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBooster(f"not an XGBoost model file: {exc}") from exc
    depth = 0
    deepest = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        t = token.group()
        if t in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise BadBooster(f"the model file nests deeper than {MAX_DEPTH} levels")
        elif t in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadBooster(f"not an XGBoost model file: {exc}") from exc


# one-byte markers of UBJSON's numbers, integers first
_INTS = {
    m: struct.Struct(f)
    for m, f in ((b"i", ">b"), (b"U", ">B"), (b"I", ">h"), (b"l", ">i"), (b"L", ">q"))
}
_NUMBERS = {**_INTS, b"d": struct.Struct(">f"), b"D": struct.Struct(">d")}


class _Ubj:
    """A UBJSON decoder (the subset XGBoost writes), bounded: depth, counts, lengths."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def document(self) -> Any:
        try:
            value = self.value(self.marker(), 0)
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise BadBooster(f"not an XGBoost model file: a truncated UBJSON ({exc})") from exc
        return value

    def take(self, n: int) -> bytes:
        pos = self.pos
        if n < 0 or pos + n > self.end:
            raise BadBooster("not an XGBoost model file: a length past its end")
        self.pos = pos + n
        return self.data[pos : pos + n]

    def marker(self) -> bytes:
        data, pos = self.data, self.pos
        m = data[pos : pos + 1]
        while m == b"N":  # no-op
            pos += 1
            m = data[pos : pos + 1]
        if not m:
            raise BadBooster("not an XGBoost model file: a length past its end")
        self.pos = pos + 1
        return m

    def number(self, m: bytes) -> Any:
        unpacker = _NUMBERS[m]
        pos = self.pos
        if pos + unpacker.size > self.end:
            raise BadBooster("not an XGBoost model file: a length past its end")
        self.pos = pos + unpacker.size
        return unpacker.unpack_from(self.data, pos)[0]

    def count(self, m: bytes | None = None) -> int:
        """A count or length: an integer (after marker `m`, or the next one) in the data."""
        m = self.marker() if m is None else m
        if m not in _INTS:
            raise BadBooster("not an XGBoost model file: a UBJSON count is not an integer")
        n: int = self.number(m)
        if n < 0 or n > self.end:
            raise BadBooster("not an XGBoost model file: a UBJSON count past its end")
        return n

    def value(self, m: bytes, depth: int) -> Any:
        if m == b"[" or m == b"{":
            if depth >= MAX_DEPTH:
                raise BadBooster(f"the model file nests deeper than {MAX_DEPTH} levels")
            return self.array(depth + 1) if m == b"[" else self.object(depth + 1)
        if m in _NUMBERS:
            return self.number(m)
        if m == b"S":
            return self.take(self.count()).decode("utf-8")
        if m in (b"T", b"F"):
            return m == b"T"
        if m == b"Z":
            return None
        if m == b"C":
            return self.take(1).decode("ascii")
        raise BadBooster(f"not an XGBoost model file: UBJSON marker {m!r} at byte {self.pos}")

    def array(self, depth: int) -> list[Any]:
        m = self.marker()
        if m == b"$":
            kind = self.take(1)
            if self.take(1) != b"#" or kind not in _NUMBERS:
                raise BadBooster("not an XGBoost model file: a typed UBJSON array not of numbers")
            n = self.count()
            raw = self.take(n * _NUMBERS[kind].size)
            return _Typed(struct.unpack(f">{n}{_NUMBERS[kind].format[1]}", raw), kind)
        out: list[Any] = []
        if m == b"#":
            return [self.value(self.marker(), depth) for _ in range(self.count())]
        while m != b"]":
            out.append(self.value(m, depth))
            m = self.marker()
        return out

    def object(self, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        m = self.marker()
        while m != b"}":
            if m not in _INTS:
                raise BadBooster("not an XGBoost model file: a UBJSON key without its length")
            key = self.take(self.count(m)).decode("utf-8")
            if key in out:
                raise BadBooster(f"the model file repeats the key {key!r}")
            out[key] = self.value(self.marker(), depth)
            m = self.marker()
        return out


class _Typed(list[Any]):
    """A typed UBJSON array's numbers (a list, to the checks), with its element marker."""

    def __init__(self, values: Any, kind: bytes) -> None:
        super().__init__(values)
        self.kind = kind


class _Unwritable(Exception):
    """A value `encode_ubjson` leaves to JSON."""


# the typed arrays XGBoost writes (int8: a categorical feature's UTF-8 bytes, XGBoost ≥ 3.1):
# marker → struct format of one element
_TYPED_READ = {b"d": "f", b"i": "b", b"U": "B", b"l": "i", b"L": "q"}
# integer markers by range, as XGBoost writes them (so its own file is written back as it was)
_INT_MARKERS = ((b"i", ">b", 1 << 7), (b"I", ">h", 1 << 15), (b"l", ">i", 1 << 31))


def encode_ubjson(doc: Any) -> bytes:
    """A decoded (and checked) document as UBJSON in the form XGBoost writes: objects with
    `L`-sized keys, arrays counted (`#L`), typed arrays of d/i/U/l/L kept typed, integers in
    the smallest marker, floats as float32 (`d`). _Unwritable for anything else — booleans
    (XGBoost's reader takes `F` for true), null, a float that is not a float32, an integer
    past 64 bits, a typed array of another marker — which the caller writes as JSON."""
    out = bytearray()
    _encode(doc, out)
    return bytes(out)


def _encode(value: Any, out: bytearray) -> None:
    kind = type(value)
    if kind is dict:
        out += b"{"
        for key, item in value.items():
            raw = key.encode("utf-8")
            out += b"L" + struct.pack(">q", len(raw)) + raw
            _encode(item, out)
        out += b"}"
    elif kind is _Typed and value.kind in _TYPED_READ:
        n = len(value)
        out += b"[$" + value.kind + b"#L" + struct.pack(">q", n)
        try:
            out += struct.pack(f">{n}{_TYPED_READ[value.kind]}", *value)
        except (struct.error, OverflowError) as exc:
            raise _Unwritable from exc
    elif kind is list or kind is _Typed:
        out += b"[#L" + struct.pack(">q", len(value))
        for item in value:
            _encode(item, out)
    elif kind is str:
        raw = value.encode("utf-8")
        out += b"SL" + struct.pack(">q", len(raw)) + raw
    elif kind is int:
        out += _encode_int(value)
    elif kind is float:
        try:
            packed = struct.pack(">f", value)
        except OverflowError as exc:
            raise _Unwritable from exc
        if not math.isfinite(value) or struct.unpack(">f", packed)[0] != value:
            raise _Unwritable  # not a float32 (or NaN, infinite): JSON's number says it
        out += b"d" + packed
    else:
        raise _Unwritable


def _encode_int(value: int) -> bytes:
    for marker, fmt, bound in _INT_MARKERS:
        if -bound < value < bound - 1:  # XGBoost's bounds, both ends excluded
            return marker + struct.pack(fmt, value)
    if -(1 << 63) <= value < 1 << 63:
        return b"L" + struct.pack(">q", value)
    raise _Unwritable


# -- the checks ------------------------------------------------------------------------------


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            raise BadBooster(f"the model file has no {'/'.join(path)}")
        doc = doc[key]
    return doc


def _int(value: Any, what: str, low: int, high: int) -> int:
    """An integer (XGBoost writes its parameters as strings) within [low, high]."""
    try:
        n = int(value) if not isinstance(value, bool | float) else None
    except (TypeError, ValueError):
        n = None
    if n is None or not low <= n <= high:
        raise BadBooster(f"the model file's {what} is {value!r}, not an integer in [{low}, {high}]")
    return n


def check_xgboost(doc: Any) -> None:
    """Raise BadBooster unless `doc` is a gbtree (or dart) model within the bounds above."""
    learner = _get(doc, "learner")
    param = _get(learner, "learner_model_param")
    n_features = _int(param.get("num_feature"), "num_feature", 1, MAX_FEATURES)
    n_class = _int(param.get("num_class", 0), "num_class", 0, MAX_OUTPUTS)
    n_target = _int(param.get("num_target", 1), "num_target", 0, MAX_OUTPUTS)
    if len(str(param.get("base_score", ""))) > 64 + 32 * max(n_class, n_target):
        raise BadBooster("the model file's base_score is too long")
    booster = _get(learner, "gradient_booster")
    name = booster.get("name") if isinstance(booster, dict) else None
    if name == "dart":
        booster = _get(booster, "gbtree")
    elif name != "gbtree":
        raise BadBooster(f"shipyard loads XGBoost tree models (gbtree, dart), not {name!r}")
    model = _get(booster, "model")
    trees = _get(model, "trees")
    n_trees = _int(_get(model, "gbtree_model_param", "num_trees"), "num_trees", 0, MAX_TREES)
    if not isinstance(trees, list) or len(trees) != n_trees:
        raise BadBooster(f"the model file says num_trees={n_trees} but holds a different count")
    outputs = max(n_class, n_target, 1)
    tree_info = _get(model, "tree_info")
    if not isinstance(tree_info, list) or len(tree_info) != n_trees:
        raise BadBooster("the model file's tree_info is not one entry per tree")
    for i, group in enumerate(tree_info):
        _int(group, f"tree_info[{i}]", 0, outputs - 1)
    _check_indptr(model.get("iteration_indptr"), n_trees)
    _check_encoder(model.get("cats"), n_features)
    total = 0
    for i, tree in enumerate(trees):
        total += _check_tree(tree, i, n_features, outputs)
        if total > MAX_NODES:
            raise BadBooster(f"the model file has more than {MAX_NODES} nodes")


def _check_indptr(indptr: Any, n_trees: int) -> None:
    if indptr is None:
        return
    ok = isinstance(indptr, list) and indptr and indptr[0] == 0 and indptr[-1] == n_trees
    if ok:
        ok = all(isinstance(v, int) and 0 <= v <= n_trees for v in indptr)
        ok = ok and all(a <= b for a, b in itertools.pairwise(indptr))
    if not ok:
        raise BadBooster("the model file's iteration_indptr does not count its trees")


def _ints(values: Any) -> bool:
    return isinstance(values, list) and all(type(v) is int for v in values)


def _ascending(values: list[int], start: int, end: int) -> bool:
    """`values` run from `start` to `end` without going down."""
    return (
        bool(values)
        and values[0] == start
        and values[-1] == end
        and all(a <= b for a, b in itertools.pairwise(values))
    )


def _check_encoder(cats: Any, n_features: int) -> None:
    """The categories XGBoost (≥ 3.1) recodes a DataFrame's categorical columns with."""
    if cats is None:
        return
    if not isinstance(cats, dict):
        raise BadBooster("the model file's categories (cats) are malformed")
    enc, segments, order = (cats.get(k, []) for k in ("enc", "feature_segments", "sorted_idx"))
    if not isinstance(enc, list) or not _ints(segments) or not _ints(order):
        raise BadBooster("the model file's categories (cats) are malformed")
    if not enc and not segments and not order:
        return
    if len(enc) != n_features or len(segments) != n_features + 1:
        raise BadBooster("the model file's categories (cats) are not one entry per feature")
    if not _ascending(segments, 0, len(order)):
        raise BadBooster("the model file's categories (cats) have bad feature_segments")
    for f, column in enumerate(enc):
        size = segments[f + 1] - segments[f]
        if sorted(order[segments[f] : segments[f + 1]]) != list(range(size)):
            raise BadBooster(f"the model file's categories of feature {f} are not an order")
        if not isinstance(column, dict) or not _column_ok(column, size):
            raise BadBooster(f"the model file's categories of feature {f} are malformed")


def _column_ok(column: dict[str, Any], size: int) -> bool:
    """One feature's categories: strings (UTF-8 bytes cut at `offsets`) or numbers (`type`)."""
    values = column.get("values")
    if not isinstance(values, list):
        return False
    if "offsets" in column:
        offsets = column["offsets"]
        if not offsets:
            return not values and size == 0
        return (
            _ints(offsets)
            and _ascending(offsets, 0, len(values))
            and len(offsets) - 1 == size
            and all(type(v) is int and 0 <= v < 256 for v in values)
        )
    kind = column.get("type")
    return (
        type(kind) is int
        and 0 <= kind < 32
        and len(values) == size
        and all(type(v) in (int, float) and math.isfinite(v) for v in values)
    )


_NODE_ARRAYS = (
    "left_children",
    "right_children",
    "parents",
    "split_indices",
    "split_conditions",
    "default_left",
    "loss_changes",
    "sum_hessian",
)
_FLOAT_ARRAYS = ("split_conditions", "loss_changes", "sum_hessian")


def _node_arrays(tree: dict[str, Any], where: str, n: int) -> dict[str, np.ndarray]:
    """The tree's per-node arrays, each of `n` numbers (integers but for _FLOAT_ARRAYS)."""
    import numpy as np

    arrays = {}
    for key in (*_NODE_ARRAYS, "split_type"):
        values = tree.get(key)
        if key == "split_type" and values is None:
            continue
        if not isinstance(values, list) or len(values) != n:
            raise BadBooster(f"{where}'s {key} is not one entry per node ({n})")
        kinds = "if" if key in _FLOAT_ARRAYS else "i"
        try:
            array = np.asarray(values)
        except (ValueError, OverflowError):
            array = np.asarray([None])
        if array.ndim != 1 or array.dtype.kind not in kinds:
            raise BadBooster(f"{where}'s {key} holds something other than numbers")
        arrays[key] = array
    return arrays


def _check_tree(tree: Any, index: int, n_features: int, outputs: int) -> int:
    """Check one tree; returns its node count."""
    import numpy as np

    where = f"tree {index}"
    if not isinstance(tree, dict):
        raise BadBooster(f"{where} of the model file is not an object")
    param = _get(tree, "tree_param")
    n = _int(param.get("num_nodes"), f"{where}'s num_nodes", 1, MAX_NODES)
    _int(param.get("num_feature"), f"{where}'s num_feature", 0, n_features)
    leaf_size = _int(param.get("size_leaf_vector", 1), f"{where}'s size_leaf_vector", 0, outputs)
    arrays = _node_arrays(tree, where, n)
    weights = tree.get("base_weights")
    if not isinstance(weights, list) or len(weights) != n * max(leaf_size, 1):
        raise BadBooster(f"{where}'s base_weights is not one entry per node")
    left, right, parents = arrays["left_children"], arrays["right_children"], arrays["parents"]
    if leaf_size > 1:  # a multi-target tree: a leaf's right child is its leaf's index
        right = np.asarray(
            _check_leaf_vectors(tree, where, left.tolist(), right.tolist(), leaf_size)
        )
    ids = np.arange(n)
    leaf = left == -1
    forward = (left > ids) & (left < n) & (right > ids) & (right < n) & (left != right)
    bad = (leaf != (right == -1)) | (~leaf & ~forward)
    if bad.any():
        i = int(np.argmax(bad))
        raise BadBooster(
            f"{where}, node {i}: children ({left[i]}, {right[i]}) are not both leaves or both "
            f"nodes after it (< {n})"
        )
    backward = ((parents >= 0) & (parents < ids)) | (parents == ROOT_PARENT[0])
    if parents[0] not in ROOT_PARENT or not backward[1:].all():
        raise BadBooster(f"{where}: a node's parent does not come before it")
    splits = arrays["split_indices"]
    if ((splits < 0) | (splits >= n_features)).any():
        bad_index = splits[(splits < 0) | (splits >= n_features)][0]
        raise BadBooster(f"{where}: split index {bad_index} is not < num_feature ({n_features})")
    conditions = arrays["split_conditions"]
    if not np.isfinite(conditions).all():
        c = conditions[~np.isfinite(conditions)][0]
        raise BadBooster(f"{where}: split condition {c!r} is not a finite number")
    for key in ("default_left", "split_type"):
        if key in arrays and ((arrays[key] != 0) & (arrays[key] != 1)).any():
            raise BadBooster(f"{where}: {key} holds something other than 0/1")
    split_type = arrays["split_type"].tolist() if "split_type" in arrays else [0] * n
    _check_categories(tree, where, n, split_type)
    return n


def _check_leaf_vectors(
    tree: dict[str, Any], where: str, left: list[int], right: list[int], size: int
) -> list[int]:
    """A multi-target tree's leaf indices and leaf_weights; returns `right` with its leaves' -1."""
    leaves = [right[i] for i, a in enumerate(left) if a == -1]
    weights = tree.get("leaf_weights")
    if not isinstance(weights, list) or len(weights) != len(leaves) * size:
        raise BadBooster(f"{where}: leaf_weights is not size_leaf_vector entries per leaf")
    if sorted(leaves) != list(range(len(leaves))):
        raise BadBooster(f"{where}: its leaves do not number 0…{len(leaves) - 1} once each")
    if not all(type(w) in (int, float) and math.isfinite(w) for w in weights):
        raise BadBooster(f"{where}: leaf_weights holds something other than finite numbers")
    return [-1 if a == -1 else b for a, b in zip(left, right, strict=True)]


def _check_categories(tree: dict[str, Any], where: str, n: int, split_type: list[int]) -> None:
    nodes = tree.get("categories_nodes", [])
    segments = tree.get("categories_segments", [])
    sizes = tree.get("categories_sizes", [])
    cats = tree.get("categories", [])
    lists = (nodes, segments, sizes, cats)
    if not all(isinstance(x, list) and all(type(v) is int for v in x) for x in lists):
        raise BadBooster(f"{where}: its categories are not lists of integers")
    if not len(nodes) == len(segments) == len(sizes):
        raise BadBooster(f"{where}: categories_nodes, _segments and _sizes differ in length")
    if any(not 0 <= c < MAX_CATEGORY for c in cats):
        raise BadBooster(f"{where}: a category is not in [0, {MAX_CATEGORY})")
    categorical = {i for i, t in enumerate(split_type) if t == 1}
    for node, start, size in zip(nodes, segments, sizes, strict=True):
        if node not in categorical or not (start >= 0 and size >= 0 and start + size <= len(cats)):
            raise BadBooster(f"{where}: categorical split of node {node} is out of range")
    if categorical - set(nodes):
        raise BadBooster(f"{where}: a categorical split has no categories")
