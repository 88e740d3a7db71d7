"""Batch scoring a model whose version names a feature service (the version tag
`feature_service`, as serving reads it): each chunk's rows carry the entity keys, any request
fields and an event time; the service's features are joined point-in-time from the offline
store by `FeatureStore.get_training_frame`, the code that built the training frame, so a row
is scored with the values the features had at its event time.

    shipyard batch score -m churn@champion -i events/ -o preds/ --timestamp event_time
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from shipyard.config import Settings

TAG = "feature_service"
DEFAULT_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class FeatureJoin:
    """The feature service a model's inputs come from, and the input's event-time column."""

    service: str
    timestamp: str = DEFAULT_TIMESTAMP

    def to_job(self) -> dict[str, str]:
        return {"service": self.service, "timestamp": self.timestamp}


def feature_join(tags: dict[str, str] | None, timestamp: str | None) -> FeatureJoin | None:
    """The join a model version asks for (None when it names no feature service)."""
    service = (tags or {}).get(TAG)
    if not service:
        return None
    return FeatureJoin(service, timestamp or DEFAULT_TIMESTAMP)


def check_inputs(join: FeatureJoin, files: list[Path], model: str) -> None:
    """Every input file has the event-time column: say so before any worker starts."""
    for path in files:
        schema = _schema(path)
        names = list(schema.names)
        if join.timestamp in names:
            _check_event_time(path, join, schema.field(join.timestamp).type)
        else:
            raise InvalidArgumentError(
                f"{path}: no column '{join.timestamp}'; {model} takes the features of service "
                f"'{join.service}', joined at each row's event time: name the input's "
                f"event-time column with --timestamp (columns: {', '.join(names[:20])})",
                field="timestamp",
            )


def _check_event_time(path: Path, join: FeatureJoin, kind: pa.DataType) -> None:
    """Numbers are not event times: read as nanoseconds since 1970 they would join every row
    to nothing (features null or default) without a word."""
    import pyarrow as pa

    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        raise InvalidArgumentError(
            f"{path}: column '{join.timestamp}' holds {kind} values, not timestamps; convert it "
            "to a timestamp (e.g. pandas.to_datetime(col, unit='s')) or name the event-time "
            "column with --timestamp",
            field="timestamp",
        )


def _schema(path: Path) -> pa.Schema:
    if path.suffix.lower() == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.open_csv(path).schema
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).schema_arrow


def joiner(settings: Settings, join: FeatureJoin) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A function adding the service's features to a chunk's frame (one feature store per
    worker process: its offline sources are read through the same cached DuckDB views)."""
    from shipyard.features import FeatureStore

    store = FeatureStore(settings)

    def add_features(frame: pd.DataFrame) -> pd.DataFrame:
        return store.get_training_frame(frame, join.service, timestamp=join.timestamp)

    return add_features
