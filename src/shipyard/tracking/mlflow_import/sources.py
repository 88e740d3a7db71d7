"""Where an import reads from: an MLflow tracking server over its REST API (`RestSource`), or
an MLflow database read directly (`DatabaseSource`). Both give the same records
(`shipyard.stores.mlflow_records`); `open_source(uri)` picks one by the URI's scheme."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.errors import InvalidArgumentError, NotFoundError, StoreUnavailableError
from shipyard.stores.mlflow_records import (
    MlflowDataset,
    MlflowExperiment,
    MlflowModel,
    MlflowRun,
    MlflowVersion,
)
from shipyard.stores.records import MetricPoint
from shipyard.tracking.mlflow_import.artifacts import Artifacts, LocalArtifacts, ProxiedArtifacts

if TYPE_CHECKING:
    import httpx

    from shipyard.stores.mlflow_db import MlflowDatabase

_API = "/api/2.0/mlflow"
RUNS_PAGE = 1000
HISTORY_PAGE = 25_000


class MlflowSource(Protocol):
    """What the importer reads: the same records from a server or a database."""

    label: str  # the URI, without a password
    artifacts: Artifacts

    def experiments(self) -> list[MlflowExperiment]: ...
    def runs(self, experiment_ids: list[str]) -> Iterator[list[MlflowRun]]: ...
    def metric_history(self, run: MlflowRun) -> list[MetricPoint]: ...
    def models(self) -> list[MlflowModel]: ...
    def versions(self, name: str) -> list[MlflowVersion]: ...
    def model_location(self, version: MlflowVersion) -> str: ...
    def close(self) -> None: ...


def open_source(
    uri: str,
    *,
    artifacts_from: str | None = None,
    token: str | None = None,
    timeout: float = 30.0,
) -> MlflowSource:
    """`http(s)://host:port` (a tracking server) or `sqlite:///mlflow.db` /
    `postgresql://…` (its database). `artifacts_from`: where `mlflow-artifacts:/` files are
    for a database source (the server's URL, or its --artifacts-destination folder). A server
    behind auth takes `token` (sent as a Bearer token, as MLFLOW_TRACKING_TOKEN is) or a
    user and password in the URL (http://user:password@host, basic auth)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("http", "https"):
        return RestSource(uri, token=token, timeout=timeout)
    if scheme.split("+")[0] in ("sqlite", "postgresql", "postgres", "mysql"):
        from shipyard.stores.mlflow_db import MlflowDatabase

        return DatabaseSource(MlflowDatabase(uri), _artifacts(artifacts_from, timeout, token))
    raise InvalidArgumentError(
        f"--from must be an MLflow server (http://host:port) or database (sqlite:///mlflow.db, "
        f"postgresql://…), not {uri!r}",
        field="from",
    )


def _artifacts(where: str | None, timeout: float, token: str | None = None) -> Artifacts:
    if where is None:
        return Artifacts(LocalArtifacts(), None)
    if where.startswith(("http://", "https://")):
        return Artifacts(LocalArtifacts(), ProxiedArtifacts(_client(where, timeout, token)))
    root = Path(where.removeprefix("file://"))
    if not root.is_dir():
        raise InvalidArgumentError(f"--artifacts-from: no folder {root}", field="artifacts_from")
    return Artifacts(LocalArtifacts(root), None)


def _client(url: str, timeout: float, token: str | None = None) -> httpx.Client:
    """A client of the server at `url`; a user and password in the URL become basic auth."""
    import httpx

    parsed = httpx.URL(url)
    auth = None
    if parsed.username:
        auth = httpx.BasicAuth(parsed.username, parsed.password)
        parsed = parsed.copy_with(username=None, password=None)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return httpx.Client(
        base_url=str(parsed).rstrip("/"),
        auth=auth,
        headers=headers,
        timeout=timeout,
        follow_redirects=True,
    )


class RestSource:
    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        import httpx

        parsed = httpx.URL(url)
        self.label = str(parsed.copy_with(password=None)) if parsed.password else url
        self.client = _client(url, timeout, token)
        self.artifacts = Artifacts(LocalArtifacts(), ProxiedArtifacts(self.client))

    def _call(self, method: str, route: str, **kwargs: Any) -> dict[str, Any]:
        import httpx

        try:
            answer = self.client.request(method, f"{_API}/{route}", **kwargs)
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(
                f"cannot reach MLflow at {self.label}: {exc.__class__.__name__}: {exc}"
            ) from exc
        if answer.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" in answer.text:
            raise NotFoundError(answer.json().get("message", route))
        if answer.status_code >= 400 or not answer.headers.get("content-type", "").startswith(
            "application/json"
        ):
            raise InvalidArgumentError(
                f"{self.label} does not answer MLflow's REST API "
                f"({method} {_API}/{route}: HTTP {answer.status_code})",
                field="from",
            )
        return answer.json()  # type: ignore[no-any-return]

    def _pages(
        self, method: str, route: str, body: dict[str, Any], key: str
    ) -> Iterator[list[Any]]:
        token = None
        while True:
            page = dict(body, **({"page_token": token} if token else {}))
            found = (
                self._call("POST", route, json=page)
                if method == "POST"
                else self._call("GET", route, params=page)
            )
            yield found.get(key, [])
            token = found.get("next_page_token")
            if not token:
                return

    def experiments(self) -> list[MlflowExperiment]:
        body = {"max_results": 1000, "view_type": "ALL"}
        return [
            MlflowExperiment(
                id=str(e["experiment_id"]),
                name=e["name"],
                created_at=int(e.get("creation_time") or 0),
                lifecycle_stage=e.get("lifecycle_stage", "active"),
                tags=_key_values(e.get("tags")),
            )
            for page in self._pages("POST", "experiments/search", body, "experiments")
            for e in page
        ]

    def runs(self, experiment_ids: list[str]) -> Iterator[list[MlflowRun]]:
        body = {
            "experiment_ids": experiment_ids,
            "run_view_type": "ALL",
            "max_results": RUNS_PAGE,
            "order_by": ["attributes.start_time ASC"],
        }
        for page in self._pages("POST", "runs/search", body, "runs"):
            yield [_run(r) for r in page]

    def metric_history(self, run: MlflowRun) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for key in run.latest:
            body = {"run_id": run.id, "metric_key": key, "max_results": HISTORY_PAGE}
            for page in self._pages("GET", "metrics/get-history", body, "metrics"):
                points.extend(_point(key, m) for m in page)
        return points

    def models(self) -> list[MlflowModel]:
        body = {"max_results": 1000}
        return [
            MlflowModel(
                name=m["name"],
                description=m.get("description") or "",
                created_at=int(m.get("creation_timestamp") or 0),
                tags=_key_values(m.get("tags")),
                aliases={a["alias"]: int(a["version"]) for a in m.get("aliases", [])},
            )
            for page in self._pages("GET", "registered-models/search", body, "registered_models")
            for m in page
        ]

    def versions(self, name: str) -> list[MlflowVersion]:
        quoted = name.replace("'", "\\'")
        body = {"filter": f"name='{quoted}'", "max_results": 1000}
        found = [
            MlflowVersion(
                name=v["name"],
                version=int(v["version"]),
                description=v.get("description") or "",
                created_at=int(v.get("creation_timestamp") or 0),
                run_id=v.get("run_id") or None,
                location=v.get("source") or "",
                status=v.get("status") or "READY",
                tags=_key_values(v.get("tags")),
            )
            for page in self._pages("GET", "model-versions/search", body, "model_versions")
            for v in page
        ]
        return sorted(found, key=lambda v: v.version)

    def model_location(self, version: MlflowVersion) -> str:
        found = self._call(
            "GET",
            "model-versions/get-download-uri",
            params={"name": version.name, "version": str(version.version)},
        )
        return str(found.get("artifact_uri") or version.location)

    def close(self) -> None:
        self.client.close()


def _key_values(items: Any) -> dict[str, str]:
    return {i["key"]: str(i.get("value", "")) for i in items or []}


def _point(key: str, m: dict[str, Any]) -> MetricPoint:
    return MetricPoint(
        key, float(m.get("value", "nan")), int(m.get("step", 0)), int(m["timestamp"])
    )


def _run(r: dict[str, Any]) -> MlflowRun:
    info, data = r["info"], r.get("data", {})
    datasets = tuple(
        MlflowDataset(
            **{k: str(d["dataset"].get(k, "")) for k in _DATASET_FIELDS},
            context=_key_values(d.get("tags")).get("mlflow.data.context", "input"),
        )
        for d in r.get("inputs", {}).get("dataset_inputs", [])
    )
    return MlflowRun(
        id=info["run_id"],
        experiment_id=str(info["experiment_id"]),
        name=info.get("run_name") or "",
        user=info.get("user_id") or "",
        status=info.get("status", "FINISHED"),
        start_time=int(info.get("start_time") or 0),
        end_time=int(info["end_time"]) if info.get("end_time") is not None else None,
        lifecycle_stage=info.get("lifecycle_stage", "active"),
        artifact_uri=info.get("artifact_uri") or "",
        params=_key_values(data.get("params")),
        tags=_key_values(data.get("tags")),
        latest=tuple(m["key"] for m in data.get("metrics", [])),
        datasets=datasets,
    )


_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")


class DatabaseSource:
    def __init__(self, db: MlflowDatabase, artifacts: Artifacts) -> None:
        from shipyard.stores.database import redact

        self.db = db
        self.label = redact(db.url)
        self.artifacts = artifacts

    def experiments(self) -> list[MlflowExperiment]:
        return self.db.experiments()

    def runs(self, experiment_ids: list[str]) -> Iterator[list[MlflowRun]]:
        wanted = set(experiment_ids)
        for page in self.db.runs(RUNS_PAGE):
            yield [r for r in page if r.experiment_id in wanted]

    def metric_history(self, run: MlflowRun) -> list[MetricPoint]:
        return self.db.metric_history(run.id)

    def models(self) -> list[MlflowModel]:
        return self.db.models()

    def versions(self, name: str) -> list[MlflowVersion]:
        return self.db.versions(name)

    def model_location(self, version: MlflowVersion) -> str:
        """A version's files: its storage location, a logged model's, or a run's path."""
        where = version.location
        if where.startswith("models:/"):
            return self.db.logged_model_location(where.removeprefix("models:/")) or where
        if where.startswith("runs:/"):
            run_id, _, path = where.removeprefix("runs:/").partition("/")
            root = self.db.artifact_uri(run_id)
            return f"{root.rstrip('/')}/{path}" if root else where
        return where

    def close(self) -> None:
        self.db.close()
