"""The CLI as a user drives it: real processes, a temporary SHIPYARD_HOME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import SHIPYARD, free_port, run_cli, wait_ready

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where `shipyard quickstart --no-serve` has run (once for the module)."""
    home = tmp_path_factory.mktemp("e2e-home")
    out = run_cli(home, "quickstart", "--no-serve")
    assert "champion" in out.stdout
    assert "predict" in out.stdout and "curl -s http://127.0.0.1:" in out.stdout
    return home


def test_quickstart_tracked_registered_and_served(home: Path) -> None:
    runs = json.loads(run_cli(home, "runs", "list", "--experiment", "quickstart", "--json").stdout)
    assert sorted(r["name"] for r in runs) == ["logreg", "random-forest"]
    assert all(r["status"] == "FINISHED" and r["metrics"]["auc"] > 0.9 for r in runs)
    model = json.loads(run_cli(home, "models", "show", "breast-cancer", "--json").stdout)
    assert [v["version"] for v in model["versions"]] == [1, 2]
    best = max(runs, key=lambda r: r["metrics"]["auc"])
    champion = model["aliases"]["champion"]
    assert next(v for v in model["versions"] if v["version"] == champion)["run_id"] == best["id"]


def test_runs_commands(home: Path) -> None:
    runs = json.loads(
        run_cli(
            home, "runs", "list", "-f", "metrics.auc > 0.5", "-o", "metrics.auc DESC", "--json"
        ).stdout
    )
    assert runs[0]["metrics"]["auc"] >= runs[1]["metrics"]["auc"]
    shown = run_cli(home, "runs", "show", runs[0]["id"][:8]).stdout
    assert "param model" in shown and "metric auc" in shown and "models:/breast-cancer/" in shown
    assert "dataset train" in shown
    compared = run_cli(home, "runs", "compare", runs[0]["id"][:8], runs[1]["id"][:8]).stdout
    assert "* param model" in compared
    table = run_cli(home, "runs", "list").stdout
    assert "2 run(s)" in table


def test_models_commands_and_audit(home: Path) -> None:
    assert "breast-cancer" in run_cli(home, "models", "list").stdout
    run_cli(home, "models", "alias", "breast-cancer", "challenger", "2", "--reason", "e2e check")
    events = json.loads(run_cli(home, "models", "audit", "breast-cancer", "--json").stdout)
    assert events[0]["action"] == "alias.set"
    assert (events[0]["actor"], events[0]["reason"]) == ("e2e", "e2e check")
    run_cli(home, "models", "alias", "breast-cancer", "challenger", "--delete")
    assert (
        json.loads(run_cli(home, "models", "audit", "breast-cancer", "--json").stdout)[0]["action"]
        == "alias.delete"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["models", "show", "brest-cancer"],
            "error: model 'brest-cancer' not found; did you mean 'breast-cancer'?",
        ),
        (
            ["runs", "list", "-f", "metrics.auc >> 1"],
            "error: expected a number, found '>' at position 13",
        ),
        (
            ["models", "alias", "breast-cancer", "champion", "99"],
            "error: model 'breast-cancer' has no version 99",
        ),
        (["runs", "show", "ffffffff"], "error: run 'ffffffff' not found"),
        (["serve", "not a uri"], "error: 'not a uri' is not a model URI"),
        (["serve"], "give a MODEL_URI or --endpoint NAME"),
        (["serve", "--endpoint", "brest-cancer"], "did you mean 'breast-cancer'"),
        (["runs", "list", "--limit", "0"], "Invalid value for '--limit'"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(home: Path, args: list[str], message: str) -> None:
    out = run_cli(home, *args, check=False)
    assert out.returncode == 2, out
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_debug_shows_the_traceback(home: Path) -> None:
    out = run_cli(home, "--debug", "models", "show", "nope", check=False)
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "NotFoundError" in out.stderr


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["quickstart"],
        ["server"],
        ["serve"],
        ["runs"],
        ["runs", "list"],
        ["runs", "show"],
        ["runs", "compare"],
        ["models"],
        ["models", "list"],
        ["models", "show"],
        ["models", "alias"],
        ["models", "audit"],
        ["models", "approve"],
        ["models", "reject"],
        ["deploy"],
        ["deploy", "create"],
        ["deploy", "list"],
        ["deploy", "delete"],
        ["deploy", "canary"],
        ["deploy", "ab"],
        ["deploy", "shadow"],
        ["deploy", "bluegreen"],
        ["deploy", "status"],
        ["deploy", "promote"],
        ["deploy", "rollback"],
        ["deploy", "history"],
        ["deploy", "watch"],
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["monitor"],
        ["monitor", "drift"],
        ["monitor", "labels"],
        ["monitor", "accuracy"],
        ["monitor", "report"],
        ["monitor", "run"],
        ["monitor", "alert"],
        ["monitor", "alert", "add"],
        ["monitor", "alert", "list"],
        ["monitor", "alert", "remove"],
        ["monitor", "alert", "events"],
        ["export"],
        ["import"],
        ["import", "mlflow"],
        ["batch"],
        ["batch", "score"],
        ["export", "prometheus-rules"],
        ["admin"],
        ["admin", "doctor"],
    ],
)
def test_every_command_has_help_with_an_example(tmp_path: Path, command: list[str]) -> None:
    out = run_cli(tmp_path, *command, "--help")
    assert "Example" in out.stdout, out.stdout


def predicted_in_python(home: Path, rows: list[dict[str, float]]) -> list[int]:
    """What `shipyard.load_model` predicts for `rows`, in a process of its own on `home`."""
    code = (
        "import json, sys, shipyard as sy; "
        "model = sy.load_model('models:/breast-cancer@champion'); "
        "print(json.dumps(model.predict(json.loads(sys.argv[1])).tolist()))"
    )
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_USER": "e2e"}
    env.pop("SHIPYARD_DB_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(rows)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    predictions: list[int] = json.loads(out.stdout)
    return predictions


def test_serve_one_model_then_sigterm(home: Path) -> None:
    port = free_port()
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    proc = subprocess.Popen(
        [
            *SHIPYARD,
            "serve",
            "models:/breast-cancer@champion",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        meta = httpx.get(f"{url}/v2/models/breast-cancer").json()
        rows = [{i["name"]: value for i in meta["inputs"]} for value in (1.0, 20.0, 500.0)]
        r = httpx.post(f"{url}/endpoints/breast-cancer/predict", json={"instances": rows})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == predicted_in_python(home, rows)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_deploy_create_and_list(home: Path) -> None:
    run_cli(home, "deploy", "create", "bc", "--model", "breast-cancer@champion")
    listed = json.loads(run_cli(home, "deploy", "list", "--json").stdout)
    assert {e["name"]: e["model_uri"] for e in listed}["bc"] == "models:/breast-cancer@champion"
    out = run_cli(home, "deploy", "create", "bc2", "--model", "breast-cancer@nope", check=False)
    assert out.returncode == 2 and "alias of model 'breast-cancer'" in out.stderr


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    created = json.loads(
        run_cli(
            tmp_path,
            "keys",
            "create",
            "bot",
            "--scope",
            "predict",
            "--endpoint",
            "churn",
            "--rate",
            "5",
            "--json",
        ).stdout
    )
    assert created["key"].startswith(f"sy_{created['id']}_")
    listed = json.loads(run_cli(tmp_path, "keys", "list", "--json").stdout)
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and "hash" not in listed[0]
    run_cli(tmp_path, "keys", "revoke", created["id"], "--reason", "rotated")
    assert json.loads(run_cli(tmp_path, "keys", "list", "--json").stdout)[0]["revoked_at"]
    bad = run_cli(tmp_path, "keys", "create", "x", "--scope", "root", check=False)
    assert bad.returncode == 2
    assert "scopes must be some of predict, feedback, read, track, admin" in bad.stderr


def test_monitor_drift_on_files(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 5000),
            "y": rng.normal(0, 1, 5000),
            "c": rng.choice(list("ab"), 5000),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.3, 1, 4000),
            "y": rng.normal(0, 1, 4000),
            "c": rng.choice(list("abz"), 4000),
        }
    )
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    out = run_cli(
        tmp_path,
        "monitor",
        "drift",
        "--reference",
        str(tmp_path / "ref.parquet"),
        "--current",
        str(tmp_path / "cur.csv"),
        "--json",
        "--multivariate",
    )
    doc = json.loads(out.stdout)
    assert doc["drifted_columns"] == ["x", "c"]
    assert doc["multivariate"]["kind"] == "multivariate (domain classifier)"
    assert doc["multivariate"]["drifted"] is True
    for name in ("x", "y", "c"):
        col = doc["columns"][name]
        assert {"drifted", "test", "statistic", "p_value", "effect_size"} <= set(col)
    assert doc["columns"]["y"]["drifted"] is False
    assert doc["quality"]["columns"]["c"]["unseen_categories"] > 0
    table = run_cli(
        tmp_path,
        "monitor",
        "drift",
        "--reference",
        str(tmp_path / "ref.parquet"),
        "--current",
        str(tmp_path / "cur.csv"),
    ).stdout
    assert "DRIFT x" in table and "2 of 3 column(s) drifted" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reference", "nope.parquet", "--current", "nope.csv"], "no such file: nope.parquet"),
        (["--endpoint", "breast-cancer", "--window", "soon"], "is not a duration"),
        (["--current", "x.csv"], "give --reference and --current files, or --endpoint NAME"),
        (["--endpoint", "brest-cancer"], "did you mean 'breast-cancer'"),
    ],
)
def test_monitor_bad_input(home: Path, args: list[str], message: str) -> None:
    out = run_cli(home, "monitor", "drift", *args, check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_monitor_an_endpoint_against_its_training_data(home: Path) -> None:
    doc = json.loads(
        run_cli(
            home, "monitor", "drift", "--endpoint", "breast-cancer", "--window", "1h", "--json"
        ).stdout
    )
    assert doc["source"]["endpoint"] == "breast-cancer"
    assert doc["source"]["current_rows"] >= 2  # the quickstart's requests, from the log
    assert "mean radius" in doc["columns"] and "target" not in doc["columns"]


def test_monitor_labels_and_accuracy(home: Path, tmp_path: Path) -> None:
    import pandas as pd

    from shipyard.stores.predictions import PredictionLogStore

    log = PredictionLogStore(home / "artifacts" / "predictions").read("breast-cancer").to_pandas()
    ok = log[log["_status"] == 200]
    labels = ok[["_request_id", "_row", "_prediction"]].rename(
        columns={"_request_id": "request_id", "_row": "row", "_prediction": "label"}
    )
    labels.loc[labels.index[0], "label"] = 1 - labels["label"].iloc[0]  # one wrong prediction
    labels.to_csv(tmp_path / "labels.csv", index=False)
    out = run_cli(
        home, "monitor", "labels", str(tmp_path / "labels.csv"), "--endpoint", "breast-cancer"
    )
    assert f"imported {len(labels)} label(s)" in out.stdout
    doc = json.loads(
        run_cli(home, "monitor", "accuracy", "--endpoint", "breast-cancer", "--json").stdout
    )
    assert doc["labelled_rows"] == len(labels)
    assert doc["overall"]["accuracy"] == pytest.approx(1 - 1 / len(labels))
    bad = pd.DataFrame({"request_id": ["x"]})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    out = run_cli(
        home,
        "monitor",
        "labels",
        str(tmp_path / "bad.csv"),
        "--endpoint",
        "breast-cancer",
        check=False,
    )
    assert out.returncode == 2 and "lacks column(s) label" in out.stderr


def test_alert_rules_from_the_cli_and_as_prometheus_rules(home: Path, tmp_path: Path) -> None:
    import shutil

    run_cli(
        home,
        "monitor",
        "alert",
        "add",
        "breast-cancer",
        "--name",
        "drift",
        "--when",
        "drift_share > 0.3",
        "--for",
        "2",
        "--command",
        "echo retrain",
    )
    run_cli(
        home,
        "monitor",
        "alert",
        "add",
        "breast-cancer",
        "--name",
        "slow",
        "--when",
        "p99_latency_ms > 100",
    )
    run_cli(
        home,
        "monitor",
        "alert",
        "add",
        "breast-cancer",
        "--name",
        "acc",
        "--when",
        "accuracy < 0.85",
        "--webhook",
        "http://127.0.0.1:9/hook",
    )
    rules = json.loads(run_cli(home, "monitor", "alert", "list", "--json").stdout)
    assert {r["name"]: r["condition"] for r in rules} == {
        "drift": "drift_share > 0.3",
        "slow": "p99_latency_ms > 100",
        "acc": "accuracy < 0.85",
    }
    bad = run_cli(
        home,
        "monitor",
        "alert",
        "add",
        "breast-cancer",
        "--name",
        "x",
        "--when",
        "speed > 3",
        check=False,
    )
    assert bad.returncode == 2 and "unknown metric 'speed'" in bad.stderr
    run_cli(home, "export", "prometheus-rules", "--out", str(tmp_path / "rules.yml"))
    text = (tmp_path / "rules.yml").read_text()
    assert "shipyard_drift_share" in text and "histogram_quantile(0.99" in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'; .ci/run installs it)")
    check = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 3 rules found" in check.stdout
    run = json.loads(
        run_cli(
            home, "monitor", "run", "--endpoint", "breast-cancer", "--window", "1d", "--json"
        ).stdout
    )
    assert run[0]["endpoint"] == "breast-cancer" and run[0]["error"] is None
    for name in ("drift", "slow", "acc"):
        run_cli(home, "monitor", "alert", "remove", "breast-cancer", name)


def test_deploy_rollout_commands(home: Path) -> None:
    model = json.loads(run_cli(home, "models", "show", "breast-cancer", "--json").stdout)
    champion = model["aliases"]["champion"]
    other = next(v["version"] for v in model["versions"] if v["version"] != champion)
    run_cli(home, "deploy", "create", "rollout-demo", "--model", "breast-cancer@champion")
    out = run_cli(
        home,
        "deploy",
        "canary",
        "rollout-demo",
        "--model",
        f"breast-cancer/{other}",
        "--steps",
        "10,50,100",
    )
    assert "canary of models:/breast-cancer/" in out.stdout and "at 10%" in out.stdout
    for args, words in [
        (["deploy", "canary", "rollout-demo", "--model", f"breast-cancer/{other}"], "already runs"),
        (["deploy", "canary", "nope", "--model", "breast-cancer/1"], "endpoint 'nope' not found"),
        (["deploy", "canary", "x", "--model", "breast-cancer/2", "--steps", "50,20"], "increase"),
        (["deploy", "canary", "x", "--model", "breast-cancer/2", "--steps", "a,b"], "--steps"),
        (
            ["deploy", "ab", "x", "--model", "breast-cancer/2", "--outcome-source", "revenue"],
            "--outcome-source is 'outcome' or 'label'",
        ),
    ]:
        bad = run_cli(home, *args, check=False)
        assert bad.returncode == 2 and words in bad.stderr, (args, bad.stderr)
    status = json.loads(run_cli(home, "deploy", "status", "rollout-demo", "--json").stdout)
    assert status["policy"] == "canary" and status["config"]["weight"] == 10
    assert status["would_decide"]["action"] == "hold"
    assert "canary" in run_cli(home, "deploy", "status", "rollout-demo").stdout
    run_cli(home, "deploy", "rollback", "rollout-demo", "--reason", "e2e")
    history = json.loads(run_cli(home, "deploy", "history", "rollout-demo", "--json").stdout)
    assert [e["action"] for e in history][:2] == ["rollout.rollback", "rollout.canary"]
    assert history[0]["reason"] == "e2e"
    assert (
        "no rollout in progress"
        in run_cli(home, "deploy", "watch", "rollout-demo", "--once").stdout
    )
    bad = run_cli(home, "deploy", "promote", "rollout-demo", check=False)
    assert bad.returncode == 2 and "no rollout in progress" in bad.stderr


def test_approvals_from_the_cli(home: Path) -> None:
    model = json.loads(run_cli(home, "models", "show", "breast-cancer", "--json").stdout)
    champion = model["aliases"]["champion"]
    other = next(v["version"] for v in model["versions"] if v["version"] != champion)
    bad = run_cli(
        home,
        "deploy",
        "create",
        "strict",
        "--model",
        f"breast-cancer/{other}",
        "--require-approval",
        check=False,
    )
    assert bad.returncode == 2 and "approve it first" in bad.stderr
    out = run_cli(
        home,
        "models",
        "approve",
        "breast-cancer",
        str(other),
        "--reviewer",
        "alice",
        "--comment",
        "ok",
    )
    assert "approved by alice" in out.stdout
    again = run_cli(
        home, "models", "reject", "breast-cancer", str(other), "--reviewer", "bob", check=False
    )
    assert again.returncode == 2 and "already approved" in again.stderr
    run_cli(
        home,
        "deploy",
        "create",
        "strict",
        "--model",
        f"breast-cancer/{other}",
        "--require-approval",
    )
    events = json.loads(run_cli(home, "models", "audit", "breast-cancer", "--json").stdout)
    assert any(e["action"] == "version.approve" and e["reason"] == "ok" for e in events)
