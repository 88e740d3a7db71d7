"""Where monitored data comes from: files (Parquet or CSV), and an endpoint's prediction log
compared with the training data profile of the model version it serves."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.sketches import Profile

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.config import Settings
    from shipyard.stores import Stores

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_window(text: str) -> float:
    """`90s`, `15m`, `1h`, `2d`, `1w` → seconds."""
    m = re.fullmatch(r"\s*(\d{1,12}(?:\.\d{1,9})?)\s*([smhdw])\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise InvalidArgumentError(
            f"window {text!r} is not a duration like 30m, 1h or 7d", field="window"
        )
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > 100 * 365 * 86400:
        raise InvalidArgumentError(f"window {text!r} is longer than 100 years", field="window")
    return seconds


def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet or CSV file (or a folder of Parquet files) as a DataFrame."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InvalidArgumentError(f"no such file: {p}", field="path")
    suffix = p.suffix.lower()
    try:
        if p.is_dir() or suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError) as exc:
        raise InvalidArgumentError(f"cannot read {p}: {exc}", field="path") from exc
    raise InvalidArgumentError(f"{p}: use a .parquet or .csv file", field="path")


def endpoint_reference(stores: Stores, endpoint: str) -> tuple[Profile, list[str], int]:
    """The training-data profile of the version `endpoint` serves now, restricted to the
    model's input columns. Returns (profile, input columns, version)."""
    from shipyard.registry import Registry

    record = stores.metadata.endpoints.get(endpoint)
    registry = Registry(stores)
    mv = registry.resolve(record.model_uri)
    if (mv.signature or {}).get("kind") == "tensors":
        raise InvalidArgumentError(
            f"drift is not computable for tensor inputs: endpoint '{endpoint}' serves model "
            f"'{mv.name}' version {mv.version}, whose inputs are tensors, and no training "
            "profile of tensors exists. Its prediction log keeps a summary of each input per "
            "row (<input>.mean, .std, .min, .max, .shape): compare those with --reference FILE",
            field="endpoint",
        )
    inputs = [c["name"] for c in (mv.signature or {}).get("inputs", [])]
    recorded = registry.reference_profile(mv)
    if recorded is not None:  # features, the model's predictions and the target
        profile = Profile.from_dict(recorded)
        columns = [c for c in [*inputs, "_prediction", "_label"] if c in profile.columns]
        return Profile({c: profile.columns[c] for c in columns}, profile.rows), columns, mv.version
    if mv.run_id is None:
        raise NotFoundError(
            f"model '{mv.name}' version {mv.version} has no source run, so no training profile; "
            "pass --reference FILE"
        )
    run = stores.metadata.runs.get_run(mv.run_id)
    train = [d for d in run.datasets if d.role == "train"] or list(run.datasets)
    if not train:
        raise NotFoundError(
            f"run {run.id[:8]} logged no dataset; log the training data with "
            "run.log_dataset(X_train, name='train') or pass --reference FILE"
        )
    profile = Profile.from_dict(train[0].profile)
    columns = [c for c in inputs if c in profile.columns] or list(profile.columns)
    return Profile({c: profile.columns[c] for c in columns}, profile.rows), columns, mv.version


def endpoint_window(
    settings: Settings,
    endpoint: str,
    seconds: float,
    *,
    now_ms: int | None = None,
    successful_only: bool = True,
) -> pd.DataFrame:
    """Predictions an endpoint logged in the last `seconds` (only the answered ones unless
    `successful_only` is False)."""
    from shipyard.stores.predictions import PredictionLogStore

    end = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    table = PredictionLogStore(settings.predictions_dir).read(
        endpoint, start_ms=end - int(seconds * 1000), end_ms=end + 1
    )
    if table.num_rows == 0:
        raise NotFoundError(
            f"endpoint '{endpoint}' logged no prediction in the last {seconds:g} s "
            f"(prediction log: {settings.predictions_dir})"
        )
    df: pd.DataFrame = table.to_pandas()
    if not successful_only:
        return df
    ok: pd.DataFrame = df[df["_status"] == 200]
    return ok


def endpoint_labels(settings: Settings, endpoint: str) -> pd.DataFrame:
    """Every label sent back for `endpoint` (labels may arrive long after their prediction)."""
    from shipyard.stores.predictions import PredictionLogStore

    table = PredictionLogStore(settings.labels_dir).read(endpoint)
    df: pd.DataFrame = table.to_pandas()
    return df


def import_labels(settings: Settings, endpoint: str, path: str | Path) -> int:
    """Labels from a file with `request_id` and `label` columns (and `row` for multi-row
    requests) into the endpoint's label log. Returns the rows imported."""
    from shipyard.stores.predictions import PredictionLogStore, labels_table

    df = read_table(path)
    missing = [c for c in ("request_id", "label") if c not in df.columns]
    if missing:
        raise InvalidArgumentError(
            f"{path} lacks column(s) {', '.join(missing)}; it needs request_id and label "
            "(and row for multi-row requests)",
            field="path",
        )
    if df.empty:
        raise InvalidArgumentError(f"{path} has no rows", field="path")
    rows = df["row"].astype(int).tolist() if "row" in df.columns else [0] * len(df)
    if df["label"].isna().any():
        raise InvalidArgumentError(
            f"{path}: {int(df['label'].isna().sum())} row(s) have no label", field="label"
        )
    now = time.time_ns() // 1_000_000
    items = [
        (str(r), int(i), v.item() if hasattr(v, "item") else v, now)
        for r, i, v in zip(df["request_id"], rows, df["label"], strict=True)
    ]
    PredictionLogStore(settings.labels_dir).write(endpoint, labels_table(items), ts_ms=now)
    return len(items)


def unissued_request_ids(settings: Settings, endpoint: str, path: str | Path) -> int:
    """How many distinct request ids of a label file `endpoint` never issued (under this
    server's request id secret): typos, another endpoint's ids, or made-up ones. The operator
    may still import them; `shipyard monitor labels` says how many there were."""
    from shipyard.requestids import RequestIds, request_id_key

    ids = RequestIds(request_id_key(settings))
    seen = set(map(str, read_table(path)["request_id"]))
    return sum(not ids.issued(endpoint, rid) for rid in seen)
