"""Target `ci`: a GitHub Actions workflow for the repository that trains a model, taking a new
version from training to production with the shipyard CLI:

    train -> data-contract -> gate -> register -> build -> validate -> staging -> smoke
          -> canary (environment: production, behind its required reviewers) -> promote

    shipyard deploy render models:/churn@champion -t ci -o . --set label=churned
    # writes .github/workflows/shipyard-model.yml

- train runs your training command, which registers a new version (shipyard's gates check a
  registered version; it serves nothing until an alias or an endpoint points at it);
- data-contract checks the held-out data the gate scores against your contract;
- gate runs `shipyard gate check`: the gates set on the model (`shipyard gate set`), metric
  drops measured against the champion;
- register makes the gated version the challenger (shipyard refuses an alias to a version
  that failed its gates);
- build renders the docker target for the pinned version, builds and pushes it, and hands
  on the image by digest;
- validate renders the k8s manifests for that version and image, and renders them again with
  `--check` (it fails if the render is not reproducible); the manifests are an artifact,
  so staging applies exactly what was checked;
- staging applies them and waits for the Deployment; smoke asks the staging URL for
  readiness and one prediction;
- canary, behind the production environment's approval, starts a canary of the version on
  the production endpoint and waits for the rollout controller's verdict (rolls back and
  fails on "rollback"); promote makes it stable: the alias the endpoint follows moves to it.

Every action is pinned by full commit SHA (the comment names its release). Secrets and
variables the workflow reads: SHIPYARD_DB_URL and SHIPYARD_ARTIFACTS (the stores, as
secrets), STAGING_KUBECONFIG (a secret of the staging environment), SHIPYARD_STAGING_URL
and, when staging requires credentials, SHIPYARD_STAGING_TOKEN (an API key that may read).
"""

from __future__ import annotations

import re
from typing import Any

from shipyard.deploy.manifests import dump_yaml
from shipyard.deploy.targets import Context
from shipyard.errors import InvalidArgumentError

WORKFLOW = ".github/workflows/shipyard-model.yml"

SETTINGS = {
    "install": "the command that installs your training environment, shipyard included "
    "(default: pip install -r requirements.txt)",
    "train_command": "trains and registers a new version (default: python train.py)",
    "holdout": "held-out data the gate scores and the contract checks (default "
    "data/holdout.parquet)",
    "contract": "the data contract, a suite YAML (default contracts/<model>.yaml)",
    "label": "the label column of the held-out data (default: label)",
    "endpoint": "the production endpoint, following an alias (default: the model's name)",
    "canary_weight": "percent of production traffic the canary gets, 1 to 99 (default 10)",
    "image_repository": "where the image is pushed, lower case "
    "(default ghcr.io/<repository owner>/shipyard-<model>)",
    "staging_namespace": "Kubernetes namespace of staging (default: staging)",
    "branch": "the branch whose pushes run the pipeline (default: main)",
    "smoke_request": "a predict request body in your repository the smoke test sends, when "
    "it exists (default .github/shipyard/smoke-request.json)",
}

# action -> (commit, release): the release's tag resolved to its commit
ACTIONS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "actions/download-artifact": ("3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "docker/setup-buildx-action": ("37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
    "docker/login-action": ("4907a6ddec9925e35a0a9e82d7399ccc52663121", "v4.1.0"),
    "docker/build-push-action": ("53b7df96c91f9c12dcc8a07bcb9ccacbed38856a", "v7.3.0"),
}

ORDER = (
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
)

_REPOSITORY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+$")
VERSION = "${{ needs.train.outputs.version }}"


def render(context: Context) -> dict[str, str | bytes]:
    from shipyard.deploy.targets.ci_jobs import jobs

    s = _settings(context)
    header = (
        f"# shipyard deploy render {context.facts.model.uri} --target ci (shipyard "
        f"{context.facts.shipyard_version}).\n"
        "# Actions are pinned by commit; the comment beside each names its release.\n"
    )
    doc: dict[str, Any] = {
        "name": f"shipyard model {context.facts.model.name}",
        "on": {"push": {"branches": [s["branch"]]}, "workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "concurrency": {
            "group": f"shipyard-model-{context.facts.app}",
            "cancel-in-progress": False,
        },
        "env": {
            "MODEL": context.facts.model.name,
            "ENDPOINT": s["endpoint"],
            "HOLDOUT": s["holdout"],
            "CONTRACT": s["contract"],
            "LABEL": s["label"],
            "SHIPYARD_USER": "github-actions",
            "SHIPYARD_DB_URL": "${{ secrets.SHIPYARD_DB_URL }}",
            "SHIPYARD_ARTIFACTS": "${{ secrets.SHIPYARD_ARTIFACTS }}",
        },
        "jobs": jobs(context, s),
    }
    text = header + dump_yaml(doc)
    # pinned actions: "uses: owner/name@<sha>  # vX.Y.Z"
    for action, (sha, release) in ACTIONS.items():
        text = text.replace(f"uses: {action}@{sha}\n", f"uses: {action}@{sha}  # {release}\n")
    return {WORKFLOW: text}


def uses(action: str) -> str:
    return f"{action}@{ACTIONS[action][0]}"


def _settings(context: Context) -> dict[str, str]:
    facts = context.facts
    default_endpoint = facts.endpoint.name if facts.endpoint else facts.app
    defaults = {
        "install": "pip install -r requirements.txt",
        "train_command": "python train.py",
        "holdout": "data/holdout.parquet",
        "contract": f"contracts/{facts.model.name}.yaml",
        "label": "label",
        "endpoint": default_endpoint,
        "canary_weight": "10",
        "image_repository": "",
        "staging_namespace": "staging",
        "branch": "main",
        "smoke_request": ".github/shipyard/smoke-request.json",
    }
    s = {k: context.options.setting(k, v) for k, v in defaults.items()}
    for key, value in s.items():
        if key != "image_repository" and not value.strip():
            raise InvalidArgumentError(f"--set {key}= is empty; give a value", field=key)
        if "\n" in value or "${{" in value:
            raise InvalidArgumentError(
                f"--set {key}: one line, without '${{{{' (it is not a workflow expression)",
                field=key,
            )
    weight = s["canary_weight"]
    if not weight.isdigit() or not 1 <= int(weight) <= 99:
        raise InvalidArgumentError(
            f"--set canary_weight={weight}: a percentage from 1 to 99 (100 is promote)",
            field="canary_weight",
        )
    repo = s["image_repository"]
    if repo and not _REPOSITORY.match(repo):
        raise InvalidArgumentError(
            f"--set image_repository={repo}: an image repository in lower case without tag "
            "or digest, e.g. ghcr.io/acme/churn (the build pushes by digest)",
            field="image_repository",
        )
    if not _BRANCH.match(s["branch"]):
        raise InvalidArgumentError(f"--set branch={s['branch']}: not a branch name", field="branch")
    return s
