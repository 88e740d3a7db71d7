"""tracking.RemoteRuns and the experiments' lifecycle, on SQLite and PostgreSQL: runs driven
from another process (an MLflow client) — created with their start time, named, tagged and
untagged, ended, soft-deleted and restored; experiments created, marked deleted, restored."""

from __future__ import annotations

import pytest

from shipyard.config import Settings
from shipyard.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from shipyard.stores import open_stores
from shipyard.tracking import Experiments, RemoteRuns, RunQueries
from shipyard.tracking.remote import ForeignDataset, MetricPoint


def test_a_remote_run_from_start_to_end(settings: Settings) -> None:
    stores = open_stores(settings)
    runs, queries = RemoteRuns(stores), RunQueries(stores)
    run = runs.create("remote", name="r1", user="ana", tags={"team": "a"}, start_time=1000)
    assert (run.name, run.user, run.start_time, run.status) == ("r1", "ana", 1000, "RUNNING")
    runs.log(
        run.id, metrics=[MetricPoint("loss", 0.5, 1, 1001)], params={"C": "1"}, tags={"x": "y"}
    )
    with pytest.raises(InvalidArgumentError):
        runs.log(run.id, params={"C": "2"})  # params are immutable
    runs.delete_tag(run.id, "x")
    with pytest.raises(NotFoundError):
        runs.delete_tag(run.id, "x")
    ended = runs.update(run.id, status="FINISHED", end_time=2000, name="renamed")
    assert (ended.status, ended.end_time, ended.name) == ("FINISHED", 2000, "renamed")
    assert ended.tags == {"team": "a"} and ended.params == {"C": "1"}
    (latest,) = queries.latest_metrics([run.id])[run.id]
    assert (latest.value, latest.step, latest.timestamp) == (0.5, 1, 1001)


def test_a_deleted_run_is_hidden_and_refuses_data_until_restored(settings: Settings) -> None:
    stores = open_stores(settings)
    runs, queries = RemoteRuns(stores), RunQueries(stores)
    run = runs.create("remote")
    runs.delete(run.id)
    assert queries.search(experiments="remote") == []
    assert [r.id for r in queries.page(experiments="remote", lifecycle="deleted")[0]] == [run.id]
    assert queries.get(run.id).lifecycle_stage == "deleted"
    with pytest.raises(InvalidArgumentError, match="restore"):
        runs.log(run.id, tags={"a": "b"})
    dataset = ForeignDataset("d", "abc", "code", "{}", context="training")
    with pytest.raises(InvalidArgumentError):
        runs.log_inputs(run.id, [dataset])
    runs.restore(run.id)
    runs.log_inputs(run.id, [dataset, dataset])
    (stored,) = queries.get(run.id).datasets
    assert (stored.name, stored.role, stored.profile["mlflow"]["digest"]) == (
        "d",
        "training",
        "abc",
    )
    with pytest.raises(NotFoundError):
        runs.delete("f" * 32)


def test_experiments_are_created_marked_deleted_and_restored(settings: Settings) -> None:
    experiments = Experiments(open_stores(settings))
    made = experiments.create("exp")
    assert experiments.get_by_id(made.id).name == "exp" and made.lifecycle_stage == "active"
    with pytest.raises(AlreadyExistsError):
        experiments.create("exp")
    assert experiments.mark_deleted("exp").lifecycle_stage == "deleted"
    with pytest.raises(AlreadyExistsError, match="deleted"):
        experiments.create("exp")
    assert experiments.restore("exp").lifecycle_stage == "active"
    with pytest.raises(NotFoundError):
        experiments.get_by_id(made.id + 100)
