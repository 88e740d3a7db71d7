"""Structured pruning of a PyTorch MLP: whole hidden neurons removed, so the network really
gets smaller and faster (not weights set to zero).

What is pruned: a program (the version's TorchScript) that is a chain of `Linear` layers with
element-wise activations between them — Linear → ReLU → … → Linear, in an `nn.Sequential` or a
module whose forward runs its layers in order. That is checked, never guessed: every leaf
module is a Linear or one of ACTIVATIONS, there is no parameter or buffer outside the Linears,
the program's TorchScript graph runs no operator outside CHAIN_OPS, and the chain rebuilt from
its layers answers like the program on the held-out and training rows. Anything else (a
convolution, a residual connection, a concatenation…) is refused with what is supported.

How: each hidden Linear's output neurons are ranked by the L2 norm of their weight row (the
ranking `torch.nn.utils.prune.ln_structured(n=2, dim=0)` uses, on the original weights); the
top (1 - amount) are kept (at least one), and that layer's weight rows and bias and the next
Linear's weight columns are sliced. The output layer keeps all its units. Then a short
fine-tune (FINETUNE_EPOCHS epochs of Adam, seeded) teaches the pruned network the original's
raw outputs (logits or values, mean squared error) on the training rows; `finetune=False` skips
it. Without `amount`, AMOUNTS are tried from the most pruned down and the first whose held-out
metrics are all within `tolerance` of the original's wins: accuracy, and ROC AUC too for two
classes (stricter than boosters' ROC AUC alone: a network's labels move when it is cut); R² for
a regressor.
"""

from __future__ import annotations

import itertools
import warnings
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.flavors import LoadedModel
    from shipyard.flavors.pytorch import TorchModel

AMOUNTS = (0.875, 0.75, 0.5, 0.25)  # shares of hidden neurons removed, tried in this order
FINETUNE_EPOCHS = 30
FINETUNE_BATCH = 64
FINETUNE_LR = 3e-3
SEED = 0
ACTIVATIONS = frozenset(
    {"ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softplus", "Mish"}
    | {"Identity", "Dropout"}  # nothing at inference
)
# what the TorchScript graph of such a chain may run (prim:: nodes are TorchScript's plumbing)
CHAIN_OPS = frozenset(
    {"linear", "relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus"}
    | {"mish", "dropout", "relu_", "leaky_relu_", "elu_", "silu_", "mish_", "dropout_"}
    | {"__isnot__", "__is__", "__not__", "eq", "ne", "mul", "dim"}  # the functionals' checks
)
SAME_RTOL, SAME_ATOL = 1e-4, 1e-5  # the rebuilt chain against the program (float32)
SUPPORTED = (
    "a chain of Linear layers with element-wise activations between them (an MLP such as "
    "nn.Sequential(Linear, ReLU, …, Linear)) on a column signature"
)


def prune_torch(
    native: LoadedModel,
    X: pd.DataFrame,
    y: np.ndarray,
    train: pd.DataFrame | None,
    *,
    amount: float | None,
    tolerance: float,
    finetune: bool,
    what: str,
) -> tuple[TorchModel, dict[str, Any]]:
    """The pruned model (a TorchModel with its own TorchScript program) and what was done."""
    from shipyard.flavors.pytorch import TorchModel, import_torch

    torch = import_torch()
    old: TorchModel = native.predictor.model  # type: ignore[attr-defined]
    sig = native.signature
    if getattr(sig, "kind", "columns") == "tensors":
        raise InvalidArgumentError(
            f"{what} takes named tensors; --prune works on {SUPPORTED}", field="technique"
        )
    held = _tensor(torch, sig.matrix(sig.check_frame(X), "float32"))
    rows = None if train is None else _tensor(torch, sig.matrix(sig.check_frame(train), "float32"))
    layers = chain(old.program, what)
    _check_same(torch, old.program, layers, [held] if rows is None else [held, rows], what)
    linears = [m for m in layers if isinstance(m, torch.nn.Linear)]

    def held_scores(module: Any) -> dict[str, float]:
        return _scores(y, old.classes, *_answer(torch, module, held, old))

    full = held_scores(old.program)
    teacher = None if rows is None else _outputs(torch, old.program, rows)
    tried: dict[float, dict[str, float]] = {}
    for share in (amount,) if amount is not None else AMOUNTS:
        pruned, kept = _cut(torch, layers, share)
        if finetune and rows is not None and teacher is not None:
            _finetune(torch, pruned, rows, teacher)
        pruned.eval()
        tried[share] = held_scores(pruned)
        if amount is not None or all(v >= full[k] - tolerance for k, v in tried[share].items()):
            break
    else:
        raise InvalidArgumentError(
            f"pruning {what} loses more than {tolerance:g} {'/'.join(full)} on the held-out "
            f"data at every amount tried ({', '.join(f'{a:g}' for a in AMOUNTS)}); raise "
            "--tolerance or give --amount",
            field="tolerance",
        )
    with warnings.catch_warnings():  # torch's TorchScript notices: shipyard's call, not yours
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.jit.script(pruned).eval()
    details = {
        "structure": "linear chain",
        "hidden_units_before": [m.out_features for m in linears[:-1]],
        "hidden_units_after": kept,
        "amount": share,
        "amount_chosen_by": "given (--amount)" if amount is not None else "validation curve",
        "tolerance": tolerance,
        "curve_metrics": list(full),
        "curve_full": full,
        "curve": {f"{a:g}": v for a, v in tried.items()},
        "rule": "smallest network with every metric >= the original's - tolerance",
        "ranking": "L2 norm of each hidden neuron's weight row",
        "finetune": _finetune_note(finetune, rows),
    }
    new = TorchModel(program, old.classes, old.output, "script", [], "torch.nn.Sequential")
    return new, details


def _scores(y: np.ndarray, classes: list[Any] | None, labels: Any, proba: Any) -> dict[str, float]:
    """The metrics the amount is chosen by: accuracy (and ROC AUC for two classes) for a
    classifier, R² for a regressor; higher is better for all."""
    import numpy as np
    from sklearn import metrics as m

    if proba is None or classes is None:
        return {"r2": float(m.r2_score(y, np.asarray(labels, dtype=float)))}
    found = {"accuracy": float(m.accuracy_score(y, labels))}
    if len(classes) == 2 and len(np.unique(y)) == 2:
        found["roc_auc"] = float(m.roc_auc_score(np.asarray(y) == classes[1], proba[:, 1]))
    return found


def chain(program: Any, what: str) -> list[Any]:
    """The program's layers in order, when it is a chain of Linears and activations; else a
    clear refusal naming what is supported."""
    leaves = [(name, m) for name, m in program.named_modules() if not list(m.children())]
    kinds = [_kind(m) for _name, m in leaves]
    odd = [
        f"{name or 'the root'} ({kind})"
        for (name, _m), kind in zip(leaves, kinds, strict=True)
        if kind != "Linear" and kind not in ACTIVATIONS
    ]
    if odd:
        raise _refuse(what, f"it has {', '.join(odd[:3])}")
    owned = {id(p) for _n, m in leaves if _kind(m) == "Linear" for p in m.parameters()}
    loose = [n for n, p in program.named_parameters() if id(p) not in owned]
    if loose or list(program.buffers()):
        raise _refuse(what, f"it has parameters or buffers outside its Linear layers {loose[:3]}")
    ops = {n.kind() for n in program.inlined_graph.nodes() if not n.kind().startswith("prim::")}
    others = sorted(op for op in ops if op.split("::")[-1] not in CHAIN_OPS)
    if others:
        raise _refuse(what, f"its forward runs {', '.join(others[:4])}")
    layers = [m for _n, m in leaves if _kind(m) not in ("Identity", "Dropout")]
    if sum(_kind(m) == "Linear" for m in layers) < 2 or _kind(layers[0]) != "Linear":
        raise _refuse(what, "it has no hidden Linear layer to prune")
    return [_rebuild_linear(m) if _kind(m) == "Linear" else m for m in layers]


def _kind(module: Any) -> str:
    return str(getattr(module, "original_name", type(module).__name__))


def _refuse(what: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{what} cannot be pruned safely: {why}; --prune works on {SUPPORTED}",
        field="technique",
    )


def _rebuild_linear(scripted: Any) -> Any:
    """A plain nn.Linear holding a copy of a scripted Linear's weights."""
    import torch

    weight, bias = scripted.weight.detach(), scripted.bias
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias.detach())
    return linear


def _check_same(torch: Any, program: Any, layers: list[Any], inputs: list[Any], what: str) -> None:
    rebuilt = torch.nn.Sequential(*layers).eval()
    for x in inputs:
        want = _outputs(torch, program, x)
        try:
            got = _outputs(torch, rebuilt, x)
        except RuntimeError as exc:  # layers whose shapes do not chain in definition order
            raise _refuse(what, "its layers do not run in the order they are defined") from exc
        if want.shape != got.shape or not torch.allclose(got, want, SAME_RTOL, SAME_ATOL):
            raise _refuse(
                what,
                "its forward does more than run its layers in order (an activation called as "
                "a function, e.g. torch.relu(x), is not a layer: use nn.ReLU() modules)",
            )


def _cut(torch: Any, layers: list[Any], amount: float) -> tuple[Any, list[int]]:
    """A new Sequential with each hidden Linear cut to its top (1 - amount) neurons."""
    out = list(layers)  # every Linear is replaced below; activations hold no state
    idx = [i for i, m in enumerate(out) if isinstance(m, torch.nn.Linear)]
    kept_units = []
    for here, after in itertools.pairwise(idx):
        layer, nxt = out[here], out[after]
        keep = max(1, round(layer.out_features * (1 - amount)))
        norms = layer.weight.detach().norm(p=2, dim=1)
        rows = torch.topk(norms, keep).indices.sort().values
        out[here] = _sliced(torch, layer, rows=rows)
        out[after] = _sliced(torch, nxt, cols=rows)
        kept_units.append(keep)
    return torch.nn.Sequential(*out), kept_units


def _sliced(torch: Any, layer: Any, *, rows: Any = None, cols: Any = None) -> Any:
    weight = layer.weight.detach()
    bias = None if layer.bias is None else layer.bias.detach()
    if rows is not None:
        weight, bias = weight[rows], None if bias is None else bias[rows]
    if cols is not None:
        weight = weight[:, cols]
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _finetune(torch: Any, student: Any, rows: Any, teacher: Any) -> None:
    """FINETUNE_EPOCHS of Adam on the teacher's raw outputs (mean squared error), seeded."""
    generator = torch.Generator().manual_seed(SEED)
    opt = torch.optim.Adam(student.parameters(), lr=FINETUNE_LR)
    loss = torch.nn.MSELoss()
    student.train()
    for _ in range(FINETUNE_EPOCHS):
        order = torch.randperm(len(rows), generator=generator)
        for start in range(0, len(rows), FINETUNE_BATCH):
            batch = order[start : start + FINETUNE_BATCH]
            opt.zero_grad()
            loss(student(rows[batch]), teacher[batch]).backward()
            opt.step()
    student.eval()


def _finetune_note(finetune: bool, rows: Any) -> dict[str, Any]:
    if not finetune:
        return {"done": False, "why": "skipped (--no-finetune)"}
    return {
        "done": True,
        "rows": len(rows),
        "epochs": FINETUNE_EPOCHS,
        "batch": FINETUNE_BATCH,
        "lr": FINETUNE_LR,
        "seed": SEED,
        "targets": "the original's raw outputs (mean squared error)",
    }


def _tensor(torch: Any, matrix: np.ndarray) -> Any:
    import numpy as np

    return torch.from_numpy(np.array(matrix, dtype=np.float32))


def _outputs(torch: Any, module: Any, x: Any) -> Any:
    module.eval()
    with torch.no_grad():
        return module(x).detach()


def _answer(torch: Any, module: Any, x: Any, old: TorchModel) -> tuple[Any, Any]:
    from shipyard.flavors.pytorch import answer

    return answer(_outputs(torch, module, x), old.classes, old.output)
