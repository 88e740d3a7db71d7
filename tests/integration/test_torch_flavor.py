"""PyTorch models — an MLP trained on generated data, logged bare (a regressor) or as a
`shipyard.TorchClassifier`, or given as a ScriptModule — saved as TorchScript + state dict,
loaded in another process where their class does not exist, converted to ONNX only when the
conversion matches, served by torch itself otherwise, over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (pip install 'shipyard[torch]'; CI installs it)"
)

import shipyard as sy  # noqa: E402
from shipyard.config import Settings  # noqa: E402
from shipyard.errors import (  # noqa: E402
    InvalidArgumentError,
    ModelLoadError,
    UntrustedModelError,
)
from shipyard.flavors import check_environment, read_manifest  # noqa: E402
from shipyard.registry import Registry  # noqa: E402
from shipyard.serving.app import create_serving_app  # noqa: E402
from shipyard.serving.http import BackgroundServer  # noqa: E402
from shipyard.stores import open_stores  # noqa: E402

pytestmark = pytest.mark.slow  # trains networks, starts servers and another interpreter


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


class MLP(torch.nn.Module):  # type: ignore[misc]
    """Defined only here: another process cannot import it."""

    def __init__(self, features: int, out: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(features, 32),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(32, out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Unexportable(torch.nn.Module):  # type: ignore[misc]
    """lgamma has no ONNX export in torch.onnx: the conversion fails, torch serves it. Its
    `Any` annotation is not TorchScript: shipyard traces it instead of scripting it."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, 1)

    def forward(self, x: Any) -> Any:
        return torch.lgamma(self.linear(x).abs() + 1.0)


def _train(model: Any, X: np.ndarray, y: np.ndarray, loss: Any, epochs: int = 60) -> Any:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss(model(xt), yt).backward()
        opt.step()
    return model  # left in training mode: shipyard must save and answer in eval mode


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    from sklearn.datasets import make_classification, make_regression

    Xc, yc = make_classification(n_samples=600, n_features=12, n_informative=6, random_state=0)
    Xr, yr = make_regression(n_samples=600, n_features=8, noise=5.0, random_state=0)
    columns_c = [f"x{i}" for i in range(12)]
    torch.manual_seed(0)
    clf = _train(MLP(12, 2), Xc, yc, torch.nn.functional.cross_entropy)
    yr = (yr / np.abs(yr).max()).astype(np.float32)
    reg = _train(MLP(8, 1), Xr, yr, lambda out, y: torch.nn.functional.mse_loss(out.squeeze(1), y))
    return {
        "Xc": pd.DataFrame(Xc, columns=columns_c),  # float64 columns: cast to float32 for it
        "yc": yc,
        "Xr": Xr.astype(np.float32),  # a 2-D array: columns f0…f7
        "clf": clf,
        "reg": reg,
    }


def _own(module: Any, X: Any) -> np.ndarray:
    """The module's own answer, in eval mode (its mode restored)."""
    was = module.training
    module.eval()
    with torch.no_grad():
        out = module(torch.from_numpy(np.asarray(X, dtype=np.float32))).numpy()
    module.train(was)
    return out.ravel() if out.shape[1] == 1 else out


def _in_another_process(settings: Settings, script: str) -> str:
    env = {**os.environ, "SHIPYARD_HOME": str(settings.home), "SHIPYARD_DB_URL": settings.db_url}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_logged_modules_load_in_another_process_without_their_class(
    settings: Settings, data: dict[str, Any], tmp_path: Path
) -> None:
    Xc, Xr, clf, reg = data["Xc"], data["Xr"], data["clf"], data["reg"]
    scripted = torch.jit.script(MLP(8, 1))  # in training mode: its dropout is on
    with sy.start_run(experiment="torch") as run:
        mv = run.log_model(
            sy.TorchClassifier(clf, classes=["no", "yes"]),
            name="clf",
            input_example=Xc[:20],
            onnx=False,
        )
        assert mv.flavor == "pytorch"
        run.log_model(reg, name="reg", input_example=Xr[:20], onnx=False)
        run.log_model(scripted, name="scripted", input_example=Xr[:20], onnx=False)
    assert clf.training and scripted.training, "logging changed the user's module's mode"
    stores = open_stores(settings)
    manifest = read_manifest(
        stores.artifacts, Registry(stores).resolve("models:/reg/1").artifact_digest
    )
    assert manifest["serialization"] == "torchscript" and manifest["torchscript"] == "script"
    assert set(manifest["files"]) == {"model.torchscript.pt", "state_dict.pt", "requirements.txt"}
    assert manifest["environment"]["framework"] == ["torch"]
    assert manifest["python_class"].endswith("test_torch_flavor.MLP")
    Xc.to_parquet(tmp_path / "Xc.parquet")
    np.save(tmp_path / "Xr.npy", Xr)
    script = f"""
import json, numpy as np, pandas as pd, shipyard as sy
Xc = pd.read_parquet({str(tmp_path / "Xc.parquet")!r}); Xr = np.load({str(tmp_path / "Xr.npy")!r})
out = {{}}
for name, X in (("clf", Xc), ("reg", Xr), ("scripted", Xr)):
    m = sy.load_model(f"models:/{{name}}/1")  # no trusted=True, no MLP class here
    doc = {{"predict": m.predict(X).tolist(), "backend": m.backend, "classes": m.classes}}
    if m.has_proba:
        doc["proba"] = m.predict_proba(X).tolist()
    out[name] = doc
print(json.dumps(out))
"""
    loaded = json.loads(_in_another_process(settings, script))
    assert {doc["backend"] for doc in loaded.values()} == {"torch"}
    logits = _own(clf, Xc)
    proba = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    assert loaded["clf"]["classes"] == ["no", "yes"]
    assert loaded["clf"]["predict"] == np.array(["no", "yes"])[proba.argmax(1)].tolist()
    np.testing.assert_allclose(loaded["clf"]["proba"], proba, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded["reg"]["predict"], _own(reg, Xr), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        loaded["scripted"]["predict"], _own(scripted, Xr), rtol=1e-5, atol=1e-6
    )
    accuracy = float(np.mean(proba.argmax(1) == data["yc"]))
    assert accuracy > 0.85, accuracy  # it did learn: the parity above is of a real model


def test_conversion_parity_is_recorded_and_onnx_serves(
    settings: Settings, data: dict[str, Any]
) -> None:
    Xc, Xr = data["Xc"], data["Xr"]
    reg = Registry(open_stores(settings))
    reg.register("reg", data["reg"], input_example=Xr[:40])  # onnx="auto": in the background
    reg.register("clf", sy.TorchClassifier(data["clf"], classes=[0, 1]), input_example=Xc[:40])
    Registry.wait_for_conversions(timeout=120)
    for name in ("reg", "clf"):
        mv = reg.resolve(f"models:/{name}/1")
        assert mv.onnx_status == "ok", (name, mv.onnx_detail)
        assert "on 40 example rows (float inputs)" in (mv.onnx_detail or ""), mv.onnx_detail
    regressor = sy.load_model("models:/reg/1")
    assert regressor.backend == "onnxruntime"
    np.testing.assert_allclose(regressor.predict(Xr), _own(data["reg"], Xr), rtol=1e-4, atol=1e-5)
    classifier = sy.load_model("models:/clf/1")
    assert classifier.backend == "onnxruntime"
    logits = torch.from_numpy(_own(data["clf"], Xc))
    assert np.array_equal(classifier.predict(Xc), logits.argmax(1).numpy())
    np.testing.assert_allclose(
        classifier.predict_proba(Xc), torch.softmax(logits, 1).numpy(), atol=1e-5
    )
    # converted at log time (onnx=True) too: the parity is on the manifest
    mv = reg.register("now", data["reg"], input_example=Xr[:10], onnx=True)
    manifest = read_manifest(open_stores(settings).artifacts, mv.artifact_digest)
    assert manifest["onnx"]["status"] == "ok"
    assert "on 10 example rows" in manifest["onnx"]["parity"]


def _serve(settings: Settings, uri: str) -> BackgroundServer:
    return BackgroundServer(create_serving_app(settings, uri))


def test_unconvertible_module_is_served_by_torch_and_says_why(
    settings: Settings, data: dict[str, Any]
) -> None:
    Xr = data["Xr"]
    model = Unexportable(8)
    reg = Registry(open_stores(settings))
    mv = reg.register("lgamma", model, input_example=Xr[:20])
    Registry.wait_for_conversions(timeout=120)
    manifest = read_manifest(open_stores(settings).artifacts, mv.artifact_digest)
    assert manifest["torchscript"] == "trace", manifest
    assert "torch.jit.script failed" in manifest["torchscript_notes"][0]
    env = {**os.environ, "SHIPYARD_HOME": str(settings.home), "SHIPYARD_DB_URL": settings.db_url}
    shown = subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", "models", "show", "lgamma", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    (version,) = json.loads(shown.stdout)["versions"]
    assert version["onnx_status"] == "refused"
    assert (
        "lgamma" in version["onnx_detail"]
        and "served by its own runtime" in (version["onnx_detail"])
    ), version["onnx_detail"]
    with _serve(settings, "models:/lgamma/1") as srv:
        srv.wait_ready()
        r = httpx.post(f"{srv.url}/endpoints/lgamma/predict", json={"instances": Xr[:50].tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], _own(model, Xr[:50]), rtol=1e-6)


def test_served_classifier_answers_labels_and_probabilities(
    settings: Settings, data: dict[str, Any]
) -> None:
    Xc, clf = data["Xc"], data["clf"]
    reg = Registry(open_stores(settings))
    reg.register(
        "churn",
        sy.TorchClassifier(clf, classes=["no", "yes"]),
        input_example=Xc[:20],
        reference_data=Xc,  # profiled with the saved model's predictions (a module has no predict)
        reference_target=np.array(["no", "yes"])[data["yc"]],
    )
    Registry.wait_for_conversions(timeout=120)
    mv = reg.resolve("models:/churn/1")
    assert mv.onnx_status == "refused" and "class indices" in (mv.onnx_detail or "")
    assert "_prediction" in json.dumps(reg.reference_profile(mv))
    rows = Xc.iloc[:30]
    with _serve(settings, "models:/churn/1") as srv:
        srv.wait_ready()
        r = httpx.post(
            f"{srv.url}/endpoints/churn/predict",
            json={"instances": rows.to_dict(orient="records"), "probabilities": True},
        )
        bad = httpx.post(
            f"{srv.url}/endpoints/churn/predict",
            json={"instances": [{k: v for k, v in rows.iloc[0].items() if k != "x3"}]},
        )
    assert r.status_code == 200, r.text
    doc = r.json()
    proba = torch.softmax(torch.from_numpy(_own(clf, rows)), 1).numpy()
    assert doc["classes"] == ["no", "yes"]
    assert doc["predictions"] == np.array(["no", "yes"])[proba.argmax(1)].tolist()
    np.testing.assert_allclose(doc["probabilities"], proba, rtol=1e-5, atol=1e-6)
    assert bad.status_code in (400, 422) and "x3" in bad.text, bad.text


def test_other_torch_major_refuses_unless_ignored(settings: Settings, data: dict[str, Any]) -> None:
    mv = Registry(open_stores(settings)).register(
        "reg", data["reg"], input_example=data["Xr"][:5], onnx=False
    )
    manifest = read_manifest(open_stores(settings).artifacts, mv.artifact_digest)
    manifest["environment"]["packages"]["torch"] = "1.13.1"
    with pytest.raises(ModelLoadError, match=r"torch wanted 1\.13\.1"):
        check_environment(manifest, onnx=False, ignore_env=False, warn=False)
    # served through ONNX, torch's version does not matter
    assert check_environment(manifest, onnx=True, ignore_env=False, warn=False)


def test_bad_input_is_refused_clearly(settings: Settings, data: dict[str, Any]) -> None:
    reg = Registry(open_stores(settings))
    with pytest.raises(InvalidArgumentError, match="pytorch"):
        reg.register("what", object(), input_example=data["Xr"][:5])
    with pytest.raises(InvalidArgumentError, match="two or more distinct classes"):
        sy.TorchClassifier(data["clf"], classes=["only"])
    with pytest.raises(InvalidArgumentError, match=r"must return \[n, 3\] scores"):
        reg.register(
            "wrong",
            sy.TorchClassifier(data["clf"], classes=[0, 1, 2]),
            input_example=data["Xc"][:5],
        )

    class Pair(torch.nn.Module):  # type: ignore[misc]
        def forward(self, x: Any) -> Any:
            return x, x

    with pytest.raises(InvalidArgumentError, match="one tensor"):
        reg.register("pair", Pair(), input_example=data["Xr"][:5])


class Writes(torch.nn.Module):  # type: ignore[misc]
    """TorchScript runs no Python, but its torch.save writes files on the serving host."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, "/tmp/shipyard-test-written.pt")
        return x.sum(dim=1)


def test_a_program_that_touches_files_is_refused(
    settings: Settings, data: dict[str, Any], tmp_path: Path
) -> None:
    from shipyard.flavors.pytorch import check_program

    reg = Registry(open_stores(settings))
    with pytest.raises(UntrustedModelError, match=r"names save"):
        reg.register("writes", torch.jit.script(Writes()), input_example=data["Xr"][:5])
    archive = tmp_path / "writes.pt"
    torch.jit.save(torch.jit.script(Writes()), str(archive))
    with pytest.raises(UntrustedModelError, match="trusted=True"):
        check_program(archive)  # what `load` runs first, unless trusted


class TinyConv(torch.nn.Module):  # type: ignore[misc]
    """An image model: [n, 1, 8, 8] → [n, 3] logits (a tensor signature, not columns)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.head = torch.nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))


def test_image_model_takes_a_4d_tensor_by_name_and_shape(settings: Settings) -> None:
    torch.manual_seed(0)
    model = TinyConv().eval()
    images = torch.randn(6, 1, 8, 8)
    reg = Registry(open_stores(settings))
    mv = reg.register("digits", model, input_example=images[:2], onnx=False)
    assert mv.signature["kind"] == "tensors", mv.signature
    (spec,) = mv.signature["inputs"]
    assert spec["shape"] == [-1, 1, 8, 8], spec
    with torch.no_grad():
        own = model(images).numpy()
    loaded = sy.load_model("models:/digits/1")
    assert loaded.backend == "torch"
    np.testing.assert_allclose(loaded.predict(images.numpy()), own, rtol=1e-5, atol=1e-6)
    name = spec["name"]
    with _serve(settings, "models:/digits/1") as srv:
        srv.wait_ready()
        tensor = {"name": name, "datatype": "FP32", "shape": [6, 1, 8, 8]}
        ok = httpx.post(
            f"{srv.url}/v2/models/digits/infer",
            json={"inputs": [{**tensor, "data": images.numpy().ravel().tolist()}]},
        )
        wrong = httpx.post(
            f"{srv.url}/v2/models/digits/infer",
            json={"inputs": [{**tensor, "shape": [6, 1, 8, 7], "data": [0.0] * (6 * 56)}]},
        )
    assert ok.status_code == 200, ok.text
    (out,) = ok.json()["outputs"]
    assert out["shape"] == [6, 3], out
    np.testing.assert_allclose(np.reshape(out["data"], (6, 3)), own, rtol=1e-5, atol=1e-6)
    assert wrong.status_code == 422, wrong.text
    err = wrong.json()
    assert err["field"] == name and err["expected"] == [-1, 1, 8, 8], err
    assert err["received"] == [6, 1, 8, 7], err


def test_image_model_converts_to_onnx_with_its_named_input(settings: Settings) -> None:
    torch.manual_seed(1)
    model = TinyConv().eval()
    images = torch.randn(5, 1, 8, 8)
    reg = Registry(open_stores(settings))
    now = reg.register("digits", model, input_example=images[:3], onnx=True)
    later = reg.register("digits", model, input_example=images[:3])  # converted in background
    Registry.wait_for_conversions(timeout=120)
    assert reg.resolve(f"models:/digits/{later.version}").onnx_status == "ok"
    with torch.no_grad():
        own = model(images).numpy()
    for version in (now.version, later.version):
        loaded = sy.load_model(f"models:/digits/{version}")
        assert loaded.backend == "onnxruntime"
        np.testing.assert_allclose(loaded.predict(images.numpy()), own, rtol=1e-4, atol=1e-5)


def test_image_classifier_converts_with_its_probabilities(settings: Settings) -> None:
    torch.manual_seed(2)
    model = TinyConv().eval()
    images = torch.randn(8, 1, 8, 8)
    reg = Registry(open_stores(settings))
    reg.register("digits", sy.TorchClassifier(model, classes=[0, 1, 2]), input_example=images[:4])
    Registry.wait_for_conversions(timeout=120)
    mv = reg.resolve("models:/digits/1")
    assert mv.onnx_status == "ok", mv.onnx_detail
    loaded = sy.load_model("models:/digits/1")
    assert loaded.backend == "onnxruntime" and loaded.has_proba
    with torch.no_grad():
        proba = torch.softmax(model(images), 1).numpy()
    np.testing.assert_allclose(loaded.predict_proba(images.numpy()), proba, atol=1e-5)
    assert np.array_equal(loaded.predict(images.numpy()), proba.argmax(1))


def _rewritten(archive: Path, out: Path, rename: Any = None, edit: Any = None) -> Path:
    """A copy of a TorchScript archive with its code entries renamed and/or their text edited,
    as a hostile uploader would make it (torch finds code files whatever their case)."""
    import zipfile

    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data, name = src.read(info), info.filename
            if name.endswith(".py") and "/code/" in name:
                name = rename(name) if rename else name
                data = edit(data.decode()).encode() if edit else data
            dst.writestr(name, data)
    return out


class Restores(torch.nn.Module):  # type: ignore[misc]
    """Runs its own code while the archive loads."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.n

    @torch.jit.export
    def __getstate__(self) -> int:
        return self.n

    @torch.jit.export
    def __setstate__(self, state: int) -> None:
        self.n = state


def test_hidden_file_operators_and_load_time_code_are_refused(tmp_path: Path) -> None:
    from shipyard.flavors.pytorch import MAX_CODE_BYTES, check_program

    plain = tmp_path / "writes.pt"
    torch.jit.save(torch.jit.script(Writes()), str(plain))
    hidden = [
        _rewritten(plain, tmp_path / "a.pt", rename=lambda n: n.replace("/code/", "/CODE/")),
        _rewritten(plain, tmp_path / "b.pt", rename=lambda n: n[:-3] + ".PY"),
        _rewritten(  # a line break and a comment between `torch.` and the operator
            plain, tmp_path / "c.pt", edit=lambda t: t.replace("torch.save", "(torch.  # x\n save)")
        ),
    ]
    for archive in hidden:
        with pytest.raises(UntrustedModelError, match="names save"):
            check_program(archive)
    restores = tmp_path / "restores.pt"
    torch.jit.save(torch.jit.script(Restores()), str(restores))
    with pytest.raises(UntrustedModelError, match="__setstate__"):
        check_program(restores)
    benign = tmp_path / "benign.pt"
    torch.jit.save(torch.jit.script(TinyConv()), str(benign))
    check_program(benign)  # a plain network passes
    padded = _rewritten(benign, tmp_path / "big.pt", edit=lambda t: t + "#" * MAX_CODE_BYTES)
    with pytest.raises(ModelLoadError, match="MiB of code"):
        check_program(padded)
