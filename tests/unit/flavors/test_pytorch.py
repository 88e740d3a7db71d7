"""The PyTorch flavor's choices that need no network: picking flavors never imports torch, and
a TorchClassifier's arguments are checked when it is made."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.flavors.pytorch import TorchClassifier, is_torch_module


def test_picking_a_flavor_never_imports_torch() -> None:
    script = """
import sys
from sklearn.linear_model import LinearRegression
from shipyard.flavors import pick_flavor
assert pick_flavor(LinearRegression(), "skops").name == "sklearn"
try:
    pick_flavor(object(), "skops")
except Exception as exc:
    assert "pytorch" in str(exc), exc
assert "torch" not in sys.modules, "asking whether a model is a torch module imported torch"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_torch_classifier_arguments_are_checked() -> None:
    assert not is_torch_module(object())
    with pytest.raises(InvalidArgumentError, match=r"torch\.nn\.Module"):
        TorchClassifier(object(), classes=[0, 1])
    torch = pytest.importorskip("torch", reason="torch is not installed")
    net = torch.nn.Linear(3, 2)
    with pytest.raises(InvalidArgumentError, match="distinct"):
        TorchClassifier(net, classes=["a", "a"])
    with pytest.raises(InvalidArgumentError, match="whole numbers or strings"):
        TorchClassifier(net, classes=[0.5, 1.5])
    with pytest.raises(InvalidArgumentError, match="'logits' or 'probabilities'"):
        TorchClassifier(net, classes=[0, 1], output="scores")  # type: ignore[arg-type]
    assert TorchClassifier(net, classes=[0, 1]).classes == [0, 1]
