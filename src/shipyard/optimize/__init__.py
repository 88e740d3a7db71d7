"""Optimize a registered version into a NEW version — the old one is never changed.

    result = Optimizer(open_stores()).optimize("models:/churn/3", "quantize-dynamic")
    result.version.version      # the new version, e.g. 4
    result.report["metrics"]["delta"], result.report["latency_p50_ms_per_row"]

Techniques (TECHNIQUES): INT8 quantization of the ONNX model, dynamic or static
(`optimize/quantize.py`); fewer trees for XGBoost/LightGBM chosen by the validation curve
(`optimize/prune.py`); fewer hidden neurons for a PyTorch MLP, fine-tuned on the original's
outputs (`optimize/prune_torch.py`); distillation into a small scikit-learn student
(`optimize/distill.py`).

Every result is measured before it is registered (`optimize/measure.py`): the gates' metrics
on held-out data, p50 latency of one-row predictions on this machine and the served file's
size, old and new. The new version records its parent, technique and that report in its
`optimize_*` tags, its registration is audited as "version.optimize" by whoever asked (in the
same transaction as the version), and a model with quality gates has them checked on it with
the same held-out data (`gates.check_version`), so a too-degraded version cannot get an alias.
Nothing is registered until every step succeeded: a failed optimization leaves no version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.optimize.distill import STUDENTS
from shipyard.optimize.prune import DEFAULT_TOLERANCE

if TYPE_CHECKING:
    from shipyard.flavors import LoadedModel, Signature
    from shipyard.optimize.data import HeldOut
    from shipyard.stores import Stores
    from shipyard.stores.records import ModelVersionRecord

TECHNIQUES = ("quantize-dynamic", "quantize-static", "prune", "distill")
TRAIN_ROWS = 50_000  # training rows a student learns from (a seeded sample above that)
# flavors whose loading runs their own code: never loaded to be optimized
REFUSED = {
    "python": "a pickled model",
    "python_model": "a Python model (its own code)",
}

Progress = Callable[[str], None]


@dataclass
class OptimizeResult:
    version: ModelVersionRecord
    report: dict[str, Any]
    gates: dict[str, Any] | None = field(default=None)  # the gate report, if the model has gates

    @property
    def passed_gates(self) -> bool | None:
        return None if self.gates is None else bool(self.gates.get("passed"))

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version.to_dict(), "report": self.report, "gates": self.gates}


@dataclass
class Options:
    """What a caller may pass besides the technique (CLI options, the HTTP body)."""

    data: str | None = None  # held-out file (Parquet/CSV); else the run's test/validation rows
    target: str | None = None  # its label column; else the one column that is not an input
    train_data: str | None = None  # distillation rows; else the run's train rows
    calibration: str | None = None  # static quantization rows; else the run's train rows
    tolerance: float = DEFAULT_TOLERANCE  # pruning: allowed metric loss (absolute)
    student: str = "hgb"  # distillation: one of STUDENTS
    amount: float | None = None  # PyTorch pruning: share of hidden neurons cut; else the curve
    finetune: bool = True  # PyTorch pruning: fine-tune on the original's outputs afterwards


@dataclass
class _Candidate:
    model: Any  # what `flavors.save_model` saves as the new version
    details: dict[str, Any]
    old: LoadedModel  # the parent, on the runtime the new version is measured on
    old_size: int


class Optimizer:
    """Optimizations of registered versions, over one set of stores."""

    def __init__(self, stores: Stores) -> None:
        from shipyard.registry import Registry
        from shipyard.tracking import RunQueries

        self.stores = stores
        self.registry = Registry(stores)
        self.runs = RunQueries(stores)

    def optimize(
        self,
        uri: str,
        technique: str,
        options: Options | None = None,
        *,
        progress: Progress | None = None,
    ) -> OptimizeResult:
        """Make, measure and register the optimized version; check the model's gates on it."""
        from shipyard.flavors import Signature, read_manifest
        from shipyard.optimize import data

        opts, say = options or Options(), progress or (lambda _step: None)
        _check_options(technique, opts)
        parent = self.registry.resolve(uri)
        what = f"models:/{parent.name}/{parent.version}"
        manifest = read_manifest(self.stores.artifacts, parent.artifact_digest)
        _check_flavor(parent, manifest, what, technique)
        signature = Signature.from_dict(manifest["signature"])
        say("reading held-out data")
        held = data.held_out(
            self.runs, parent, signature, data.read(opts.data, "--data"), opts.target
        )
        say(f"{technique}: building the new model")
        candidate = self._candidate(parent, manifest, signature, technique, held, opts)
        say("measuring old and new on the held-out data")
        saved, report = self._measure(parent, manifest, signature, technique, held, candidate)
        say("registering the new version")
        mv = self.registry.record_saved(
            parent.name,
            saved,
            description=_description(parent.version, technique, report),
            tags=_tags(parent, technique, report),
            event=("version.optimize", _event(report)),
        )
        return OptimizeResult(mv, report, self._gates(mv, held, say))

    def _candidate(
        self,
        parent: ModelVersionRecord,
        manifest: dict[str, Any],
        signature: Signature,
        technique: str,
        held: HeldOut,
        opts: Options,
    ) -> _Candidate:
        from shipyard.optimize import data, measure

        what = f"models:/{parent.name}/{parent.version}"
        if technique.startswith("quantize-"):
            from shipyard.flavors import LoadedModel
            from shipyard.flavors.onnx import OnnxPredictor
            from shipyard.optimize import quantize as q

            onnx_bytes, origin = q.parent_onnx(self.stores.artifacts, parent, manifest)
            calibration = None
            if technique == "quantize-static":
                given = data.read(opts.calibration, "--calibration")
                table = data.rows(
                    self.runs,
                    parent,
                    signature,
                    given,
                    purpose="calibration",
                    option="--calibration",
                )
                frame = data.sample(table.frame, q.CALIBRATION_ROWS)
                calibration = signature.matrix(signature.check_frame(frame), "float32")
            classes = manifest.get("classes") if manifest.get("has_proba") else None
            mode = technique.removeprefix("quantize-")
            model, details = q.quantize(
                onnx_bytes, mode, calibration=calibration, classes=classes, what=what
            )
            details["onnx_source"] = origin
            old_onnx = OnnxPredictor.from_bytes(onnx_bytes, signature)
            old = LoadedModel(old_onnx, signature, parent.flavor, manifest=manifest)
            return _Candidate(model, details, old, len(onnx_bytes))
        old = self.registry.load(what, backend="python")
        old_size = measure.served_size(self.stores.artifacts, manifest, onnx_digest=None)
        if technique == "prune" and old.flavor == "pytorch":
            model, details = self._prune_torch(parent, signature, old, held, opts)
            return _Candidate(model, details, old, old_size)
        if technique == "prune":
            from shipyard.optimize.prune import prune

            pruned, details = prune(old, held.X, held.y, tolerance=opts.tolerance, what=what)
            return _Candidate(pruned, details, old, old_size)
        from shipyard.optimize.distill import distill

        table = data.rows(
            self.runs,
            parent,
            signature,
            data.read(opts.train_data, "--train-data"),
            purpose="training",
            option="--train-data",
        )
        student, details = distill(
            old, data.sample(table.frame, TRAIN_ROWS), student=opts.student, what=what
        )
        details["train_data"] = table.source
        return _Candidate(student, details, old, old_size)

    def _prune_torch(
        self,
        parent: ModelVersionRecord,
        signature: Signature,
        old: LoadedModel,
        held: HeldOut,
        opts: Options,
    ) -> tuple[Any, dict[str, Any]]:
        from shipyard.optimize import data
        from shipyard.optimize.prune_torch import prune_torch

        train, source = None, None
        if opts.finetune:
            table = data.rows(
                self.runs,
                parent,
                signature,
                data.read(opts.train_data, "--train-data"),
                purpose="fine-tuning",
                option="--train-data",
            )
            train, source = data.sample(table.frame, TRAIN_ROWS), table.source
        model, details = prune_torch(
            old,
            held.X,
            held.y,
            train,
            amount=opts.amount,
            tolerance=opts.tolerance,
            finetune=opts.finetune,
            what=f"models:/{parent.name}/{parent.version}",
        )
        if source is not None:
            details["train_data"] = source
        return model, details

    def _measure(
        self,
        parent: ModelVersionRecord,
        manifest: dict[str, Any],
        signature: Signature,
        technique: str,
        held: HeldOut,
        candidate: _Candidate,
    ) -> tuple[tuple[str, str, Signature, dict[str, Any]], dict[str, Any]]:
        """Save the new model (artifacts only: no version yet) and measure old and new."""
        from shipyard.flavors import load_model, save_model
        from shipyard.optimize import measure

        artifacts = self.stores.artifacts
        example = signature.to_model_input(
            signature.columns_from_records(_records(manifest["input_example"]))
        )
        try:
            saved = save_model(
                candidate.model,
                artifacts,
                input_example=example,
                allow_missing=signature.takes_missing,
            )
        except InvalidArgumentError as exc:
            if exc.details.get("field") != "allow_missing":
                raise
            # the new model fails on missing values the old one took: it refuses them instead
            saved = save_model(candidate.model, artifacts, input_example=example)
            candidate.details["missing_values"] = "refused: the optimized model fails on them"
        new = load_model(artifacts, saved[1], what="the optimized model")
        old_metrics = measure.metrics(candidate.old, held.X, held.y)
        new_metrics = measure.metrics(new, held.X, held.y)
        keys = measure.headline(old_metrics, classifier=candidate.old.has_proba)
        report = {
            "parent": f"{parent.name}/{parent.version}",
            "technique": technique,
            "held_out": {"source": held.source, "rows": len(held.X), "target": held.target},
            "metrics": {
                "old": {k: old_metrics[k] for k in keys},
                "new": {k: new_metrics.get(k) for k in keys},
                "delta": measure.deltas(old_metrics, new_metrics, keys),
            },
            "latency_p50_ms_per_row": {
                "old": measure.p50_ms_per_row(candidate.old, held.X),
                "new": measure.p50_ms_per_row(new, held.X),
                "runtime": new.backend,
            },
            "size_bytes": {
                "old": candidate.old_size,
                "new": measure.served_size(artifacts, saved[3], onnx_digest=None),
            },
            "details": candidate.details,
        }
        return saved, report

    def _gates(self, mv: ModelVersionRecord, held: HeldOut, say: Progress) -> dict[str, Any] | None:
        """The model's quality gates checked on the new version with the same held-out rows
        (the report is stored with it, as `shipyard gate check` does); None without gates."""
        from shipyard.pipelines.gates import check_version

        if not self.registry.gates(mv.name):
            return None
        say("checking the model's quality gates")
        try:
            report = check_version(
                self.registry, mv.name, mv.version, held.frame, target=held.target
            )
        except InvalidArgumentError as exc:  # e.g. a fairness column the held-out rows lack
            return {"passed": False, "error": str(exc)}
        return report.to_dict()


def _check_options(technique: str, opts: Options) -> None:
    if technique not in TECHNIQUES:
        raise InvalidArgumentError(
            f"unknown technique {technique!r}; use one of: {', '.join(TECHNIQUES)}",
            field="technique",
        )
    if opts.student not in STUDENTS:
        raise InvalidArgumentError(
            f"unknown student {opts.student!r}; use one of: {', '.join(STUDENTS)}",
            field="student",
        )
    if not 0 <= opts.tolerance < 1:
        raise InvalidArgumentError("tolerance is in [0, 1)", field="tolerance")
    if opts.amount is not None and not 0 < opts.amount < 1:
        raise InvalidArgumentError("amount is in (0, 1)", field="amount")


def _check_flavor(
    mv: ModelVersionRecord, manifest: dict[str, Any], what: str, technique: str
) -> None:
    """Refuse what shipyard will not load to optimize: models whose loading runs code."""
    kind = REFUSED.get(mv.flavor) or (
        "a pickled model" if manifest.get("serialization") == "pickle" else None
    )
    if kind is not None:
        raise InvalidArgumentError(
            f"{what} is {kind}: shipyard optimizes models it loads without running their "
            "code (scikit-learn saved with skops, XGBoost, LightGBM, ONNX)",
            field="uri",
        )
    if (manifest.get("signature") or {}).get("kind") == "tensors":
        raise InvalidArgumentError(
            f"{what} takes tensor inputs: models optimize measures a version on held-out rows "
            "of a table, so it optimizes models of table columns only (for now)",
            field="technique",
        )


def _records(example: dict[str, Any]) -> list[dict[str, Any]]:
    from shipyard.flavors.signature import example_records

    return example_records(example)


def _tags(parent: ModelVersionRecord, technique: str, report: dict[str, Any]) -> dict[str, str]:
    from shipyard.optimize.data import SOURCE_RUN_TAG, source_run

    tags = {
        "optimize_parent": str(parent.version),
        "optimize_technique": technique,
        "optimize_report": json.dumps(report, sort_keys=True, default=str),
    }
    run_id = source_run(parent)
    if run_id is not None:
        tags[SOURCE_RUN_TAG] = run_id
    return tags


def _event(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "parent": report["parent"],
        "technique": report["technique"],
        "delta": report["metrics"]["delta"],
        "latency_p50_ms_per_row": report["latency_p50_ms_per_row"],
        "size_bytes": report["size_bytes"],
    }


def _description(version: int, technique: str, report: dict[str, Any]) -> str:
    return f"{technique} of version {version}: " + summary(report)


def summary(report: dict[str, Any]) -> str:
    """One line: metric deltas, latency and size, old → new."""
    delta = ", ".join(f"{k} {v:+.4f}" for k, v in report["metrics"]["delta"].items())
    lat, size = report["latency_p50_ms_per_row"], report["size_bytes"]
    return (
        f"{delta}; p50 {lat['old']:.3f} → {lat['new']:.3f} ms/row; "
        f"size {_kb(size['old'])} → {_kb(size['new'])}"
    )


LOWER_IS_BETTER = frozenset({"rmse"})


def worse(report: dict[str, Any], margin: float = 0.01) -> list[str]:
    """The headline metrics the new version lost more than `margin` on (absolute; for RMSE,
    relative to the old value): what a caller is warned of when no gate stopped it."""
    old, delta = report["metrics"]["old"], report["metrics"]["delta"]
    out = []
    for key, change in delta.items():
        if key in LOWER_IS_BETTER:
            if change > margin * abs(old.get(key) or 0.0):
                out.append(f"{key} {change:+.4f}")
        elif change < -margin:
            out.append(f"{key} {change:+.4f}")
    return out


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


__all__ = ["TECHNIQUES", "OptimizeResult", "Optimizer", "Options", "summary", "worse"]
