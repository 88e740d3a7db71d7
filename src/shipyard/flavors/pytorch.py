"""PyTorch models ("pytorch", extra `shipyard[torch]`): a `torch.nn.Module` or a TorchScript
module, saved as a TorchScript program plus its state dict — never a pickle of your class —
so another process loads it without your code and without `trusted=True`.

    run.log_model(net, name="price", input_example=X[:20])          # a regressor: its output
    run.log_model(sy.TorchClassifier(net, classes=[0, 1, 2]),       # a classifier: logits
                  name="churn", input_example=X[:20])               # (or output="probabilities")

Saving: a ScriptModule given is kept as it is; any other module is compiled with
`torch.jit.script`, or traced on the input example when scripting fails. Either way the program
is run on the example (all rows, and one row: the batch size stays free) and must answer like
the module itself, or it is refused.

Files: `model.torchscript.pt` (`torch.jit.save`) and `state_dict.pt` (`torch.save` of the
program's state dict). Loading: `torch.jit.load` rebuilds the program from its TorchScript
source and runs only TorchScript operators — no Python code and no Python pickle of arbitrary
objects — then the weights come from the state dict read with `torch.load(weights_only=True)`,
PyTorch's restricted unpickler that builds tensors and plain containers only. (A
`torch.export` program is not stored: `torch.export.load` falls back to a full pickle.)

Inputs: a column signature (a DataFrame or 2-D array example) reaches the module as one
float32 matrix [n, features] in signature order; a tensor signature (`kind == "tensors"`) as
its named N-d arrays, passed positionally in the signature's order.

ONNX fast path: `torch.onnx.export`'s TorchScript-based exporter (it takes the loaded
ScriptModule the background conversion has, and needs no onnxscript), batch dimension dynamic,
checked on the example rows by `tree_onnx.convert_checked` (labels equal, probabilities within
PROBA_ATOL, a regressor within TORCH_RTOL relative); otherwise served by torch itself.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from shipyard.errors import (
    ConversionError,
    InvalidArgumentError,
    MissingDependencyError,
    ModelLoadError,
    UntrustedModelError,
)
from shipyard.flavors.base import Saved

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shipyard.flavors.signature import Signature

PROGRAM = "model.torchscript.pt"
WEIGHTS = "state_dict.pt"
# A float32 network run by onnxruntime sums in another order than torch's kernels: outputs
# differ in the last float32 digits (≈1e-7 relative per operation), more than the 1e-6 allowed
# to trees, whose ONNX drift comes from thresholds rather than arithmetic.
TORCH_RTOL = 1e-5
# the program must answer like the module on the example: the same kernels, so only as much
# as float32 rounding allows
SAME_RTOL, SAME_ATOL = 1e-5, 1e-6
OPSET = 17
# names a TorchScript program may not hold unless trusted: operators that touch files, and a
# method that runs while the archive loads
FILE_OPERATORS = frozenset({"save", "load", "from_file", "__setstate__"})
Output = Literal["logits", "probabilities"]


@dataclass(frozen=True)
class TorchClassifier:
    """A PyTorch classifier to log: `module` answers [n, len(classes)] scores per row —
    `output="logits"` (softmax gives the probabilities) or `"probabilities"`; a prediction is
    the class of the highest. A module logged bare is served as what it returns."""

    module: Any
    classes: Sequence[Any]
    output: Output = "logits"

    def __post_init__(self) -> None:
        classes = [c.item() if hasattr(c, "item") else c for c in self.classes]
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise InvalidArgumentError(
                f"classes must name two or more distinct classes, got {classes!r}",
                field="classes",
            )
        if not all(isinstance(c, int | str) and not isinstance(c, bool) for c in classes):
            raise InvalidArgumentError(
                "classes must be whole numbers or strings (one per output column)",
                field="classes",
            )
        if self.output not in ("logits", "probabilities"):
            raise InvalidArgumentError(
                f"output must be 'logits' or 'probabilities', not {self.output!r}",
                field="output",
            )
        if not is_torch_module(self.module):
            raise InvalidArgumentError(
                f"TorchClassifier takes a torch.nn.Module, not {type(self.module).__name__}",
                field="module",
            )
        object.__setattr__(self, "classes", classes)


@dataclass
class TorchModel:
    """What is saved and served: the TorchScript program and how to read its output."""

    program: Any  # a torch.jit.ScriptModule, in eval mode
    classes: list[Any] | None = None
    output: Output | None = None
    made_by: str = "given"  # "given", "script" or "trace"
    notes: list[str] = field(default_factory=list)
    source: str | None = None  # the class of the module logged, "module.QualName"

    def predict(self, x: Any) -> np.ndarray:
        """The answer on a 2-D table or matrix (what `save_model`'s missing-value check calls)."""
        import numpy as np

        out = run_program(self.program, [np.asarray(x, dtype=np.float32)])
        predictions: np.ndarray = answer(out, self.classes, self.output)[0]
        return predictions


def import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            "PyTorch models need torch: pip install 'shipyard[torch]'"
        ) from exc
    return torch


def is_torch_module(model: Any) -> bool:
    """Whether `model` is a torch.nn.Module (a ScriptModule is one too), by its type's names
    only: torch is not imported to ask."""
    return any(
        c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module"
        for c in type(model).__mro__
    )


def run_program(program: Any, inputs: list[np.ndarray]) -> Any:
    """The module's output tensor(s) on numpy inputs, without autograd."""
    import numpy as np

    torch = import_torch()
    tensors = [torch.from_numpy(a if a.flags.writeable else np.array(a)) for a in inputs]
    with torch.inference_mode():
        return program(*tensors)


def answer(out: Any, classes: list[Any] | None, output: Output | None) -> tuple[Any, Any]:
    """(predictions, probabilities or None) from the module's output tensor."""
    import numpy as np

    torch = import_torch()
    if not isinstance(out, torch.Tensor):
        raise InvalidArgumentError(
            f"the module must return one tensor, it returned a {type(out).__name__}"
        )
    if classes is None:
        values = out.detach().numpy()
        return (values.ravel() if values.ndim == 2 and values.shape[1] == 1 else values), None
    if out.ndim != 2 or out.shape[1] != len(classes):
        raise InvalidArgumentError(
            f"a classifier of {len(classes)} classes must return [n, {len(classes)}] scores, "
            f"this one returns shape {list(out.shape)}",
            field="classes",
        )
    with torch.inference_mode():
        proba = torch.softmax(out, dim=1) if output == "logits" else out
    probabilities = proba.detach().numpy()
    labels: np.ndarray = np.asarray(classes)[np.argmax(probabilities, axis=1)]
    return labels, probabilities


class TorchPredictor:
    """A TorchScript program run by torch itself."""

    backend = "torch"

    def __init__(self, model: TorchModel, signature: Signature) -> None:
        self.model = model
        self.signature = signature
        self.tensors = getattr(signature, "kind", "columns") == "tensors"

    @property
    def convertible(self) -> TorchModel:
        """What `to_onnx` takes from a loaded model: the program with its classes."""
        return self.model

    def _inputs(self, columns: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if self.tensors:  # named N-d tensors, passed in the signature's order
            return [columns[name] for name in self.signature.names]
        return [self.signature.matrix(columns, "float32")]

    def predict_both(
        self, columns: Mapping[str, np.ndarray], proba: bool = True
    ) -> tuple[Any, Any]:
        """Predictions (and probabilities, when asked and the model has them) from one run."""
        out = run_program(self.model.program, self._inputs(columns))
        labels, probabilities = answer(out, self.model.classes, self.model.output)
        return labels, probabilities if proba else None

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.predict_both(columns)[0]  # type: ignore[no-any-return]

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray | None:
        if self.model.classes is None:
            return None
        return self.predict_both(columns)[1]  # type: ignore[no-any-return]


class PyTorchFlavor:
    name = "pytorch"
    converts = True

    def owns(self, model: Any) -> bool:
        return isinstance(model, TorchClassifier | TorchModel) or is_torch_module(model)

    def takes_missing(self, model: Any) -> bool:
        return False  # NaN goes through a network's arithmetic: refused unless told

    def prepare(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> TorchModel:
        """The TorchScript program of `model`, checked on the example (see the module doc)."""
        if isinstance(model, TorchModel):
            return model
        classes, output = None, None
        if isinstance(model, TorchClassifier):
            model, classes, output = model.module, list(model.classes), model.output
        inputs = TorchPredictor(TorchModel(None), signature)._inputs(example_columns)
        program, made_by, notes = _compile(model, inputs)
        _check_compiled(program)  # before it runs: what would not load untrusted is refused now
        source = f"{type(model).__module__}.{type(model).__qualname__}"
        saved = TorchModel(program, classes, output, made_by, notes, source)
        _check_same(model, saved, inputs)
        return saved

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved:
        from shipyard.flavors.sklearn import package_version

        if not isinstance(model, TorchModel):
            raise InvalidArgumentError("a PyTorch model is saved through save_model")
        torch = import_torch()
        program, weights = folder / PROGRAM, folder / WEIGHTS
        with _quiet():
            torch.jit.save(model.program, str(program))
        torch.save(dict(model.program.state_dict()), weights)
        doc: dict[str, Any] = {
            "serialization": "torchscript",
            "torchscript": model.made_by,
            "requirements": {"torch": package_version("torch")},
            "has_proba": model.classes is not None,
        }
        if model.classes is not None:
            doc["classes"] = model.classes
            doc["torch_output"] = model.output
        if model.notes:
            doc["torchscript_notes"] = model.notes
        if model.source:
            doc["python_class"] = model.source  # the user's class, not the wrapper
        return Saved({PROGRAM: program, WEIGHTS: weights}, doc)

    def load(
        self,
        files: Mapping[str, Path],
        manifest: Mapping[str, Any],
        signature: Signature,
        *,
        trusted: bool,
    ) -> TorchPredictor:
        torch = import_torch()
        if not trusted:
            check_program(files[PROGRAM])
        try:
            with _quiet():
                program = torch.jit.load(str(files[PROGRAM]), map_location="cpu")
            weights = torch.load(files[WEIGHTS], map_location="cpu", weights_only=True)
            program.load_state_dict(weights, strict=True)
        except Exception as exc:  # torch raises RuntimeError, UnpicklingError, KeyError…
            raise ModelLoadError(f"not a readable PyTorch model: {exc}") from exc
        program.eval()
        classes = manifest.get("classes") if manifest.get("has_proba") else None
        output = manifest.get("torch_output") if classes is not None else None
        if output not in (None, "logits", "probabilities"):
            raise ModelLoadError(f"unknown PyTorch output {output!r} in the manifest")
        model = TorchModel(program, None if classes is None else list(classes), output)
        return TorchPredictor(model, signature)

    def to_onnx(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> bytes:
        from shipyard.flavors.tree_onnx import convert_checked

        if not isinstance(model, TorchModel):
            model = self.prepare(model, signature, example_columns)
        classes = model.classes
        if classes is not None and classes != list(range(len(classes))):
            raise ConversionError(
                f"a PyTorch classifier with classes {classes[:5]} is served by torch: its "
                "ONNX conversion answers class indices 0…k-1, not the labels"
            )
        expected, proba = TorchPredictor(model, signature).predict_both(example_columns)
        return convert_checked(
            model,
            functools.partial(_convert, signature=signature),
            expected,
            proba,
            signature,
            example_columns,
            what="PyTorch classifier" if classes is not None else "PyTorch model",
            extra="torch",
            dtypes=("float",),
            rtol=TORCH_RTOL,
        )


@contextmanager
def _quiet() -> Iterator[None]:
    """torch's deprecation notices (TorchScript, the TorchScript-based ONNX exporter) silenced
    around shipyard's own calls: the user did not make them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


MAX_CODE_BYTES = 16 * 2**20  # the TorchScript source of one archive, all files together


def check_program(path: Path | IO[bytes]) -> None:
    """Refuse a TorchScript archive whose code names an operator that reads or writes files
    (`save`, `load`, `from_file`) or that runs code while it loads (`__setstate__`): TorchScript
    runs no Python, but those would let a model read the serving host's files or write to it.

    Every entry torch could compile is read — any name ending in `.py`, whatever its folder and
    case (torch's reader ignores case) — within MAX_CODE_BYTES in all, and any NAME token of
    those is refused wherever it stands: no spacing, line break or comment between `torch.` and
    the name hides it."""
    import io
    import tokenize
    import zipfile

    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"not a readable TorchScript archive: {exc}") from exc
    with archive:
        sources = [i for i in archive.infolist() if i.filename.lower().endswith(".py")]
        if sum(i.file_size for i in sources) > MAX_CODE_BYTES:
            raise ModelLoadError(
                f"the TorchScript archive holds more than {MAX_CODE_BYTES // 2**20} MiB of code"
            )
        for info in sources:
            source = archive.read(info).decode("utf-8", errors="replace")
            try:
                names = {
                    t.string
                    for t in tokenize.generate_tokens(io.StringIO(source).readline)
                    if t.type == tokenize.NAME
                }
            except (tokenize.TokenError, SyntaxError) as exc:
                raise ModelLoadError(
                    f"unreadable TorchScript code in {info.filename}: {exc}"
                ) from exc
            found = sorted(names & FILE_OPERATORS)
            if found:
                raise UntrustedModelError(
                    f"the TorchScript program names {', '.join(found)} ({info.filename}), which "
                    "reads or writes files or runs code at load; shipyard loads it only with "
                    "trusted=True (CLI: --trusted)"
                )


def _check_compiled(program: Any) -> None:
    import io

    torch = import_torch()
    buffer = io.BytesIO()
    with _quiet():
        torch.jit.save(program, buffer)
    buffer.seek(0)
    check_program(buffer)


def _compile(module: Any, inputs: list[np.ndarray]) -> tuple[Any, str, list[str]]:
    """(program, how it was made, notes): a ScriptModule as it is, else scripted, else traced
    on the example — in eval mode, the user's module left in the mode it was in."""
    torch = import_torch()
    if isinstance(module, torch.jit.ScriptModule):  # a copy, set to eval mode: not the user's
        import io

        buffer = io.BytesIO()
        with _quiet():
            torch.jit.save(module, buffer)
            buffer.seek(0)
            return torch.jit.load(buffer, map_location="cpu").eval(), "given", []
    was_training = module.training
    module.eval()
    try:
        try:
            with _quiet():
                return torch.jit.script(module).eval(), "script", []
        except Exception as exc:  # TorchScript refuses Python it cannot compile
            why = f"torch.jit.script failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        tensors = tuple(torch.from_numpy(a) for a in inputs)
        with _quiet(), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            try:
                traced = torch.jit.trace(module, tensors, check_trace=False)
            except Exception as exc:
                raise InvalidArgumentError(
                    f"shipyard saves PyTorch modules as TorchScript: {why}, and tracing it on "
                    f"the input example failed ({type(exc).__name__}: {exc})"
                ) from exc
        notes = [why, *(str(w.message) for w in seen if w.category is torch.jit.TracerWarning)]
        return traced.eval(), "trace", notes[:5]
    finally:
        module.train(was_training)


def _check_same(module: Any, saved: TorchModel, inputs: list[np.ndarray]) -> None:
    """The program answers like the module, on every example row and on one row alone."""
    import numpy as np

    torch = import_torch()
    was_training = module.training
    module.eval()
    try:
        for rows in (slice(None), slice(0, 1)):
            part = [a[rows] for a in inputs]
            want = run_program(module, part)
            got = run_program(saved.program, part)
            if not isinstance(want, torch.Tensor):
                raise InvalidArgumentError(
                    f"the module must return one tensor, it returned a {type(want).__name__}"
                )
            answer(want, saved.classes, saved.output)  # the right shape for a classifier
            same = got.shape == want.shape and np.allclose(
                got.numpy(), want.numpy(), rtol=SAME_RTOL, atol=SAME_ATOL, equal_nan=True
            )
            if not same:
                raise InvalidArgumentError(
                    f"the TorchScript program ({saved.made_by}) answers differently from the "
                    f"module on {'one row' if rows.stop else 'the input example'}: control flow "
                    "that depends on the data or the batch size was frozen by tracing; make the "
                    "module scriptable (torch.jit.script) or log a ScriptModule"
                )
            if not np.isfinite(want.numpy()).all():
                raise InvalidArgumentError("the module answers NaN or infinity on the example")
    finally:
        module.train(was_training)


_EXPORTING = threading.Lock()


def _convert(model: TorchModel, dtype: str, n_features: int, *, signature: Signature) -> Any:
    """The ONNX model of the program (a classifier's with label and probability outputs): one
    [batch, features] input for columns, the signature's named inputs for tensors."""
    import io

    import onnx

    torch = import_torch()
    if dtype != "float":
        raise ConversionError("PyTorch models are converted with float32 inputs only")
    if getattr(signature, "kind", "columns") == "tensors":
        specs: list[Any] = list(signature.inputs)  # TensorSpec: a name, a dtype, a shape
        if any(spec.dtype != "float" for spec in specs):
            raise ConversionError("PyTorch models are converted with float32 inputs only")
        names = [spec.name for spec in specs]
        dummies = tuple(torch.zeros([2 if d == -1 else d for d in spec.shape]) for spec in specs)
    else:
        names, dummies = ["input"], (torch.zeros(2, n_features),)
    axes = {name: {0: "batch"} for name in [*names, "output"]}
    buffer = io.BytesIO()
    # torch.onnx keeps its export state in module globals: one export at a time per process
    # (the registry's background conversion and an optimizer's may otherwise meet)
    with _EXPORTING, _quiet():
        # a loaded ScriptModule's methods carry no Python signature: the exporter says so
        warnings.filterwarnings("ignore", "no signature found", UserWarning)
        torch.onnx.export(
            model.program,
            dummies,
            buffer,
            input_names=names,
            output_names=["output"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    onx = onnx.load_model_from_string(buffer.getvalue())
    if model.classes is not None:
        _add_label(onx, logits=model.output == "logits")
    return onx


def _add_label(onx: Any, *, logits: bool) -> None:
    """Make the graph answer (label, probabilities), as OnnxPredictor reads a classifier: the
    softmax of the logits (or the probabilities as they are) and the index of the highest."""
    from onnx import TensorProto, helper

    graph = onx.graph
    (scores,) = graph.output
    graph.output.remove(scores)
    proba = "probabilities"
    if logits:
        graph.node.append(helper.make_node("Softmax", [scores.name], [proba], axis=1))
    else:
        graph.node.append(helper.make_node("Identity", [scores.name], [proba]))
    graph.node.append(helper.make_node("ArgMax", [proba], ["label"], axis=1, keepdims=0))
    graph.output.extend(
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info(proba, TensorProto.FLOAT, ["batch", None]),
        ]
    )


PYTORCH = PyTorchFlavor()
