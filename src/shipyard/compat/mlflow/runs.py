"""MLflow's run and metric routes on shipyard's `RunQueries` and `RemoteRuns`.

The run's name is shipyard's own field, so the mlflow.runName tag sets it (create, set-tag,
log-batch) instead of being stored as a tag; the other system tags a client sends
(mlflow.user, mlflow.source.*) are stored as tags, and their values also fill the run's
user, source and git commit. Searches page with shipyard's keyset tokens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shipyard.compat.mlflow import convert, filters
from shipyard.compat.mlflow.experiments import view_type
from shipyard.errors import InvalidArgumentError
from shipyard.tracking.remote import MetricPoint

if TYPE_CHECKING:
    from shipyard.compat.mlflow.experiments import ExperimentRoutes
    from shipyard.tracking import RemoteRuns, RunQueries
    from shipyard.tracking.logged_models import LoggedModels
    from shipyard.tracking.remote import RunRecord

RUN_NAME_TAG = "mlflow.runName"
# MLflow 2's log_model records each model logged to a run in this tag (a JSON list)
LOGGED_MODELS_TAG = "mlflow.log-model.history"
MAX_RUNS_PAGE = 50_000
DEFAULT_RUNS_PAGE = 1000
# MLflow's limits on one log-batch request
MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS = 1000, 100, 100
MAX_HISTORY_PAGE = 25_000
MAX_INTERVAL_RUNS, MAX_INTERVAL_POINTS = 100, 2500  # get-history-bulk-interval's limits


class RunRoutes:
    def __init__(
        self,
        queries: RunQueries,
        runs: RemoteRuns,
        experiments: ExperimentRoutes,
        models: LoggedModels | None = None,
    ) -> None:
        self.queries = queries
        self.runs = runs
        self.experiments = experiments
        self.models = models

    # -- reading -----------------------------------------------------------------------------

    def run_json(self, run: RunRecord) -> dict[str, Any]:
        exp_id = convert.experiment_id(self.experiments.experiments.get(run.experiment))
        metrics = self.queries.latest_metrics([run.id]).get(run.id, [])
        return convert.run_json(run, exp_id, metrics)

    def get(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The run, with the models it logged as its outputs (MLflow 3's model_outputs)."""
        out = self.run_json(self.queries.get(_run_id(body)))
        if self.models is not None:
            logged = self.models.search([], source_run_id=out["info"]["run_id"])
            if logged:
                outputs = [{"model_id": m.id, "step": 0} for m in reversed(logged)]
                out["outputs"] = {"model_outputs": outputs}
        return {"run": out}

    def search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        limit = convert.integer(body, "max_results", DEFAULT_RUNS_PAGE) or 0
        if not 1 <= limit <= MAX_RUNS_PAGE:
            raise InvalidArgumentError(
                f"max_results must be between 1 and {MAX_RUNS_PAGE}, got {limit}",
                field="max_results",
            )
        names = [self.experiments.record(i).name for i in convert.strings(body, "experiment_ids")]
        found, token = self.queries.page(
            filters.to_filter(convert.text(body, "filter", required=False)),
            experiments=names or None,
            order_by=filters.to_order_by(convert.strings(body, "order_by")),
            limit=limit,
            page_token=convert.text(body, "page_token", required=False),
            lifecycle=view_type(body, "run_view_type"),
        )
        ids = {e.name: convert.experiment_id(e) for e in self.experiments.experiments.list()}
        metrics = self.queries.latest_metrics([r.id for r in found])
        runs = [
            convert.run_json(r, ids.get(r.experiment, ""), metrics.get(r.id, [])) for r in found
        ]
        out: dict[str, Any] = {"runs": runs} if runs else {}
        if token:
            out["next_page_token"] = token
        return out

    def metric_history(self, body: Mapping[str, Any]) -> dict[str, Any]:
        run = self.queries.get(_run_id(body))
        key = convert.required(body, "metric_key")
        limit = convert.integer(body, "max_results", MAX_HISTORY_PAGE) or MAX_HISTORY_PAGE
        start = convert.read_offset(convert.text(body, "page_token", required=False))
        points = self.queries.metric_history(run.id, key)
        out: dict[str, Any] = {
            "metrics": [convert.metric_json(p) for p in points[start : start + limit]]
        }
        if start + limit < len(points):
            out["next_page_token"] = convert.offset_token(start + limit)
        return out

    def metric_history_interval(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """One metric of up to 100 runs, sampled to about `max_results` steps within
        [start_step, end_step], each run's first and last step kept (as MLflow samples)."""
        run_ids = convert.strings(body, "run_ids")
        if not 1 <= len(run_ids) <= MAX_INTERVAL_RUNS:
            raise InvalidArgumentError(
                f"run_ids must name 1 to {MAX_INTERVAL_RUNS} runs, got {len(run_ids)}",
                field="run_ids",
            )
        key = convert.required(body, "metric_key")
        limit = convert.integer(body, "max_results", MAX_INTERVAL_POINTS) or 0
        if not 1 <= limit <= MAX_INTERVAL_POINTS:
            raise InvalidArgumentError(
                f"max_results must be between 1 and {MAX_INTERVAL_POINTS}", field="max_results"
            )
        bounds = (convert.integer(body, "start_step"), convert.integer(body, "end_step"))
        if (bounds[0] is None) != (bounds[1] is None) or (
            bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]
        ):
            raise InvalidArgumentError(
                "give both start_step and end_step (start_step <= end_step), or neither",
                field="start_step",
            )
        histories = {r: self.queries.metric_history(self.queries.get(r).id, key) for r in run_ids}
        steps = sampled_steps([[p.step for p in h] for h in histories.values()], limit, bounds)
        out = []
        for run_id, history in histories.items():
            chosen = sorted(
                (p for p in history if p.step in steps), key=lambda p: (p.step, p.timestamp)
            )
            for i in evenly_spaced(len(chosen), max(limit, len(steps))):
                out.append({**convert.metric_json(chosen[i]), "run_id": run_id})
        return {"metrics": out}

    # -- writing -----------------------------------------------------------------------------

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        exp = self.experiments.record(convert.text(body, "experiment_id", required=False) or "0")
        if exp.lifecycle_stage != "active":
            raise InvalidArgumentError(
                f"experiment '{exp.name}' is deleted; restore it to start runs in it",
                field="experiment_id",
            )
        tags = convert.key_values(body, "tags")
        name = convert.text(body, "run_name", required=False) or tags.pop(RUN_NAME_TAG, None)
        tags.pop(RUN_NAME_TAG, None)
        run = self.runs.create(
            exp.name,
            name=name,
            user=convert.text(body, "user_id", required=False) or tags.get("mlflow.user"),
            tags=tags,
            start_time=convert.integer(body, "start_time"),
            source=tags.get("mlflow.source.name"),
            git_commit=tags.get("mlflow.source.git.commit"),
            parent_run_id=tags.get("mlflow.parentRunId"),
        )
        return {"run": self.run_json(run)}

    def update(self, body: Mapping[str, Any]) -> dict[str, Any]:
        run = self.runs.update(
            _run_id(body),
            status=convert.text(body, "status", required=False),
            end_time=convert.integer(body, "end_time"),
            name=convert.text(body, "run_name", required=False),
        )
        exp_id = convert.experiment_id(self.experiments.experiments.get(run.experiment))
        return {"run_info": convert.run_info_json(run, exp_id)}

    def delete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.runs.delete(_run_id(body))
        return {}

    def restore(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.runs.restore(_run_id(body))
        return {}

    def log_metric(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.runs.log(_run_id(body), metrics=[_metric(body)])
        return {}

    def log_param(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key = convert.required(body, "key")
        value = body.get("value")
        self.runs.log(_run_id(body), params={key: "" if value is None else str(value)})
        return {}

    def set_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key = convert.required(body, "key")
        value = body.get("value")
        self._tags(_run_id(body), {key: "" if value is None else str(value)})
        return {}

    def delete_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.runs.delete_tag(_run_id(body), convert.required(body, "key"))
        return {}

    def log_batch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        run_id = _run_id(body)
        raw = body.get("metrics") or []
        if not isinstance(raw, list):
            raise InvalidArgumentError("'metrics' must be a list", field="metrics")
        metrics = self._new_points(run_id, raw)
        params = convert.key_values(body, "params")
        tags = convert.key_values(body, "tags")
        for what, items, most in (
            ("metrics", metrics, MAX_BATCH_METRICS),
            ("params", params, MAX_BATCH_PARAMS),
            ("tags", tags, MAX_BATCH_TAGS),
        ):
            if len(items) > most:
                raise InvalidArgumentError(
                    f"A batch logging request can contain at most {most} {what}, got {len(items)}",
                    field=what,
                )
        name = tags.pop(RUN_NAME_TAG, None)
        self.runs.log(run_id, metrics=metrics, params=params, tags=tags)
        if name:
            self.runs.update(run_id, name=name)
        return {}

    def _new_points(self, run_id: str, raw: list[Any]) -> list[MetricPoint]:
        """The batch's metric points, less those that link points the run already has to a
        logged model (MLflow 3's log_model re-logs a step's metrics with its model_id; MLflow
        keeps a point once, so a run's history does not grow)."""
        points = [_metric(m) for m in raw]
        linked = {p.key for m, p in zip(raw, points, strict=True) if m.get("model_id")}
        if not linked:
            return points
        have = {
            (p.key, p.step, p.timestamp, p.value)
            for key in linked
            for p in self.queries.metric_history(run_id, key)
        }
        return [
            p
            for m, p in zip(raw, points, strict=True)
            if not (m.get("model_id") and (p.key, p.step, p.timestamp, p.value) in have)
        ]

    def log_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """MLflow 2's record of a model logged to the run (its files go through the artifact
        proxy): appended to the run's mlflow.log-model.history tag, as MLflow's server does."""
        import json

        run_id, text = _run_id(body), convert.required(body, "model_json")
        try:
            model = json.loads(text)
        except ValueError:
            raise InvalidArgumentError("model_json is not valid JSON", field="model_json") from None
        missing = {"artifact_path", "flavors", "utc_time_created", "run_id"} - set(
            model if isinstance(model, dict) else ()
        )
        if missing or not isinstance(model["flavors"], dict):
            raise InvalidArgumentError(
                f"Model json is missing mandatory fields: {sorted(missing or {'flavors'})}",
                field="model_json",
            )
        kept = ("run_id", "utc_time_created", "artifact_path", "model_uuid")
        entry = {k: v for k, v in model.items() if k in kept}
        entry["flavors"] = {
            name: {k: v for k, v in conf.items() if k != "config"}
            if isinstance(conf, dict)
            else conf
            for name, conf in model["flavors"].items()
        }
        previous = self.queries.get(run_id).tags.get(LOGGED_MODELS_TAG)
        history = json.loads(previous) if previous else []
        self.runs.log(run_id, tags={LOGGED_MODELS_TAG: json.dumps([*history, entry])})
        return {}

    def log_inputs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        run_id = _run_id(body)
        raw = body.get("datasets") or []
        if not isinstance(raw, list):
            raise InvalidArgumentError("'datasets' must be a list", field="datasets")
        datasets = [convert.dataset_input(item) for item in raw if isinstance(item, Mapping)]
        self.runs.log_inputs(run_id, datasets)
        return {}

    def _tags(self, run_id: str, tags: dict[str, str]) -> None:
        name = tags.pop(RUN_NAME_TAG, None)
        if tags:
            self.runs.log(run_id, tags=tags)
        if name is not None:
            if self.runs.stage(run_id) != "active":
                raise InvalidArgumentError(f"run '{run_id}' is deleted", field="run_id")
            self.runs.update(run_id, name=name)


def _run_id(body: Mapping[str, Any]) -> str:
    """run_id, or run_uuid as older clients send it."""
    found = convert.text(body, "run_id", required=False) or convert.text(
        body, "run_uuid", required=False
    )
    if not found:
        raise InvalidArgumentError("Missing value for required parameter 'run_id'", field="run_id")
    return found


def _metric(body: Mapping[str, Any]) -> MetricPoint:
    if not isinstance(body, Mapping):
        raise InvalidArgumentError("each metric must be an object", field="metrics")
    return MetricPoint(
        convert.required(body, "key"),
        convert.double(body, "value"),
        convert.integer(body, "step", 0) or 0,
        convert.integer(body, "timestamp") or time.time_ns() // 1_000_000,
    )


def evenly_spaced(total: int, most: int) -> list[int]:
    """Up to `most` indices of `total`, evenly spread, the first and the last always in."""
    if total <= most:
        return list(range(total))
    if most == 1:
        return [total - 1]
    step = (total - 1) / (most - 1)
    return sorted({round(i * step) for i in range(most)})


def sampled_steps(
    runs: list[list[int]], limit: int, bounds: tuple[int | None, int | None]
) -> set[int]:
    """MLflow's step sample for a chart: about `limit` of the runs' steps within the bounds
    (0 to the last step when none are given), each run's first and last step added."""
    import bisect

    edges = {step for run in runs if run for step in (min(run), max(run))}
    steps = sorted({step for run in runs for step in run})
    low = 0 if bounds[0] is None else bounds[0]
    high = (steps[-1] if steps else 0) if bounds[1] is None else bounds[1]
    start, end = bisect.bisect_left(steps, low), bisect.bisect_right(steps, high)
    if end - start <= limit:
        chosen = set(steps[start:end])
    else:
        interval = (end - start) / limit
        chosen = {steps[start + int(i * interval)] for i in range(limit)}
        chosen.add(steps[end - 1])
    return chosen | {step for step in edges if low <= step <= high}
