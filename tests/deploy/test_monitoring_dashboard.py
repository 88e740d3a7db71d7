"""The monitoring target's Grafana dashboard type-checks against @grafana/schema's `Dashboard`
with tsc (strict), and the same check fails a dashboard with a field of the wrong type or a
field the schema does not have; its panels cover RED by version, stable vs canary, latency
percentiles, batching, queue wait and drift."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shipyard.deploy import Deploy
from tests.deploy.conftest import tool

TOOLS = Path(__file__).parent / "tools"
PROJECT = Path(__file__).parent / "grafana"


def _tsc(dashboard: dict[str, Any], folder: Path) -> subprocess.CompletedProcess[str]:
    tsc = tool("tsc", where=(TOOLS / "node_modules" / ".bin",))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / "tsconfig.json", folder / "tsconfig.json")
    (folder / "node_modules").symlink_to(TOOLS / "node_modules", target_is_directory=True)
    (folder / "dashboard.ts").write_text(
        "import type { Dashboard } from '@grafana/schema';\n"
        f"export const dashboard: Dashboard = {json.dumps(dashboard, indent=2)};\n"
    )
    return subprocess.run(
        [tsc, "-p", str(folder)], capture_output=True, text=True, timeout=300, cwd=folder
    )


@pytest.fixture
def dashboard(canary_endpoint: str, stores: Any) -> dict[str, Any]:
    rendered = Deploy(stores).render("monitoring", endpoint=canary_endpoint)
    doc: dict[str, Any] = json.loads(rendered.files["grafana-dashboard.json"])
    return doc


def test_the_dashboard_type_checks_against_grafana_schema(
    dashboard: dict[str, Any], tmp_path: Path
) -> None:
    found = _tsc(dashboard, tmp_path / "ok")
    assert found.returncode == 0, found.stdout + found.stderr


@pytest.mark.parametrize(
    ("where", "change", "says"),
    [
        ("top", {"schemaVersion": "39"}, "not assignable to type 'number'"),
        ("top", {"refresh": 30}, "not assignable to type 'string'"),
        ("panel", {"gridPos": {"h": 8, "w": "12", "x": 0, "y": 0}}, "not assignable"),
        ("panel", {"type": 5}, "not assignable to type 'string'"),
        ("top", {"panelz": []}, "does not exist in type 'Dashboard'"),
    ],
)
def test_a_wrong_field_fails_the_same_check(
    dashboard: dict[str, Any], tmp_path: Path, where: str, change: dict[str, Any], says: str
) -> None:
    if where == "top":
        dashboard.update(change)
    else:
        dashboard["panels"][0].update(change)
    found = _tsc(dashboard, tmp_path / "bad")
    assert found.returncode != 0
    assert says in found.stdout + found.stderr


def test_the_panels_cover_red_canary_latency_batching_and_drift(
    dashboard: dict[str, Any],
) -> None:
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}
    legends = [t["legendFormat"] for p in dashboard["panels"] for t in p["targets"]]
    every = "\n".join(e for v in exprs.values() for e in v)
    for needed in (
        "shipyard_requests_total",  # rate
        'status=~"5.."',  # errors
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "shipyard_batch_rows_",
        "shipyard_queue_wait_seconds_bucket",
        "shipyard_drift_share",
        "shipyard_feature_drift_score",
    ):
        assert needed in every, needed
    assert "stable v1" in legends and "canary v2" in legends  # the rollout's two versions
    assert all('endpoint="churn-api"' in e for e in every.split("\n") if "shipyard_" in e)
    ids = [p["id"] for p in dashboard["panels"]]
    assert ids == sorted(set(ids))
