"""Hostile XGBoost and LightGBM model files (no pickle, no `trusted=True`) must be refused
with a ModelLoadError naming the problem — never crash the process that loads them — and a
look-alike class must not store bytes of its choosing as a booster (red team findings 1, 4,
5). Every load runs in a child process: a crash fails the test instead of killing pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError, ModelLoadError
from shipyard.flavors import save_model
from shipyard.stores.artifacts import LocalArtifactStore
from tests.hostile import booster_files

pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")

# loads each file with the flavor, as `load_model` does, and predicts: one line per file
_PROGRAM = r"""
import sys
from pathlib import Path
import numpy as np, pandas as pd
from shipyard.errors import ModelLoadError
from shipyard.flavors import flavor_named
from shipyard.flavors.signature import infer_signature

flavor, kind, file_name = sys.argv[1], sys.argv[2], sys.argv[3]
X = pd.DataFrame(np.ones((2, 4)), columns=list("abcd"))
sig = infer_signature(X)
manifest = {"xgboost_class": kind, "lightgbm_class": kind}
for path in sys.argv[4:]:
    try:
        p = flavor_named(flavor).load({file_name: Path(path)}, manifest, sig, trusted=False)
        p.predict_columns({c: X[c].to_numpy() for c in X})
        print(Path(path).stem, "predicted", flush=True)
    except ModelLoadError as exc:
        print(Path(path).stem, "refused:", str(exc).splitlines()[0], flush=True)
"""


def _load_in_child(flavor: str, file_name: str, files: dict[str, Path]) -> dict[str, str]:
    """{variant: outcome line} from a child process; fails on a crash or a timeout."""
    run = subprocess.run(
        [sys.executable, "-c", _PROGRAM, flavor, "Booster", file_name, *map(str, files.values())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"the loading process died ({run.returncode}): {run.stderr[-800:]}"
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert set(lines) == set(files), run.stdout
    return lines


def test_hostile_xgboost_files_are_refused_without_a_crash(tmp_path: Path) -> None:
    variants = booster_files.xgboost_variants(booster_files.small_xgboost())
    files = {}
    for name, data in variants.items():
        files[name] = tmp_path / f"{name}.ubj"
        files[name].write_bytes(data)
    outcomes = _load_in_child("xgboost", "model.ubj", files)
    for name, outcome in outcomes.items():
        assert outcome.startswith("refused: "), (name, outcome)
    assert "split index 100000000 is not < num_feature (4)" in outcomes["split_idx_huge"]
    assert "children (0, 2)" in outcomes["child_cycle"]
    assert "nests deeper than" in outcomes["deep_nest"]
    assert "num_class is '1000000000'" in outcomes["num_class_huge"]
    assert "tree_info[0] is 5" in outcomes["tree_info_oob"]


def test_hostile_lightgbm_files_are_refused_without_a_crash(tmp_path: Path) -> None:
    variants = booster_files.lightgbm_variants(booster_files.small_lightgbm())
    files = {}
    for name, text in variants.items():
        files[name] = tmp_path / f"{name}.txt"
        files[name].write_text(text)
    outcomes = _load_in_child("lightgbm", "model.txt", files)
    # a stale tree_sizes is dropped (LightGBM then reads the trees in order): it loads
    assert outcomes.pop("tree_sizes_stale") == "predicted"
    for name, outcome in outcomes.items():
        assert outcome.startswith("refused: "), (name, outcome)
    assert "split feature is not ≤ max_feature_idx (3)" in outcomes["feat_idx_huge"]
    assert "child 77" in outcomes["child_oob"]
    assert "threshold holds 'nan'" in outcomes["nan_threshold"]
    assert "num_class is '1000000000'" in outcomes["num_class_huge"]


def test_a_garbage_xgboost_file_is_a_one_line_model_load_error(tmp_path: Path) -> None:
    from shipyard.flavors.booster_guard import load_xgboost

    xgboost = pytest.importorskip("xgboost")
    # the last: a key whose length is a float NaN (was a ValueError, not a refusal)
    for data in (b"\x00garbage\xff" * 50, b'{"learner": 1}', b"{Lgarbage", b"{d\x7f\xc0\x00\x00x"):
        path = tmp_path / "model.ubj"
        path.write_bytes(data)
        with pytest.raises(ModelLoadError) as caught:
            load_xgboost(xgboost.Booster(), path)
        assert "\n" not in caught.value.message and "bt]" not in caught.value.message


class _FakeLightGBM:
    """A look-alike: passes the flavor's type-name test, saves whatever text it holds."""

    __module__ = "lightgbm.fake"

    def __init__(self, text: str) -> None:
        self.text = text

    def model_to_string(self) -> str:
        return self.text

    def predict(self, x: Any) -> np.ndarray:
        return np.zeros(len(x))


_FakeLightGBM.__name__ = _FakeLightGBM.__qualname__ = "Booster"


def test_a_look_alike_class_cannot_store_a_hostile_or_unfaithful_file(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    X = pd.DataFrame(np.ones((3, 4)), columns=list("abcd"))
    real = booster_files.small_lightgbm()
    hostile = booster_files.lightgbm_variants(real)["child_oob"]
    with pytest.raises(InvalidArgumentError, match="child 77"):
        save_model(_FakeLightGBM(hostile), store, input_example=X)
    # a valid file whose writer answers otherwise than the file: refused too
    with pytest.raises(InvalidArgumentError, match="does not predict like the file it saves"):
        save_model(_FakeLightGBM(real.model_to_string()), store, input_example=X)
    # the real booster saves
    assert save_model(real, store, input_example=X)[0] == "lightgbm"


def test_real_models_pass_the_checks_and_predict_the_same(tmp_path: Path) -> None:
    """The checks' own decoder (UBJSON) and rebuild (LightGBM text) change no prediction:
    multi-class, dart, multi-target and categorical models included."""
    import lightgbm
    import xgboost

    from shipyard.flavors.booster_checks import checked_xgboost_model
    from shipyard.flavors.lightgbm_checks import checked_lightgbm_text

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=list("abc"))
    X["k"] = pd.Categorical(rng.choice(list("wxyz"), 300))
    y3 = rng.integers(0, 3, 300)
    for params in (
        {"objective": "multi:softprob", "num_class": 3, "max_cat_to_onehot": 1},
        {"booster": "dart", "max_depth": 4},
        {"objective": "multi:softprob", "num_class": 3, "multi_strategy": "multi_output_tree"},
    ):
        # multi-target trees take no categorical feature
        data = X.drop(columns="k") if "multi_strategy" in params else X
        dm = xgboost.DMatrix(data, y3, enable_categorical=True)
        booster = xgboost.train({"tree_method": "hist", **params}, dm, num_boost_round=4)
        raw = bytes(booster.save_raw("ubj"))
        checked = checked_xgboost_model(raw)
        assert checked == raw, params  # written back as XGBoost wrote it, typed arrays typed
        again = xgboost.Booster()
        again.load_model(bytearray(checked))
        assert np.array_equal(booster.predict(dm), again.predict(dm)), params
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, max_cat_to_onehot=1).fit(X, y3)
    text = checked_lightgbm_text(model.booster_.model_to_string())
    assert np.array_equal(model.booster_.predict(X), lightgbm.Booster(model_str=text).predict(X))


def test_hostile_xgboost_ubjson_files_are_refused_without_a_crash(tmp_path: Path) -> None:
    """The same edits in a UBJSON file (what shipyard saves), checked before it is written
    back as UBJSON for XGBoost."""
    import copy

    from shipyard.flavors.booster_checks import decode, encode_ubjson

    base = decode(bytes(booster_files.small_xgboost().save_raw("ubj")))
    files = {}
    for name, edit in booster_files.XGBOOST_EDITS.items():
        if name == "nan_cond":  # a NaN is not written as UBJSON (JSON carries it)
            continue
        doc = copy.deepcopy(base)
        edit(doc)
        files[name] = tmp_path / f"{name}.ubj"
        files[name].write_bytes(encode_ubjson(doc))
    outcomes = _load_in_child("xgboost", "model.ubj", files)
    for name, outcome in outcomes.items():
        assert outcome.startswith("refused: "), (name, outcome)
    assert "split index 100000000 is not < num_feature (4)" in outcomes["split_idx_huge"]
    assert "children (0, 2)" in outcomes["child_cycle"]


def test_a_ubjson_value_outside_xgboosts_own_subset_is_handed_over_as_json() -> None:
    """XGBoost's UBJSON reader takes `F` for true and refuses 64-bit floats: a document
    holding either (or null) is written as JSON, which says what the file says."""
    import json
    import struct

    import xgboost

    from shipyard.flavors.booster_checks import checked_xgboost_model

    booster = booster_files.small_xgboost()
    raw = bytes(booster.save_raw("ubj"))
    assert checked_xgboost_model(raw) == raw
    for extra in (b"F", b"Z", b"D" + struct.pack(">d", 0.1)):
        data = b"{L" + struct.pack(">q", 3) + b"zzz" + extra + raw[1:]
        checked = checked_xgboost_model(data)
        assert checked.startswith(b'{"zzz":'), extra
        assert json.loads(checked)["zzz"] in (False, None, 0.1)
        again = xgboost.Booster()
        again.load_model(bytearray(checked))
        assert again.save_raw("ubj") == booster.save_raw("ubj")
