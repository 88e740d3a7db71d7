"""`shipyard models optimize --prune` of PyTorch models: an MLP of two hidden layers of 64
trained on generated data loses whole hidden neurons (its saved state dict is smaller), is
fine-tuned on the original's outputs and stays within tolerance of its held-out metric; the old
version never changes; networks that are not a chain of Linear layers are refused, not guessed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed (pip install 'shipyard[torch]'; CI installs it)"
)

import shipyard as sy  # noqa: E402
from shipyard.config import Settings  # noqa: E402
from shipyard.errors import InvalidArgumentError  # noqa: E402
from shipyard.flavors import read_manifest  # noqa: E402
from shipyard.optimize import Optimizer, Options, measure  # noqa: E402
from shipyard.stores import open_stores  # noqa: E402
from tests.integration.test_cli_basics import cli, refused  # noqa: E402
from tests.integration.test_optimize import check_report, files_digest  # noqa: E402

pytestmark = pytest.mark.slow  # trains networks

TOLERANCE = 0.02


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture(autouse=True)
def _fewer_latency_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "LATENCY_CALLS", 40)


class Residual(torch.nn.Module):  # type: ignore[misc]
    """Linear layers only, but a skip connection: not a chain."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.a = torch.nn.Linear(features, 16)
        self.b = torch.nn.Linear(16, features)
        self.out = torch.nn.Linear(features, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.b(torch.relu(self.a(x))) + x)


class Reordered(torch.nn.Module):  # type: ignore[misc]
    """A chain, but its layers are defined in another order than they run."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out = torch.nn.Linear(16, 2)
        self.hidden = torch.nn.Linear(features, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


class ConvNet(torch.nn.Module):  # type: ignore[misc]
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 4, 3)
        self.head = torch.nn.Linear(4 * (features - 2), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x.unsqueeze(1))).flatten(1))


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    from sklearn.datasets import make_classification

    X, y = make_classification(1500, 10, n_informative=6, random_state=0)
    X = (X - X[:1000].mean(0)) / X[:1000].std(0)
    return {"X": pd.DataFrame(X.astype(np.float32), columns=[f"x{i}" for i in range(10)]), "y": y}


def _fit(module: Any, data: dict[str, Any], epochs: int = 150) -> Any:
    torch.manual_seed(0)
    xt = torch.from_numpy(data["X"][:1000].to_numpy().copy())
    yt = torch.from_numpy(data["y"][:1000])
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    module.train()
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(xt), yt).backward()
        opt.step()
    return module.eval()


@pytest.fixture(scope="module")
def mlp(data: dict[str, Any]) -> Any:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(10, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 2),
    )
    return _fit(net, data)


def log(name: str, module: Any, data: dict[str, Any]) -> Any:
    X, y = data["X"], data["y"]
    with sy.start_run(experiment="optimize-torch") as run:
        run.log_dataset(X[:1000], name="train", keep_rows=True)
        run.log_dataset(
            X[1000:].assign(label=y[1000:]), name="holdout", role="test", keep_rows=True
        )
        return run.log_model(
            sy.TorchClassifier(module, classes=[0, 1]), name=name, input_example=X[:5]
        )


def untouched(reg: Any, name: str, version: int) -> tuple[dict[str, Any], str]:
    """A version's record and files hash, less its ONNX conversion (the registry's background
    worker converts the new version meanwhile: not the optimizer's doing)."""
    record, digest = files_digest(reg, name, version)
    return {k: v for k, v in record.items() if not k.startswith("onnx_")}, digest


def hidden_units(reg: Any, name: str, version: int) -> list[int]:
    """The out-features of every Linear but the last, read from the saved state dict."""
    mv = reg.get_version(name, version)
    manifest = read_manifest(reg.stores.artifacts, mv.artifact_digest)
    path = reg.stores.artifacts.local_path(manifest["files"]["state_dict.pt"])
    weights = torch.load(path, weights_only=True)
    rows = [w.shape[0] for k, w in weights.items() if k.endswith("weight")]
    return rows[:-1]


def test_pruning_an_mlp_keeps_the_fewest_neurons_within_tolerance(
    settings: Settings, data: dict[str, Any], mlp: Any
) -> None:
    reg = sy.Registry(open_stores(settings))
    log("mlp", mlp, data)
    before = untouched(reg, "mlp", 1)
    result = Optimizer(reg.stores).optimize("models:/mlp/1", "prune", Options(tolerance=TOLERANCE))
    mv = result.version
    assert mv.version == 2 and mv.flavor == "pytorch"
    report = check_report(mv, 1, "prune")
    details = report["details"]
    assert hidden_units(reg, "mlp", 1) == [64, 64] == details["hidden_units_before"]
    after = hidden_units(reg, "mlp", 2)
    assert after == details["hidden_units_after"] and all(n < 64 for n in after)
    assert details["amount_chosen_by"] == "validation curve" and details["finetune"]["done"]
    kept = details["curve"][f"{details['amount']:g}"]
    assert set(kept) == {"accuracy", "roc_auc"}
    assert all(kept[k] >= details["curve_full"][k] - TOLERANCE for k in kept)
    for metric in ("accuracy", "roc_auc"):  # the rule, on the same rows
        assert report["metrics"]["delta"][metric] >= -TOLERANCE - 1e-9
    assert report["size_bytes"]["new"] < report["size_bytes"]["old"]
    assert report["latency_p50_ms_per_row"]["runtime"] == "torch"
    assert untouched(reg, "mlp", 1) == before  # the old version is untouched
    pruned = reg.load("models:/mlp/2", backend="python")
    X = data["X"][1000:]
    assert pruned.predict_proba(X).shape == (500, 2) and pruned.classes == [0, 1]
    old = reg.load("models:/mlp/1", backend="python")
    assert np.mean(old.predict(X) == pruned.predict(X)) >= 0.9
    print(
        "\nFIGURES",
        json.dumps({k: report[k] for k in ("metrics", "size_bytes")}),
        after,
        report["latency_p50_ms_per_row"],
    )


def test_a_fixed_amount_through_the_cli_and_refusals(
    settings: Settings, data: dict[str, Any], mlp: Any, capsys: Any
) -> None:
    reg = sy.Registry(open_stores(settings))
    log("mlp", mlp, data)
    code, out, err = cli(
        capsys, "models", "optimize", "models:/mlp/1", "--prune", "--amount", "0.5",
        "--no-finetune", "--json",
    )  # fmt: skip
    assert code == 0, err
    details = json.loads(out)["report"]["details"]
    assert details["amount"] == 0.5 and details["amount_chosen_by"] == "given (--amount)"
    assert not details["finetune"]["done"] and "train_data" not in details
    assert hidden_units(reg, "mlp", 2) == [32, 32] == details["hidden_units_after"]
    assert "amount is in (0, 1)" in refused(
        capsys, "models", "optimize", "models:/mlp/1", "--prune", "--amount", "1"
    )
    assert "--prune optimizes it" in refused(
        capsys, "models", "optimize", "models:/mlp/1", "--distill"
    )


@pytest.mark.parametrize(
    ("module", "why"),
    [
        (ConvNet(10), r"it has conv \(Conv1d\)"),
        (Residual(10), r"its forward runs aten::add"),
        (Reordered(10), r"do not run in the order they are defined"),
    ],
)
def test_what_is_not_a_linear_chain_is_refused(
    settings: Settings, data: dict[str, Any], module: Any, why: str
) -> None:
    reg = sy.Registry(open_stores(settings))
    log("net", _fit(module, data, epochs=5), data)
    with pytest.raises(InvalidArgumentError, match=why) as caught:
        Optimizer(reg.stores).optimize("models:/net/1", "prune")
    message = str(caught.value)
    assert "cannot be pruned safely" in message and "a chain of Linear layers" in message
    assert caught.value.details.get("field") == "technique"
    assert len(reg.list_versions("net")) == 1


def test_a_regressor_is_pruned_by_its_r2(settings: Settings) -> None:
    from sklearn.datasets import make_regression

    X, y = make_regression(1500, 8, noise=5.0, random_state=0)
    X, y = X.astype(np.float32), (y / y.std()).astype(np.float32)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1)
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(X[:1000]), torch.from_numpy(y[:1000, None])
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(xt), yt).backward()
        opt.step()
    with sy.start_run(experiment="optimize-torch") as run:
        run.log_dataset(frame[:1000], name="train", keep_rows=True)
        run.log_dataset(
            frame[1000:].assign(label=y[1000:]), name="test", role="test", keep_rows=True
        )
        run.log_model(net.eval(), name="price", input_example=frame[:5])
    reg = sy.Registry(open_stores(settings))
    result = Optimizer(reg.stores).optimize("models:/price/1", "prune", Options(tolerance=0.02))
    report = check_report(result.version, 1, "prune", classifier=False)
    details = report["details"]
    assert details["curve_metrics"] == ["r2"] and report["metrics"]["delta"]["r2"] >= -0.02 - 1e-9
    assert hidden_units(reg, "price", 2) == details["hidden_units_after"]
    assert details["hidden_units_after"][0] < 64
    assert report["size_bytes"]["new"] < report["size_bytes"]["old"]
