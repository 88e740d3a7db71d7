"""Shipyard's records as MLflow's JSON (its protos' names: snake_case, enums by name,
timestamps in integer milliseconds), and the fields of MLflow's requests read back.

Where shipyard keeps as a run's own field what MLflow keeps as a system tag, the tag is made
from the field on the way out: mlflow.runName (the run's name), mlflow.user, mlflow.source.name,
mlflow.source.git.commit, mlflow.parentRunId.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.errors import InvalidArgumentError
from shipyard.tracking.remote import FOREIGN_KEY, ForeignDataset

if TYPE_CHECKING:
    from shipyard.tracking.experiments import ExperimentRecord
    from shipyard.tracking.remote import DatasetRecord, MetricPoint, RunRecord

# MLflow's experiment "0" is its default one; here it is the experiment named "default"
DEFAULT_EXPERIMENT = "default"
DEFAULT_EXPERIMENT_ID = "0"
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")


def experiment_id(record: ExperimentRecord) -> str:
    return DEFAULT_EXPERIMENT_ID if record.name == DEFAULT_EXPERIMENT else str(record.id)


def experiment_json(record: ExperimentRecord) -> dict[str, Any]:
    exp_id = experiment_id(record)
    return {
        "experiment_id": exp_id,
        "name": record.name,
        "artifact_location": f"mlflow-artifacts:/{exp_id}",
        "lifecycle_stage": record.lifecycle_stage,
        "creation_time": record.created_at,
        "last_update_time": max(record.created_at, record.last_run_at or 0),
        "tags": [{"key": k, "value": v} for k, v in record.tags.items()],
    }


def number(value: float) -> float | str:
    """A double as protobuf's JSON writes it: NaN and the infinities as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def metric_json(point: MetricPoint) -> dict[str, Any]:
    return {
        "key": point.key,
        "value": number(point.value),
        "timestamp": point.timestamp,
        "step": point.step,
    }


def run_tags(run: RunRecord) -> dict[str, str]:
    """The run's tags with the system tags made from its own fields."""
    tags = dict(run.tags)
    tags["mlflow.runName"] = run.name
    tags.setdefault("mlflow.user", run.user)
    if run.source:
        tags.setdefault("mlflow.source.name", run.source)
    if run.git_commit:
        tags.setdefault("mlflow.source.git.commit", run.git_commit)
    if run.parent_run_id:
        tags.setdefault("mlflow.parentRunId", run.parent_run_id)
    return tags


def run_info_json(run: RunRecord, exp_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": exp_id,
        "user_id": run.tags.get("mlflow.user", run.user),
        "status": run.status,
        "start_time": run.start_time,
        "artifact_uri": f"mlflow-artifacts:/{exp_id}/{run.id}/artifacts",
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def run_json(run: RunRecord, exp_id: str, metrics: Sequence[MetricPoint]) -> dict[str, Any]:
    """MLflow's Run: info, data (latest metrics, params, tags), inputs, outputs."""
    return {
        "info": run_info_json(run, exp_id),
        "data": {
            "metrics": [metric_json(p) for p in metrics],
            "params": [{"key": k, "value": v} for k, v in run.params.items()],
            "tags": [{"key": k, "value": v} for k, v in run_tags(run).items()],
        },
        "inputs": {"dataset_inputs": [dataset_input_json(d) for d in run.datasets]},
        "outputs": {},
    }


def dataset_input_json(record: DatasetRecord) -> dict[str, Any]:
    """A dataset logged by an MLflow client comes back as it was sent; one logged by
    shipyard's `log_dataset` is described from its record."""
    original = record.profile.get(FOREIGN_KEY) if isinstance(record.profile, dict) else None
    if isinstance(original, dict):
        dataset = {k: str(original.get(k, "")) for k in _DATASET_FIELDS}
    else:
        colspec = [{"name": c, "type": str(t)} for c, t in record.schema.items()]
        dataset = {
            "name": record.name,
            "digest": record.digest[:8],
            "source_type": "shipyard",
            "source": orjson.dumps({"digest": record.digest}).decode(),
            "schema": orjson.dumps({"mlflow_colspec": colspec}).decode(),
            "profile": orjson.dumps({"num_rows": record.rows}).decode(),
        }
    return {"tags": [{"key": "mlflow.data.context", "value": record.role}], "dataset": dataset}


_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")


def dataset_input(item: Mapping[str, Any]) -> ForeignDataset:
    """An MLflow DatasetInput ({dataset, tags}); its mlflow.data.context tag is the role."""
    dataset = item.get("dataset")
    if not isinstance(dataset, Mapping):
        raise InvalidArgumentError("each dataset input needs a 'dataset'", field="datasets")
    fields = {k: dataset.get(k) for k in _DATASET_FIELDS}
    for name in ("name", "digest", "source_type", "source"):
        if not isinstance(fields[name], str) or not fields[name]:
            raise InvalidArgumentError(
                f"Missing value for required parameter 'dataset.{name}'", field="datasets"
            )
    tags = key_values(item, "tags")
    return ForeignDataset(
        **{k: v if isinstance(v, str) else "" for k, v in fields.items()},
        context=tags.get("mlflow.data.context") or "input",
    )


# -- reading requests ----------------------------------------------------------------------------


def text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    """A string field; a GET's query parameter given twice counts once (the first)."""
    value = body.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        if required:
            raise InvalidArgumentError(f"Missing value for required parameter '{name}'", field=name)
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # an id sent as a number
    if not isinstance(value, str):
        raise InvalidArgumentError(f"'{name}' must be a string, got {value!r}", field=name)
    return value


def required(body: Mapping[str, Any], name: str) -> str:
    """A string field that must be there."""
    value = text(body, name)
    if value is None:  # text() raised already; this tells the type checker
        raise InvalidArgumentError(f"Missing value for required parameter '{name}'", field=name)
    return value


def integer(body: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    """An int64 field: a JSON number or a string of digits (protobuf's JSON allows both)."""
    value = body.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"'{name}' must be an integer, got {value!r}", field=name
        ) from None


def double(body: Mapping[str, Any], name: str) -> float:
    """A double field: a number, or "NaN"/"Infinity"/"-Infinity" as protobuf writes them.
    The infinities are kept as the largest finite doubles, as MLflow's SQL store does."""
    value = body.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        raise InvalidArgumentError(f"Missing value for required parameter '{name}'", field=name)
    try:
        if isinstance(value, bool):
            raise ValueError
        result = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"'{name}' must be a number, got {value!r}", field=name
        ) from None
    if math.isinf(result):
        return math.copysign(sys.float_info.max, result)
    return result


def key_values(body: Mapping[str, Any], name: str) -> dict[str, str]:
    """A repeated {key, value} field as a dict (a later key wins)."""
    items = body.get(name) or []
    if not isinstance(items, list):
        raise InvalidArgumentError(f"'{name}' must be a list of {{key, value}}", field=name)
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise InvalidArgumentError(f"each of '{name}' needs a string 'key'", field=name)
        value = item.get("value")
        out[item["key"]] = "" if value is None else str(value)
    return out


def strings(body: Mapping[str, Any], name: str) -> list[str]:
    """A repeated string field (a JSON list, or a GET's repeated query parameter)."""
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgumentError(f"'{name}' must be a list of strings", field=name)
    return list(value)


def offset_token(offset: int) -> str:
    """A page token for lists paged by position (experiments, a metric's history)."""
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def read_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = data["offset"]
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError(token)
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgumentError("invalid page_token", field="page_token") from None
    return offset


def like(text: str, pattern: str, *, fold: bool = False) -> bool:
    """SQL's LIKE ('%': any run of characters, '_': one), ILIKE with `fold`, in time linear in
    the pattern's pieces: each piece between '%'s is found leftmost in turn, never by
    backtracking (a filter of many '%' must not hold a worker, and the GIL, for hours)."""
    import re

    flags = re.DOTALL | (re.IGNORECASE if fold else 0)
    pieces = pattern.split("%")
    compiled = [
        re.compile("".join("." if ch == "_" else re.escape(ch) for ch in piece), flags)
        for piece in pieces
    ]
    if len(pieces) == 1:
        return compiled[0].fullmatch(text) is not None
    head = compiled[0].match(text)
    if head is None:
        return False
    position = head.end()
    for piece in compiled[1:-1]:
        found = piece.search(text, position)
        if found is None:
            return False
        position = found.end()
    start = len(text) - len(pieces[-1])  # a piece matches as many characters as it has
    return start >= position and compiled[-1].fullmatch(text, start) is not None


def clauses(text: str | None, pattern: re.Pattern[str], usage: str) -> list[tuple[str, str, str]]:
    """An MLflow filter of clauses joined by AND, each `pattern` (groups key, op, value):
    (key with `tag.` read as `tags.` and no backquotes, op in lower case, value unquoted).
    `usage` says what a clause may be when one cannot be read."""
    if not text or not text.strip():
        return []
    out = []
    for part in re.split(r"\s+(?i:and)\s+", text.strip()):
        match = pattern.fullmatch(part)
        if match is None:
            raise InvalidArgumentError(
                f"cannot read the filter clause {part!r}: {usage}", field="filter"
            )
        value = match.group("value")
        if value[0] in "'\"":
            value = value[1:-1]
        key = re.sub(r"^tag\.", "tags.", match.group("key")).replace("`", "")
        out.append((key, match.group("op").lower(), value))
    return out


def offset_page(
    body: Mapping[str, Any], items: Sequence[Any], most: int
) -> tuple[list[Any], str | None]:
    """`items` paged by `max_results` (100 by default, `most` at most) from `page_token`:
    (the page, the next token or None on the last page)."""
    limit = integer(body, "max_results", 100) or 100
    if not 1 <= limit <= most:
        raise InvalidArgumentError(
            f"max_results must be between 1 and {most}, got {limit}", field="max_results"
        )
    start = read_offset(text(body, "page_token", required=False))
    end = start + limit
    return list(items[start:end]), offset_token(end) if end < len(items) else None
