"""`import_mlflow` on a source in memory (the real server is in tests/e2e): runs keep their
ids and every metric point, a second import copies nothing, a run left half copied (its
metadata written, its files not) is finished without duplicates, a failing run is reported and
the others go on; on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.stores.mlflow_records import (
    MlflowDataset,
    MlflowExperiment,
    MlflowModel,
    MlflowRun,
    MlflowVersion,
)
from shipyard.stores.records import MetricPoint
from shipyard.tracking import RunQueries
from shipyard.tracking.mlflow_import import import_mlflow, open_source
from shipyard.tracking.mlflow_import.artifacts import Artifacts, LocalArtifacts

RUN_IDS = [f"{i:032x}" for i in range(1, 6)]


class FakeSource:
    label = "fake://mlflow"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.artifacts = Artifacts(LocalArtifacts(root), None)
        self.history_reads = 0
        for run_id in RUN_IDS[:2]:
            folder = root / "1" / run_id / "artifacts"
            (folder / "sub").mkdir(parents=True)
            (folder / "notes.txt").write_text(f"notes of {run_id}")
            (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")

    def experiments(self) -> list[MlflowExperiment]:
        return [
            MlflowExperiment("0", "Default", 1_000),
            MlflowExperiment("1", "churn", 2_000, tags={"team": "a", "": "refused"}),
            MlflowExperiment("2", "old", 3_000, lifecycle_stage="deleted"),
            MlflowExperiment("3", "/Users/ana/churn", 4_000),  # a name shipyard refuses
        ]

    def runs(self, experiment_ids: list[str]) -> Iterator[list[MlflowRun]]:
        runs = [self._run(i, run_id) for i, run_id in enumerate(RUN_IDS)]
        yield runs[:3]
        yield runs[3:]

    def _run(self, i: int, run_id: str) -> MlflowRun:
        return MlflowRun(
            id=run_id,
            experiment_id=["1", "1", "0", "2", "1"][i],
            name=f"run-{i}",
            user="ana",
            status=["FINISHED", "FAILED", "SCHEDULED", "KILLED", "FINISHED"][i],
            start_time=10_000 + i,
            end_time=None if i == 2 else 20_000 + i,
            lifecycle_stage="deleted" if i == 4 else "active",
            artifact_uri=f"mlflow-artifacts:/1/{run_id}/artifacts",
            params={"C": str(i), "solver": "lbfgs"},
            tags={"mlflow.source.name": "train.py", "team": "a"}
            | ({"mlflow.parentRunId": RUN_IDS[0]} if i == 1 else {}),
            latest=("loss", "nan"),
            datasets=(
                MlflowDataset("train", "abc123", "local", '{"uri": "x"}', "", "", "training"),
            ),
        )

    def metric_history(self, run: MlflowRun) -> list[MetricPoint]:
        self.history_reads += 1
        points = [MetricPoint("loss", 1.0 / (s + 1), s, 30_000 + s) for s in range(50)]
        return [*points, MetricPoint("loss", 0.5, 3, 30_003), MetricPoint("nan", math.nan, 0, 1)]

    def models(self) -> list[MlflowModel]:
        return [MlflowModel("empty", "", 1)]

    def versions(self, name: str) -> list[MlflowVersion]:
        return []

    def model_location(self, version: MlflowVersion) -> str:
        return version.location

    def close(self) -> None:
        pass


@pytest.fixture
def source(tmp_path: Path) -> FakeSource:
    return FakeSource(tmp_path / "mlflow-artifacts")


def _copy(stores: Any, source: FakeSource) -> Any:
    return import_mlflow(stores, source.label, source=source)  # type: ignore[arg-type]


def test_runs_keep_their_ids_history_and_files(stores: Any, source: FakeSource) -> None:
    summary = _copy(stores, source)
    assert summary.copied["runs"] == 5 and summary.copied["artifacts"] == 4
    assert summary.copied["experiments"] == 3
    queries = RunQueries(stores)
    first = queries.get(RUN_IDS[0])
    assert (first.experiment, first.name, first.user, first.status) == (
        "churn",
        "run-0",
        "ana",
        "FINISHED",
    )
    assert (first.start_time, first.end_time, first.source) == (10_000, 20_000, "train.py")
    assert first.params == {"C": "0", "solver": "lbfgs"}
    assert first.tags["team"] == "a" and first.tags["shipyard.imported_from"] == source.label
    assert "shipyard.import_pending" not in first.tags
    history = queries.metric_history(RUN_IDS[0], "loss")
    assert len(history) == 51 and first.metrics["loss"] == 1.0 / 50
    assert math.isnan(queries.metric_history(RUN_IDS[0], "nan")[0].value)
    assert sorted((a.path, a.size) for a in first.artifacts) == [
        ("notes.txt", len(f"notes of {RUN_IDS[0]}")),
        ("sub/data.csv", 8),
    ]
    (dataset,) = first.datasets
    assert (dataset.name, dataset.role) == ("train", "training")
    assert queries.get(RUN_IDS[1]).parent_run_id == RUN_IDS[0]
    assert queries.get(RUN_IDS[2]).experiment == "default"  # MLflow's experiment 0
    assert queries.get(RUN_IDS[2]).status == "RUNNING"  # SCHEDULED has no match here
    assert queries.get(RUN_IDS[4]).lifecycle_stage == "deleted"
    from shipyard.tracking import Experiments

    assert Experiments(stores).get("old").lifecycle_stage == "deleted"
    assert Experiments(stores).get("churn").created_at == 2_000
    why = {(s.kind, s.what): s.why for s in summary.skipped}
    assert Experiments(stores).get("churn").tags == {"team": "a"}
    assert "1 to 250 characters" in why["experiment tags", "churn: "]
    assert "its runs are not imported" in why["experiments", "/Users/ana/churn"]
    from shipyard.registry import Registry

    assert Registry(stores).get_model("empty").latest_version is None  # made without versions


def test_a_second_import_copies_nothing(stores: Any, source: FakeSource) -> None:
    _copy(stores, source)
    reads = source.history_reads
    again = _copy(stores, source)
    assert not again.copied_anything, again.copied
    assert again.unchanged["runs"] == 5 and again.unchanged["experiments"] == 3
    assert source.history_reads == reads  # nothing fetched for runs already here
    assert len(RunQueries(stores).metric_history(RUN_IDS[0], "loss")) == 51


def test_a_half_copied_run_is_finished_without_duplicates(
    stores: Any, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.stores.run_imports import RunImportStore

    def killed(self: Any, run_id: str, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process died after the metadata, before the files

    with monkeypatch.context() as patch:
        patch.setattr(RunImportStore, "finish", killed)
        with pytest.raises(KeyboardInterrupt):
            _copy(stores, source)
    half = RunQueries(stores).get(RUN_IDS[0])
    assert half.tags["shipyard.import_pending"] == "artifacts"
    summary = _copy(stores, source)
    assert summary.copied["runs resumed"] == 1 and summary.copied["runs"] == 4
    done = RunQueries(stores).get(RUN_IDS[0])
    assert "shipyard.import_pending" not in done.tags and len(done.artifacts) == 2
    assert len(RunQueries(stores).metric_history(RUN_IDS[0], "loss")) == 51


def test_a_run_that_fails_is_reported_and_the_others_go_on(
    stores: Any, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = source._run

    def long_id(i: int, run_id: str) -> MlflowRun:
        run = original(i, run_id)
        if i == 3:
            run.id = "x" * 40
        return run

    monkeypatch.setattr(source, "_run", long_id)
    summary = _copy(stores, source)
    assert summary.copied["runs"] == 4
    assert [s.what for s in summary.skipped if s.kind == "runs"] == ["x" * 40]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://x", "--from must be an MLflow server"),
        ("mlflow.db", "--from must be an MLflow server"),
    ],
)
def test_a_source_that_is_not_mlflow_is_refused(uri: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        open_source(uri)


def test_artifacts_from_must_be_a_folder_or_a_server(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no folder"):
        open_source(f"sqlite:///{tmp_path / 'm.db'}", artifacts_from=str(tmp_path / "nope"))


def test_versions_that_cannot_be_copied_are_skipped_with_the_reason(
    stores: Any, source: FakeSource, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    versions = [
        MlflowVersion("m", 1, "", 1, None, f"file://{tmp_path / 'gone'}"),
        MlflowVersion("m", 2, "", 1, None, "s3://bucket/m/2"),
        MlflowVersion("m", 3, "", 1, None, "", status="FAILED_REGISTRATION"),
    ]
    monkeypatch.setattr(source, "models", lambda: [MlflowModel("m", "", 1, aliases={"a": 1})])
    monkeypatch.setattr(source, "versions", lambda name: versions)
    summary = _copy(stores, source)
    why = {(s.kind, s.what): s.why for s in summary.skipped}
    assert "no files at" in why["model versions", "m/1"]
    assert "--artifacts-from" in why["model versions", "m/2"]
    assert "FAILED_REGISTRATION" in why["model versions", "m/3"]
    assert "version 1 was not imported" in why["aliases", "m@a"]
    assert any("skipped 1 aliases" in line for line in summary.lines())


def test_a_run_that_was_running_is_copied_again_when_it_ends(
    stores: Any, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy(stores, source)
    assert RunQueries(stores).get(RUN_IDS[2]).status == "RUNNING"  # SCHEDULED then
    original = source._run

    def ended(i: int, run_id: str) -> MlflowRun:
        run = original(i, run_id)
        if i == 2:
            run.status, run.end_time = "FINISHED", 99_000
            run.params = {**run.params, "late": "yes"}
        return run

    monkeypatch.setattr(source, "_run", ended)
    summary = _copy(stores, source)
    assert dict(summary.copied) == {"runs updated": 1}
    run = RunQueries(stores).get(RUN_IDS[2])
    assert (run.status, run.end_time, run.params["late"]) == ("FINISHED", 99_000, "yes")
    assert len(RunQueries(stores).metric_history(RUN_IDS[2], "loss")) == 51  # not doubled
    assert not _copy(stores, source).copied_anything
