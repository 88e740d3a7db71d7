"""`shipyard pipeline`, `shipyard data` and `shipyard gate` as a user drives them."""

from __future__ import annotations

import functools
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run_cli

sh = functools.partial(run_cli, check=False, timeout=240)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

PIPELINE = textwrap.dedent("""
    import pandas as pd
    import shipyard as sy

    @sy.step
    def load(rows: int):
        return pd.DataFrame({"x": range(rows)})

    @sy.step
    def double(df):
        return df.assign(x=df["x"] * 2)

    @sy.step
    def total(df) -> float:
        if len(df) == 13:
            raise RuntimeError("thirteen is unlucky")
        return float(df["x"].sum())

    @sy.Pipeline
    def numbers(rows: int = 10):
        return total(double(load(rows)))
""")


def test_pipeline_run_caches_reruns_changed_code_and_reports_failures(tmp_path: Path) -> None:
    home, file = tmp_path / "home", tmp_path / "numbers.py"
    file.write_text(PIPELINE)
    first = sh(home, "pipeline", "run", str(file), "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert {s["status"] for s in doc["steps"].values()} == {"FINISHED"}
    second = sh(home, "pipeline", "run", str(file))
    assert "0 step(s) ran, 3 cached" in second.stdout, second.stdout + second.stderr
    assert "cached" in second.stderr  # the progress display lists each step

    file.write_text(PIPELINE.replace('df["x"] * 2', 'df["x"] * 3'))
    third = json.loads(sh(home, "pipeline", "run", str(file), "--json").stdout)
    assert {n: s["status"] for n, s in third["steps"].items()} == {
        "load": "CACHED",
        "double": "FINISHED",
        "total": "FINISHED",
    }
    forced = json.loads(sh(home, "pipeline", "run", str(file), "--no-cache", "--json").stdout)
    assert {s["status"] for s in forced["steps"].values()} == {"FINISHED"}

    failed = sh(home, "pipeline", "run", str(file), "--param", "rows=13")
    assert failed.returncode == 1
    assert "error: step 'total' failed: RuntimeError: thirteen is unlucky" in failed.stderr
    assert "Traceback" not in failed.stderr

    bad = sh(home, "pipeline", "run", str(file), "--param", "rows=many")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "--param rows='many': expected int" in bad.stderr
    missing = sh(home, "pipeline", "run", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "not a Python file" in missing.stderr

    runs = json.loads(sh(home, "pipeline", "runs", "--json").stdout)
    assert len(runs) == 5 and runs[0]["status"] == "FAILED"
    shown = sh(home, "pipeline", "show", third["id"][:10])
    assert "double" in shown.stdout and "FINISHED" in shown.stdout
    digest = third["steps"]["total"]["outputs"][0]["digest"]
    tree = json.loads(sh(home, "pipeline", "lineage", digest[:12], "--json").stdout)
    assert tree["step"] == "total" and tree["inputs"]["df"]["step"] == "double"
    assert tree["inputs"]["df"]["inputs"]["df"]["params"] == {"rows": 10}
    unknown = sh(home, "pipeline", "lineage", "deadbeefdeadbeef")
    assert unknown.returncode == 2 and "no pipeline step produced" in unknown.stderr


def test_data_validate_lists_failures_and_exits_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    df = pd.DataFrame({"age": [30, -4, 51, -9], "plan": ["basic", "pro", "gold", "pro"]})
    df.to_csv(tmp_path / "new.csv", index=False)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: customers\nexpectations:\n"
        "  - {column: age, min: 0}\n"
        "  - {column: plan, allowed: [basic, pro], severity: warning}\n"
    )
    out = sh(home, "data", "validate", str(tmp_path / "new.csv"), "--suite", str(suite))
    assert out.returncode == 1
    assert "age: min 0" in out.stdout and "customers FAILED" in out.stdout
    doc = json.loads(
        sh(home, "data", "validate", str(tmp_path / "new.csv"), "-s", str(suite), "--json").stdout
    )
    counts = {f["expectation"]: f["count"] for f in doc["failures"]}
    assert counts == {"age: min 0": 2, "plan: in ['basic', 'pro']": 1}
    suite.write_text("name: ok\nexpectations:\n  - {column: age, min: -10}\n")
    assert sh(home, "data", "validate", str(tmp_path / "new.csv"), "-s", str(suite)).returncode == 0
    bad = sh(home, "data", "validate", str(tmp_path / "missing.csv"), "-s", str(suite))
    assert bad.returncode == 2 and "no such file" in bad.stderr


@pytest.mark.slow
def test_example_pipeline_then_gates_on_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run = sh(home, "pipeline", "run", str(ROOT / "examples" / "churn_pipeline.py"), "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["status"] == "FINISHED" and len(doc["steps"]) == 9
    report = json.loads(sh(home, "gate", "show", "churn-pipeline", "1", "--json").stdout)
    assert report["passed"], report["report"]["gates"]
    assert {g["kind"] for g in report["report"]["gates"]} == {
        "metric",
        "latency",
        "fairness",
        "min_samples",
    }
    model = json.loads(sh(home, "models", "show", "churn-pipeline", "--json").stdout)
    assert model["aliases"] == {"challenger": 1}
    assert model["versions"][0]["tags"]["approval_requested"] == "any reviewer"

    rng = np.random.default_rng(1)
    holdout = pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, 600),
            "monthly_charges": rng.gamma(4.0, 18.0, 600),
            "support_calls": rng.poisson(1.5, 600),
            "contract_months": rng.choice([1, 12, 24], 600),
            "late_payments": rng.poisson(0.6, 600),
            "region": rng.choice(["north", "south"], 600),
        }
    )
    holdout["churned"] = rng.integers(0, 2, 600)  # labels unrelated to the features
    holdout.to_parquet(tmp_path / "holdout.parquet")
    sh(home, "gate", "set", "churn-pipeline", "--min-samples", "1000")
    check = sh(
        home,
        "gate",
        "check",
        "churn-pipeline",
        "1",
        "-d",
        str(tmp_path / "holdout.parquet"),
        "-t",
        "churned",
    )
    assert check.returncode == 1 and "evaluation samples" in check.stdout
    blocked = sh(home, "models", "alias", "churn-pipeline", "champion", "1")
    assert blocked.returncode == 2 and blocked.stderr.count("\n") == 1
    assert "failed its quality gates (evaluation samples)" in blocked.stderr
    forced = sh(
        home, "models", "alias", "churn-pipeline", "champion", "1", "--override-gates", "demo"
    )
    assert forced.returncode == 0, forced.stderr
    bad = sh(home, "gate", "set", "churn-pipeline", "--metric", "auc:0.01")
    assert bad.returncode == 2 and "unknown metric 'auc'" in bad.stderr
