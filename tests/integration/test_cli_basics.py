"""The basics a user reached for (#15), through the CLI as typed, on SQLite and PostgreSQL:
experiments list/show/rename/delete, a metric's history, deleting models and versions,
tags and descriptions, class probabilities from batch scoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import shipyard as sy
from shipyard.cli.main import main
from shipyard.config import Settings
from shipyard.stores import open_stores


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`shipyard <args>` in this process (the settings fixture's database): exit code, out, err."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one line a refused command prints (exit 2, no traceback)."""
    code, out, err = cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, out, err)
    return lines[0]


@pytest.fixture
def iris() -> tuple[pd.DataFrame, Any]:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return X, data.target.map(dict(enumerate(data.target_names)))


def _register(X: pd.DataFrame, y: Any, experiment: str = "iris", name: str = "flowers") -> Any:
    from sklearn.linear_model import LogisticRegression

    with sy.start_run(experiment=experiment) as run:
        model = LogisticRegression(max_iter=300).fit(X, y)
        return run.log_model(model, name=name, input_example=X[:5], onnx=False)


def test_experiments_list_show_rename_and_delete(
    settings: Settings, capsys: pytest.CaptureFixture[str], iris: Any
) -> None:
    for i in range(2):
        with sy.start_run(experiment="scratch", params={"i": i}) as run:
            run.log_metrics({"loss": 1.0 / (i + 1)})
    mv = _register(*iris, experiment="kept")

    code, out, _ = cli(capsys, "experiments", "list", "--json")
    listed = {e["name"]: e for e in json.loads(out)}
    assert code == 0 and listed["scratch"]["runs"] == 2 and listed["kept"]["runs"] == 1
    assert listed["scratch"]["statuses"] == {"FINISHED": 2}
    code, out, _ = cli(capsys, "experiments", "show", "scratch")
    assert code == 0 and "experiment scratch: 2 run(s)" in out and "loss" in out
    # an MLflow client's soft delete shows, and restore undoes it
    from shipyard.stores import open_stores
    from shipyard.tracking import Experiments

    Experiments(open_stores(settings)).mark_deleted("kept")
    code, out, _ = cli(capsys, "experiments", "list")
    assert code == 0 and "kept (deleted)" in out and "scratch (deleted)" not in out
    assert "experiment kept (deleted):" in cli(capsys, "experiments", "show", "kept")[1]
    Experiments(open_stores(settings)).restore("kept")
    assert "(deleted)" not in cli(capsys, "experiments", "list")[1]

    assert cli(capsys, "experiments", "rename", "scratch", "scratch-old")[0] == 0
    assert "did you mean 'scratch-old'" in refused(capsys, "experiments", "show", "scratch")
    assert "already exists" in refused(capsys, "experiments", "rename", "scratch-old", "kept")
    runs = sy.search_runs(experiments="scratch-old")
    assert len(runs) == 2 and {r.experiment for r in runs} == {"scratch-old"}

    # no terminal to ask at: say what to add, change nothing
    assert "add --yes" in refused(capsys, "experiments", "delete", "scratch-old")
    assert len(sy.search_runs(experiments="scratch-old")) == 2
    code, out, _ = cli(capsys, "experiments", "delete", "scratch-old", "--yes")
    assert code == 0 and "2 run(s)" in out
    assert sy.search_runs(experiments="scratch-old") == []
    for run in runs:  # params, metrics and the run itself are gone, not orphaned
        assert "not found" in refused(capsys, "runs", "show", run.id)
        assert sy.get_metric_history(run.id, "loss") == []
    # the name is free again, in this process too (the id was cached by name)
    with sy.start_run(experiment="scratch-old") as again:
        again.log_metrics({"loss": 0.1})
    assert [r.id for r in sy.search_runs(experiments="scratch-old")] == [again.id]

    # a registered version's source run is its lineage: refused, naming the version
    line = refused(capsys, "experiments", "delete", "kept", "--yes")
    assert f"model version flowers/{mv.version}" in line
    code, out, _ = cli(capsys, "runs", "show", mv.run_id, "--json")
    assert code == 0 and json.loads(out)["models"] == [{"name": "flowers", "version": 1}]
    events = json.loads(cli(capsys, "models", "audit", "--json")[1])
    assert {"experiment.rename", "experiment.delete"} <= {e["action"] for e in events}


def test_an_experiment_with_a_live_run_or_a_child_elsewhere_is_not_deleted(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    live = sy.start_run(experiment="busy")
    line = refused(capsys, "experiments", "delete", "busy", "--yes")
    assert f"run {live.id[:8]} (still RUNNING)" in line
    live.end()
    with sy.start_run(experiment="elsewhere", parent_run_id=live.id) as child:
        pass
    line = refused(capsys, "experiments", "delete", "busy", "--yes")
    assert f"child run {child.id[:8]} of another experiment" in line
    assert sy.get_run(live.id).status == "FINISHED"  # nothing removed
    assert cli(capsys, "experiments", "delete", "elsewhere", "--yes")[0] == 0
    assert cli(capsys, "experiments", "delete", "busy", "--yes")[0] == 0
    assert [e["name"] for e in json.loads(cli(capsys, "experiments", "list", "--json")[1])] == []


def test_runs_metric_prints_history_and_sparkline(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with sy.start_run(experiment="curves") as run:
        for step in range(10):
            run.log_metric("loss", 1.0 - step / 10, step=step)
        run.log_metric("auc", 0.9)
    code, out, _ = cli(capsys, "runs", "metric", run.id[:8], "loss")
    assert code == 0 and "10 point(s)" in out
    assert "█▇▆▅▄▄▃▂▁▁"[:1] in out and "▁" in out  # falling loss: from the top bar down
    spark = next(line for line in out.splitlines() if line.startswith(("█", "▇")))
    assert spark.split()[0][0] == "█" and spark.split()[0][-1] == "▁"
    code, out, _ = cli(capsys, "runs", "metric", run.id, "loss", "--json")
    points = json.loads(out)["points"]
    assert [p["step"] for p in points] == list(range(10)) and points[0]["value"] == 1.0
    assert all(isinstance(p["timestamp"], int) for p in points)
    line = refused(capsys, "runs", "metric", run.id, "los")
    assert "did you mean 'loss'" in line


def test_model_and_version_delete_is_refused_while_in_use(
    settings: Settings, capsys: pytest.CaptureFixture[str], iris: Any
) -> None:
    from shipyard.rollout import Deployments

    versions = [_register(*iris) for _ in range(3)]
    sy.set_alias("flowers", "champion", 1)
    Deployments(open_stores(settings)).create("web", "models:/flowers/2")

    line = refused(capsys, "models", "delete", "flowers", "--version", "1", "--yes")
    assert "alias 'champion'" in line
    line = refused(capsys, "models", "delete", "flowers", "--version", "2", "--yes")
    assert "endpoint 'web'" in line
    line = refused(capsys, "models", "delete", "flowers", "--yes")
    assert "alias 'champion' (version 1)" in line and "endpoint 'web'" in line
    assert "add --yes" in refused(capsys, "models", "delete", "flowers", "--version", "3")

    code, out, _ = cli(capsys, "models", "delete", "flowers", "--version", "3", "--yes")
    assert code == 0 and "deleted flowers version 3" in out
    shown = json.loads(cli(capsys, "models", "show", "flowers", "--json")[1])
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    # a version number is never given out again: models:/flowers/3 stays the deleted one
    assert _register(*iris).version == 4
    assert versions[2].run_id is not None
    assert "has no version 3" in refused(capsys, "models", "delete", "flowers", "-v", "3", "-y")

    Deployments(open_stores(settings)).delete("web")
    cli(capsys, "models", "alias", "flowers", "champion", "--delete")
    code, out, _ = cli(capsys, "models", "delete", "flowers", "--yes")
    assert code == 0 and "3 version(s)" in out
    assert "not found" in refused(capsys, "models", "show", "flowers")


def test_a_rollout_candidate_and_a_latest_endpoint_block_a_version_delete(
    settings: Settings, capsys: pytest.CaptureFixture[str], iris: Any
) -> None:
    from shipyard.rollout import Deployments

    for _ in range(3):
        _register(*iris)
    deployments = Deployments(open_stores(settings))
    deployments.create("web", "models:/flowers/1")
    deployments.canary("web", "models:/flowers/2")
    deployments.create("edge", "models:/flowers/latest")
    line = refused(capsys, "models", "delete", "flowers", "-v", "2", "--yes")
    assert "endpoint 'web' (candidate" in line
    line = refused(capsys, "models", "delete", "flowers", "-v", "1", "--yes")
    assert "endpoint 'web' (serves, stable version 1)" in line
    line = refused(capsys, "models", "delete", "flowers", "-v", "3", "--yes")
    assert "endpoint 'edge'" in line


def test_tags_and_descriptions_of_models_and_versions(
    settings: Settings, capsys: pytest.CaptureFixture[str], iris: Any
) -> None:
    _register(*iris)
    assert cli(capsys, "models", "tag", "flowers", "team=botany", "owner=alice")[0] == 0
    assert cli(capsys, "models", "tag", "flowers", "-v", "1", "dataset=iris-1936")[0] == 0
    assert cli(capsys, "models", "describe", "flowers", "Fisher's irises")[0] == 0
    assert cli(capsys, "models", "describe", "flowers", "-v", "1", "first fit")[0] == 0
    code, out, _ = cli(capsys, "models", "show", "flowers")
    assert code == 0 and "description: Fisher's irises" in out
    assert "owner=alice, team=botany" in out
    assert "dataset=iris-1936" in out and "first fit" in out
    assert cli(capsys, "models", "tag", "flowers", "--delete-tag", "owner")[0] == 0
    shown = json.loads(cli(capsys, "models", "show", "flowers", "--json")[1])
    assert shown["tags"] == {"team": "botany"} and shown["description"] == "Fisher's irises"
    assert shown["versions"][0]["tags"]["dataset"] == "iris-1936"
    assert shown["versions"][0]["description"] == "first fit"

    assert "KEY=VALUE" in refused(capsys, "models", "tag", "flowers", "team")
    assert "did you mean 'team'" in refused(capsys, "models", "tag", "flowers", "-d", "teem")
    line = refused(capsys, "models", "tag", "flowers", "-v", "1", "reference_profile=x")
    assert "kept by shipyard" in line
    assert "has no version 9" in refused(capsys, "models", "describe", "flowers", "-v", "9", "x")
    actions = [e["action"] for e in json.loads(cli(capsys, "models", "audit", "--json")[1])]
    assert {"model.tag", "model.untag", "version.tag", "model.update", "version.update"} <= set(
        actions
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # nothing here is per database
def test_batch_score_writes_one_probability_column_per_class(
    settings: Settings, capsys: pytest.CaptureFixture[str], iris: Any, tmp_path: Path
) -> None:
    from sklearn.linear_model import LinearRegression

    X, y = iris
    _register(X, y)
    X.to_csv(tmp_path / "in.csv", index=False)
    base = ["batch", "score", "-i", str(tmp_path / "in.csv"), "--workers", "1", "--json"]
    code, _, err = cli(capsys, *base, "-m", "flowers/1", "-o", str(tmp_path / "p"), "--proba")
    assert code == 0, err
    out = pd.read_parquet(tmp_path / "p")
    names = [f"_proba_{c}" for c in ("setosa", "versicolor", "virginica")]
    assert set(names) <= set(out.columns)
    assert out[names].sum(axis=1).round(6).eq(1).all()
    code, _, err = cli(capsys, *base, "-m", "flowers/1", "-o", str(tmp_path / "n"), "--no-proba")
    assert code == 0, err
    assert not [c for c in pd.read_parquet(tmp_path / "n").columns if c.startswith("_proba")]

    with sy.start_run(experiment="reg") as run:
        reg = LinearRegression().fit(X, range(len(X)))
        run.log_model(reg, name="petals", input_example=X[:5], onnx=False)
    line = refused(capsys, *base, "-m", "petals/1", "-o", str(tmp_path / "r"), "--proba")
    assert "has no class probabilities" in line
    assert not (tmp_path / "r").exists()  # refused before anything was written
