"""MLflow 3's logged-model routes (what `mlflow.<flavor>.log_model` calls first) on shipyard's
`LoggedModels`: create, get, search, finalize, tags, params, delete, the files listing, and a
run's model outputs.

A logged model's files go through the artifact proxy under
`mlflow-artifacts:/<experiment>/models/<model_id>/artifacts`; registering it
(`model-versions/create` with `models:/<model_id>`) makes a shipyard version from them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from shipyard.compat.mlflow import convert
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.compat.mlflow.experiments import ExperimentRoutes
    from shipyard.tracking.logged_models import LoggedModelRecord, LoggedModels

MAX_PAGE: Final = 1000
_STATUS_NUMBERS: Final = {"1": "LOGGED_MODEL_PENDING", "2": "LOGGED_MODEL_READY"}
_STATUS_NUMBERS_FAILED: Final = {"3": "LOGGED_MODEL_UPLOAD_FAILED"}
_CLAUSE = re.compile(
    r"""\s*(?:attributes?\.)?(?P<key>name|model_type|status|source_run_id|model_id|
    (?:tags|params)\.`?[^`=!<> ]+`?)\s*(?P<op>=|!=|(?i:like|ilike))\s*
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*""",
    re.VERBOSE,
)


class LoggedModelRoutes:
    def __init__(self, models: LoggedModels, experiments: ExperimentRoutes) -> None:
        self.models = models
        self.experiments = experiments

    def model_json(self, m: LoggedModelRecord) -> dict[str, Any]:
        exp_id = convert.experiment_id(self.experiments.experiments.get_by_id(m.experiment_id))
        info: dict[str, Any] = {
            "model_id": m.id,
            "experiment_id": exp_id,
            "name": m.name,
            "creation_timestamp_ms": m.created_at,
            "last_updated_timestamp_ms": m.updated_at,
            "artifact_uri": f"mlflow-artifacts:/{exp_id}/models/{m.id}/artifacts",
            "status": m.status,
            "tags": [{"key": k, "value": v} for k, v in m.tags.items()],
        }
        for key in ("model_type", "source_run_id", "status_message"):
            if getattr(m, key):
                info[key] = getattr(m, key)
        params = [{"key": k, "value": v} for k, v in m.params.items()]
        return {"info": info, "data": {"params": params, "metrics": []}}

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _warm_model_libraries()
        experiment = self.experiments.record(convert.required(body, "experiment_id"))
        m = self.models.create(
            experiment.id,
            convert.text(body, "name", required=False) or "model",
            model_type=convert.text(body, "model_type", required=False),
            source_run_id=convert.text(body, "source_run_id", required=False),
            tags=convert.key_values(body, "tags"),
            params=convert.key_values(body, "params"),
        )
        return {"model": self.model_json(m)}

    def get(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"model": self.model_json(self.models.get(convert.required(body, "model_id")))}

    def finalize(self, body: Mapping[str, Any]) -> dict[str, Any]:
        status = convert.required(body, "status")
        status = {**_STATUS_NUMBERS, **_STATUS_NUMBERS_FAILED}.get(status, status)
        m = self.models.finalize(convert.required(body, "model_id"), status)
        return {"model": self.model_json(m)}

    def delete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.models.delete(convert.required(body, "model_id"))
        return {}

    def set_tags(self, body: Mapping[str, Any]) -> dict[str, Any]:
        m = self.models.set_tags(
            convert.required(body, "model_id"), convert.key_values(body, "tags")
        )
        return {"model": self.model_json(m)}

    def delete_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.models.delete_tag(
            convert.required(body, "model_id"), convert.required(body, "tag_key")
        )
        return {}

    def log_params(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.models.log_params(
            convert.required(body, "model_id"), convert.key_values(body, "params")
        )
        return {}

    def list_files(self, body: Mapping[str, Any]) -> dict[str, Any]:
        from shipyard.tracking.logged_models import clean_path, under

        model_id = convert.required(body, "model_id")
        prefix = clean_path(
            convert.text(body, "artifact_directory_path", required=False) or "", allow_empty=True
        )
        files = []
        for name, record in under(self.models.files(model_id), prefix):
            entry: dict[str, Any] = {"path": name, "is_dir": record is None}
            if record is not None:
                entry["file_size"] = record.size
            files.append(entry)
        root = f"mlflow-artifacts:/models/{model_id}/artifacts"
        return {"root_uri": root, "files": files}

    def search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        ids = [self.experiments.record(i).id for i in convert.strings(body, "experiment_ids")]
        clauses = _clauses(convert.text(body, "filter", required=False))
        run = next((v for k, op, v in clauses if k == "source_run_id" and op == "="), None)
        found = [
            m
            for m in self.models.search(ids, source_run_id=run)
            if all(_holds(m, key, op, value) for key, op, value in clauses)
        ]
        found = _ordered(found, body.get("order_by"))
        page, token = convert.offset_page(body, found, MAX_PAGE)
        out: dict[str, Any] = {"models": [self.model_json(m) for m in page]}
        if token:
            out["next_page_token"] = token
        return out

    def log_outputs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A run's model outputs: each named model must exist (it records its run itself)."""
        convert.required(body, "run_id")
        outputs = body.get("models") or []
        if not isinstance(outputs, list):
            raise InvalidArgumentError("'models' must be a list", field="models")
        for item in outputs:
            if not isinstance(item, dict):
                raise InvalidArgumentError("each of 'models' must be an object", field="models")
            self.models.get(convert.required(item, "model_id"))
        return {}


_WARMING: list[threading.Thread] = []


def _warm_model_libraries() -> None:
    """Import skops (and the scikit-learn modules it lists: seconds) in the background once a
    client logs a model: registering it loads the model moments later, while the client is
    still saving and uploading it."""
    if not _WARMING:

        def warm() -> None:
            import importlib

            importlib.import_module("skops.io")

        thread = threading.Thread(target=warm, name="shipyard-warm-skops", daemon=True)
        _WARMING.append(thread)
        thread.start()


def _clauses(text: str | None) -> list[tuple[str, str, str]]:
    usage = (
        "use name, model_type, status, source_run_id, tags.<key> or params.<key> with =, "
        "!=, LIKE or ILIKE"
    )
    return convert.clauses(text, _CLAUSE, usage)


def _holds(m: LoggedModelRecord, key: str, op: str, value: str) -> bool:
    if key.startswith("tags."):
        have = m.tags.get(key[5:])
    elif key.startswith("params."):
        have = m.params.get(key[7:])
    else:
        have = {"model_id": m.id}.get(key) or getattr(m, key, None)
    if have is None:
        return op == "!="
    if op == "=":
        return bool(have == value)
    if op == "!=":
        return bool(have != value)
    return convert.like(str(have), value, fold=op == "ilike")


def _ordered(found: list[LoggedModelRecord], order_by: Any) -> list[LoggedModelRecord]:
    """MLflow's order_by objects ({field_name, ascending}); newest first by default."""
    if not order_by:
        return found
    items = order_by if isinstance(order_by, list) else [order_by]
    for item in reversed(items):
        if not isinstance(item, dict):
            raise InvalidArgumentError("each order_by must be an object", field="order_by")
        field = str(item.get("field_name", ""))
        attribute = {
            "creation_timestamp": "created_at",
            "last_updated_timestamp": "updated_at",
            "name": "name",
            "model_id": "id",
        }.get(field.removeprefix("attributes."))
        if attribute is None:
            raise InvalidArgumentError(f"cannot order logged models by {field!r}", field="order_by")
        ascending = item.get("ascending", True) not in (False, "false")
        found = sorted(found, key=lambda m: getattr(m, attribute), reverse=not ascending)
    return found
