"""The committed deploy assets (Dockerfile, .dockerignore, CI workflow) keep their promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per stage; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        word, _, args = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        assert stages, f"instruction before the first FROM: {line}"
        stages[-1].append((word.upper(), args.strip()))
    return stages


def final_stage(instruction: str) -> list[str]:
    return [args for word, args in dockerfile_stages()[-1] if word == instruction]


def test_dockerfile_is_multi_stage() -> None:
    assert len(dockerfile_stages()) > 1


def test_final_stage_runs_as_non_root() -> None:
    users = final_stage("USER")
    assert users, "final stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_healthcheck_asks_readiness_on_the_exposed_port() -> None:
    (healthcheck,) = final_stage("HEALTHCHECK")
    found = re.search(r"https?://(?:127\.0\.0\.1|localhost):(\d+)/health/ready\b", healthcheck)
    assert found, healthcheck
    exposed = {port.split("/")[0] for args in final_stage("EXPOSE") for port in args.split()}
    assert exposed == {found.group(1)}
    # exec form, so it runs without a shell; the slim image has python but no curl
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    # and the server the image starts listens on that port, on all interfaces
    (cmd,) = final_stage("CMD")
    args = json.loads(cmd)
    assert args[args.index("--port") + 1] == found.group(1)
    assert args[args.index("--host") + 1] == "0.0.0.0"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".venv", ".git"} <= ignored


def test_ci_workflow_parses_and_tests_both_pythons_with_services() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1)
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    jobs = workflow["jobs"]
    tests = jobs["tests"]
    assert {"3.11", "3.12"} <= set(tests["strategy"]["matrix"]["python-version"])
    assert {"postgres", "redis"} <= set(tests["services"])
    assert {"SHIPYARD_TEST_POSTGRES_URL", "SHIPYARD_TEST_REDIS_URL"} <= set(tests["env"])
    assert any("make test" in step.get("run", "") for step in tests["steps"])
    assert {"lint", "type-check", "docker"} <= set(jobs)
