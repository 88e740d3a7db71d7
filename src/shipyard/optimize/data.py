"""The data an optimization needs: held-out rows with their labels (to measure, and to choose
how many trees to keep), training rows (to distill) and calibration rows (static quantization).

Each comes from what the caller passed, else from the datasets logged with their rows
(`run.log_dataset(df, name=…, role=…, keep_rows=True)`) on the version's source run: roles
HELD_OUT_ROLES for held-out data, "train" for training and calibration rows. A run that logged
only fingerprints (digest, schema, profile) has no rows to give: the error says what to pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shipyard.flavors import Signature
    from shipyard.stores.records import ModelVersionRecord
    from shipyard.tracking import RunQueries

HELD_OUT_ROLES = ("test", "validation", "valid", "holdout", "eval")
TRAIN_ROLES = ("train", "training")
SOURCE_RUN_TAG = "optimize_source_run"  # an optimized version's run: its parent's


@dataclass
class Table:
    """Rows from somewhere, and where they came from (said in the version's report)."""

    frame: pd.DataFrame
    source: str


@dataclass
class HeldOut:
    frame: pd.DataFrame  # features, label and any other column (fairness gates read them)
    X: pd.DataFrame  # the model's input columns
    y: np.ndarray
    target: str
    source: str


def source_run(mv: ModelVersionRecord) -> str | None:
    """The run whose datasets serve a version: its own, or its parent's for an optimized one."""
    return mv.run_id or mv.tags.get(SOURCE_RUN_TAG)


def kept(runs: RunQueries, mv: ModelVersionRecord, roles: tuple[str, ...]) -> Table | None:
    """The first dataset of `roles` (in that order of preference) whose rows the version's
    source run kept, or None."""
    run_id = source_run(mv)
    if run_id is None:
        return None
    found = runs.kept_datasets(run_id)
    for role in roles:
        for kept_role, name, digest in found:
            if kept_role == role:
                source = f"run {run_id[:8]} dataset '{name}' ({role})"
                return Table(runs.dataset_rows(digest), source)
    return None


def held_out(
    runs: RunQueries,
    mv: ModelVersionRecord,
    signature: Signature,
    given: Table | None,
    target: str | None,
) -> HeldOut:
    """Held-out rows with labels: `given`, else the source run's test/validation dataset."""
    table = given or kept(runs, mv, HELD_OUT_ROLES)
    if table is None:
        raise InvalidArgumentError(
            f"no held-out data for models:/{mv.name}/{mv.version} "
            f"({_why(mv, 'test/validation')}); pass --data FILE (Parquet/CSV with the label "
            "column, named by --target), or "
            "log one with run.log_dataset(df, name=..., role='test', keep_rows=True)",
            field="data",
        )
    frame = table.frame
    label = _target(frame, signature.names, target, table.source)
    X = features(frame, signature, table.source)
    if len(X) < 2:
        raise InvalidArgumentError(
            f"{table.source} has {len(X)} row(s): too few to measure on", field="data"
        )
    return HeldOut(frame, X, frame[label].to_numpy(), label, table.source)


def rows(
    runs: RunQueries,
    mv: ModelVersionRecord,
    signature: Signature,
    given: Table | None,
    *,
    purpose: str,
    option: str,
) -> Table:
    """Training rows (features only): `given`, else the source run's train dataset."""
    table = given or kept(runs, mv, TRAIN_ROLES)
    if table is None:
        raise InvalidArgumentError(
            f"no {purpose} rows for models:/{mv.name}/{mv.version} ({_why(mv, 'train')}); "
            f"pass {option} FILE (Parquet/CSV with the "
            "model's input columns), or log it with run.log_dataset(df, name=..., "
            "role='train', keep_rows=True)",
            field=option.lstrip("-").replace("-", "_"),
        )
    return Table(features(table.frame, signature, table.source), table.source)


def features(frame: pd.DataFrame, signature: Signature, source: str) -> pd.DataFrame:
    """The model's input columns of `frame`, in the signature's order."""
    names = signature.names
    missing = [n for n in names if n not in frame.columns]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        raise InvalidArgumentError(
            f"{source} lacks the model's input column(s) {shown}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
            field="data",
        )
    return frame[names]


def _target(frame: pd.DataFrame, names: list[str], target: str | None, source: str) -> str:
    """The label column: `target`, else the one column of `frame` that is not an input."""
    if target is not None:
        if target not in frame.columns:
            raise InvalidArgumentError(
                f"target column '{target}' is not in {source} (columns: "
                f"{', '.join(map(str, frame.columns[:20]))})",
                field="target",
            )
        return target
    others = [str(c) for c in frame.columns if c not in set(names)]
    if len(others) == 1:
        return others[0]
    if not others:
        raise InvalidArgumentError(
            f"{source} holds only the model's inputs, no label column; pass --data FILE "
            "with the label and --target COLUMN",
            field="target",
        )
    raise InvalidArgumentError(
        f"which column of {source} is the label? pass --target, one of: {', '.join(others[:10])}",
        field="target",
    )


def read(path: str | None, what: str) -> Table | None:
    """A Parquet or CSV file the caller named, or None."""
    if path is None:
        return None
    from shipyard.monitoring.sources import read_table

    try:
        return Table(read_table(path), f"file {path}")
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{what}: {exc}", field=what.lstrip("-")) from exc


def sample(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """At most `n` rows of `frame`, a seeded sample above that (kept in their order)."""
    if len(frame) <= n:
        return frame
    import numpy as np

    idx = np.sort(np.random.default_rng(0).choice(len(frame), n, replace=False))
    return frame.iloc[idx]


def _why(mv: ModelVersionRecord, roles: str) -> str:
    run_id: Any = source_run(mv)
    if not run_id:
        return "it was registered without a run"
    return f"its run {run_id[:8]} kept no {roles} dataset with its rows"
