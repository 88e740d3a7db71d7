"""Reading tracked runs: experiments, search, one run, a metric's history.

runs = RunQueries(open_stores())
runs.search('metrics.auc > 0.9', order_by=["metrics.auc DESC"], limit=10)
runs.metric_history("3f2a9c1b", "loss")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from shipyard.stores import Stores
    from shipyard.stores.records import ArtifactRecord, MetricPoint, MetricSeries, RunRecord


class RunQueries:
    """Read-only questions about runs, over one set of stores (the edges' door to runs)."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._runs = stores.metadata.runs

    def experiments(self) -> list[str]:
        """Every experiment's name, oldest first."""
        return self._runs.list_experiments()

    def search(
        self,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | str | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int = 1000,
    ) -> list[RunRecord]:
        """Runs matching `filter`, ordered by `order_by` (default: newest first)."""
        from shipyard.tracking.search import parse_filter, parse_order_by

        clauses = parse_filter(filter)
        order = parse_order_by(order_by)
        if isinstance(experiments, str):
            experiments = [experiments]
        return self._runs.search_runs(
            experiments=experiments, clauses=clauses, order_by=order, limit=limit
        )

    def page(
        self,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | str | None = None,
        order_by: Sequence[str] | str | None = None,
        limit: int = 100,
        page_token: str | None = None,
        keys: Sequence[str] | None = None,
        max_keys: int | None = None,
        lifecycle: str | None = "active",
    ) -> tuple[list[RunRecord], str | None]:
        """One keyset page of `search` and the token of the next (None after the last page).
        The token holds the order it was made for: another order_by refuses it. `keys`
        (`params.lr`, `metrics.auc`…) returns only those keys of the kinds they name;
        `max_keys` only the first keys (by name) of each kind — a page of runs with thousands
        of params stays small. `lifecycle`: "active" runs (default), "deleted" ones (by an
        MLflow client) or None for both."""
        from shipyard.stores.run_search import sort_values
        from shipyard.tracking.search import parse_filter, parse_order_by

        clauses = parse_filter(filter)
        order = parse_order_by(order_by)
        if isinstance(experiments, str):
            experiments = [experiments]
        after = _read_token(page_token, order) if page_token else None
        runs = self._runs.search_runs(
            experiments=experiments,
            clauses=clauses,
            order_by=order,
            limit=limit + 1,
            after=after,
            keys=_keys_by_kind(keys),
            max_keys=max_keys,
            lifecycle=lifecycle,
        )
        if len(runs) <= limit:
            return runs, None
        runs = runs[:limit]
        return runs, _make_token(order, sort_values(runs[-1], order))

    def columns(
        self, filter: str | None = None, *, experiments: Sequence[str] | str | None = None
    ) -> dict[str, Any]:
        """What the runs matching have: their count; per param and tag key the runs having it
        and its distinct values (a key with more than one, or missing on some runs, varies);
        per metric key the runs having it and its range."""
        from shipyard.tracking.search import parse_filter

        if isinstance(experiments, str):
            experiments = [experiments]
        summary = self._runs.column_summary(experiments=experiments, clauses=parse_filter(filter))
        total = summary["runs"]
        for kind in ("params", "tags"):
            for item in summary[kind]:
                item["varies"] = item["distinct"] > 1 or item["runs"] < total
        for item in summary["metrics"]:
            item["varies"] = item["min"] != item["max"] or item["runs"] < total
        return summary

    def groups(
        self,
        by: str,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | str | None = None,
        metric: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """The runs matching grouped by `by` (`params.model`, `tags.team`, `status`): each
        value (None: not set) with its run count, largest first; with `metric`
        (`metrics.auc`) also the min, mean and max of its latest values per group."""
        from shipyard.errors import InvalidArgumentError
        from shipyard.tracking.search import parse_filter, parse_order_by

        keys = parse_order_by(by)
        if len(keys) != 1 or keys[0].kind == "metrics" or keys[0].descending:
            raise InvalidArgumentError(
                "group by one param, tag or attribute, e.g. params.model", field="by"
            )
        metric_key = None
        if metric:
            found = parse_order_by(metric)
            if len(found) != 1 or found[0].kind != "metrics":
                raise InvalidArgumentError(
                    "metric must be one metric, e.g. metrics.auc", field="metric"
                )
            metric_key = found[0].key
        if isinstance(experiments, str):
            experiments = [experiments]
        return self._runs.group_summary(
            by=keys[0],
            metric=metric_key,
            experiments=experiments,
            clauses=parse_filter(filter),
            limit=limit,
        )

    def get(self, run_id: str) -> RunRecord:
        """One run by id or unique id prefix."""
        return self._runs.get_run(run_id)

    def kept_datasets(self, run_id: str) -> list[tuple[str, str, str]]:
        """(role, name, artifact digest) of the datasets the run kept the rows of
        (`log_dataset(..., keep_rows=True)`), in the order they were logged."""
        from shipyard.tracking.datasets import parse_rows_path

        out = []
        for artifact in self._runs.get_run(run_id).artifacts:
            found = parse_rows_path(artifact.path)
            if found is not None:
                out.append((*found, artifact.digest))
        return out

    def dataset_rows(self, digest: str) -> pd.DataFrame:
        """The rows of a kept dataset (its artifact digest, from `kept_datasets`)."""
        import io

        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.stores.artifacts.get_bytes(digest)))

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every logged value of a metric, by step then time."""
        return self._runs.metric_history(run_id, key)

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[MetricPoint]]:
        """Per run, the latest point (value, step, time) of each of its metrics."""
        return self.stores.metadata.run_edits.latest_metrics(run_ids)

    def metric_series(
        self,
        run_id: str,
        key: str,
        *,
        max_points: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
    ) -> MetricSeries:
        """A metric's points with `min_step <= step <= max_step` (bounds optional), as a chart
        draws them: when more than `max_points` fall in the range, the database keeps the
        lowest and the highest point of each of `max_points // 2` equal step buckets, so a
        one-step spike survives (`downsampled` is then true)."""
        from shipyard.errors import InvalidArgumentError

        if max_points is not None and max_points < 2:
            raise InvalidArgumentError("max_points must be at least 2", field="max_points")
        if min_step is not None and max_step is not None and min_step > max_step:
            raise InvalidArgumentError(
                f"min_step ({min_step}) is above max_step ({max_step})", field="min_step"
            )
        return self._runs.metric_series(
            run_id, key, max_points=max_points, min_step=min_step, max_step=max_step
        )

    def environment(self, run_id: str) -> dict[str, Any]:
        """The environment the run recorded (`tracking.environment.environment_json`): python,
        implementation, platform, packages; empty fields when it recorded none."""
        import orjson

        digest = self._runs.get_run(run_id).environment_digest
        if not digest:
            return {"python": None, "implementation": None, "platform": None, "packages": {}}
        data = orjson.loads(self.stores.artifacts.get_bytes(digest))
        return {
            "python": data.get("python"),
            "implementation": data.get("implementation"),
            "platform": data.get("platform"),
            "packages": dict(data.get("packages") or {}),
        }

    def artifact(self, run_id: str, path: str) -> tuple[ArtifactRecord, Path]:
        """A run artifact by its path in the run (`plots/loss.png`) and its verified file.
        A path that climbs (`..`), is absolute, or holds a backslash or NUL is refused
        (InvalidArgumentError naming `path`) before any lookup; NotFoundError when the run
        has no artifact at that path."""
        from shipyard.errors import NotFoundError

        check_artifact_path(path)
        run = self._runs.get_run(run_id)
        for record in run.artifacts:
            if record.path == path:
                return record, self.stores.artifacts.local_path(record.digest)
        raise NotFoundError(f"run '{run.id}' has no artifact '{path}'", kind="artifact", name=path)


def check_artifact_path(path: str) -> str:
    """`path` when it is a plain relative path inside a run; InvalidArgumentError (field
    `path`) for an empty or absolute one, a `..` or `.` segment, a backslash, NUL or other
    control character."""
    from shipyard.errors import InvalidArgumentError

    problem = None
    if not path:
        problem = "is empty"
    elif path.startswith("/") or (len(path) > 1 and path[1] == ":" and path[0].isalpha()):
        problem = "is absolute"
    elif "\\" in path:
        problem = "holds a backslash"
    elif any(ord(c) < 32 or ord(c) == 127 for c in path):
        problem = "holds NUL or a control character"
    elif any(part in ("..", ".", "") for part in path.split("/")):
        problem = "has an empty, '.' or '..' segment"
    if problem:
        raise InvalidArgumentError(
            f"artifact path {problem}: give it as the run lists it, e.g. plots/loss.png",
            field="path",
        )
    return path


def _make_token(order: Sequence[Any], values: list[Any]) -> str:
    import base64

    import orjson

    spec = [[k.kind, k.key, k.descending] for k in order]
    return base64.urlsafe_b64encode(orjson.dumps({"o": spec, "a": values})).decode().rstrip("=")


def _read_token(token: str, order: Sequence[Any]) -> list[Any]:
    """The sort values a page token holds; InvalidArgumentError (field page_token) when it is
    not one of ours or was made for another order."""
    import base64
    import binascii

    import orjson

    from shipyard.errors import InvalidArgumentError

    spec = [[k.kind, k.key, k.descending] for k in order]
    data: object = None
    try:
        if len(token) > 20_000:
            raise ValueError("too long")
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        ok = isinstance(data, dict) and isinstance(data.get("a"), list)
    except (binascii.Error, ValueError):
        ok = False
    if not ok or not isinstance(data, dict):
        raise InvalidArgumentError(
            "page_token is not a token this server gave; ask for the first page again",
            field="page_token",
        )
    if data.get("o") != spec:
        raise InvalidArgumentError(
            "page_token was made for another order_by; ask for the first page again",
            field="page_token",
        )
    values = data["a"]
    if not all(
        v is None or (isinstance(v, (str, int, float)) and not isinstance(v, bool)) for v in values
    ):
        raise InvalidArgumentError("page_token holds a value of the wrong type", field="page_token")
    return list(values)


def _keys_by_kind(keys: Sequence[str] | None) -> dict[str, list[str]] | None:
    """`["params.lr", "metrics.auc"]` → {"params": ["lr"], "metrics": ["auc"]}."""
    if keys is None:
        return None
    from shipyard.errors import InvalidArgumentError
    from shipyard.tracking.search import parse_order_by

    if len(keys) > 1000:
        raise InvalidArgumentError("keys names at most 1000 keys", field="keys", limit=1000)
    parsed = []
    for text in keys:
        try:
            parsed += parse_order_by([text])
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"keys: {exc.message}", field="keys") from exc
    out: dict[str, list[str]] = {}
    for item in parsed:
        if item.kind == "attributes" or item.descending:
            raise InvalidArgumentError(
                f"keys name params, metrics or tags (e.g. params.lr), not {item.key!r}",
                field="keys",
            )
        out.setdefault(item.kind, []).append(item.key)
    return out
