"""The jobs of the ci target's workflow, in order; each needs the one before it (and `train`,
whose output is the version every later job works on)."""

from __future__ import annotations

from typing import Any

from shipyard.deploy.targets import Context
from shipyard.deploy.targets.ci import VERSION, uses

RUNNER = "ubuntu-latest"


def _setup(context: Context, s: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"uses": uses("actions/checkout")},
        {
            "uses": uses("actions/setup-python"),
            "with": {"python-version": context.facts.model.python},
        },
        {"name": "Install", "run": s["install"]},
    ]


def _job(needs: list[str], steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"runs-on": RUNNER}
    if needs:
        job["needs"] = needs
    job.update(extra)
    job["steps"] = steps
    return job


def jobs(context: Context, s: dict[str, str]) -> dict[str, Any]:
    setup = _setup(context, s)
    trusted = " --trusted" if context.facts.model.needs_trust else ""
    env = {"VERSION": VERSION}
    return {
        "train": _job(
            [],
            [
                *setup,
                {"name": "Train and register a version", "run": s["train_command"]},
                {
                    "name": "The version it registered",
                    "id": "version",
                    "run": 'version="$(shipyard models show "$MODEL" --json '
                    "| jq -r '.latest_version')\"\n"
                    'echo "version=$version" >> "$GITHUB_OUTPUT"',
                },
            ],
            **{
                "timeout-minutes": 120,
                "outputs": {"version": "${{ steps.version.outputs.version }}"},
            },
        ),
        "data-contract": _job(
            ["train"],
            [
                *setup,
                {
                    "name": "Check the held-out data against the contract",
                    "run": 'shipyard data validate "$HOLDOUT" --suite "$CONTRACT"',
                },
            ],
            **{"timeout-minutes": 15},
        ),
        "gate": _job(
            ["train", "data-contract"],
            [
                *setup,
                {
                    "name": "Quality gates (metric drops measured against the champion)",
                    "run": f'shipyard gate check "$MODEL" "$VERSION" --data "$HOLDOUT" '
                    f'--target "$LABEL"{trusted}',
                },
            ],
            env=env,
            **{"timeout-minutes": 30},
        ),
        "register": _job(
            ["train", "gate"],
            [
                *setup,
                {
                    "name": "The gated version becomes the challenger",
                    "run": 'shipyard models alias "$MODEL" challenger "$VERSION" '
                    '--reason "gated in ${{ github.workflow }} run ${{ github.run_id }} '
                    '(${{ github.sha }})"',
                },
            ],
            env=env,
            **{"timeout-minutes": 10},
        ),
        "build": _build(context, s, setup),
        "validate": _validate(context, s, setup),
        **_release(context, s, setup),
    }


def _build(context: Context, s: dict[str, str], setup: list[dict[str, Any]]) -> dict[str, Any]:
    repository = s["image_repository"] or (
        "ghcr.io/${{ github.repository_owner }}/shipyard-" + context.facts.app
    )
    return _job(
        ["train", "register"],
        [
            *setup,
            {
                "name": "Render the image's build context for the pinned version",
                # shipyard from the index the training environment installed it from (the
                # render's default is a wheel built from shipyard's source)
                "run": 'shipyard deploy render "models:/$MODEL/$VERSION" --target docker '
                '--out build/docker --set "shipyard_requirement=shipyard==$(python -c '
                "'import shipyard; print(shipyard.__version__)')\"",
            },
            {
                "name": "Image repository (lower case)",
                "id": "repository",
                "run": 'echo "name=${REPOSITORY,,}" >> "$GITHUB_OUTPUT"',
                "env": {"REPOSITORY": repository},
            },
            {"uses": uses("docker/setup-buildx-action")},
            {
                "uses": uses("docker/login-action"),
                "with": {
                    "registry": repository.split("/", 1)[0],
                    "username": "${{ github.actor }}",
                    "password": "${{ secrets.GITHUB_TOKEN }}",
                },
            },
            {
                "name": "Build and push",
                "id": "build",
                "uses": uses("docker/build-push-action"),
                "with": {
                    "context": "build/docker",
                    "push": True,
                    "tags": "${{ steps.repository.outputs.name }}:v" + VERSION,
                },
            },
        ],
        env={"VERSION": VERSION},
        permissions={"contents": "read", "packages": "write"},
        outputs={"image": "${{ steps.repository.outputs.name }}@${{ steps.build.outputs.digest }}"},
        **{"timeout-minutes": 60},
    )


def _validate(context: Context, s: dict[str, str], setup: list[dict[str, Any]]) -> dict[str, Any]:
    render = (
        'shipyard deploy render "models:/$MODEL/$VERSION" --target k8s --out deploy/k8s '
        '--image "$IMAGE" --namespace "$NAMESPACE"'
    )
    return _job(
        ["train", "build"],
        [
            *setup,
            {"name": "Render the manifests for the version and the image", "run": render},
            {"name": "Render again: the same files, or fail", "run": f"{render} --check"},
            {
                "uses": uses("actions/upload-artifact"),
                "with": {"name": "manifests", "path": "deploy/k8s", "if-no-files-found": "error"},
            },
        ],
        env={
            "VERSION": VERSION,
            "IMAGE": "${{ needs.build.outputs.image }}",
            "NAMESPACE": s["staging_namespace"],
        },
        **{"timeout-minutes": 15},
    )


# waits for the rollout controller's verdict on the canary step; rolls back on a regression
_WAIT_FOR_VERDICT = (
    "deadline=$((SECONDS + 3600))\n"
    "while :; do\n"
    '  action="$(shipyard deploy status "$ENDPOINT" --json | jq -r '
    '\'.would_decide.action // "none"\')"\n'
    '  case "$action" in\n'
    '    advance|promote) echo "the canary is healthy ($action)"; break ;;\n'
    "    rollback)\n"
    '      shipyard deploy rollback "$ENDPOINT" --reason "CI: the canary\'s verdict"\n'
    "      exit 1 ;;\n"
    "  esac\n"
    "  if (( SECONDS > deadline )); then\n"
    '    shipyard deploy rollback "$ENDPOINT" --reason "CI: no verdict within an hour"\n'
    "    exit 1\n"
    "  fi\n"
    "  sleep 30\n"
    "done"
)
_REASON = "${{ github.workflow }} run ${{ github.run_id }}"


def _release(
    context: Context, s: dict[str, str], setup: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    return {
        "staging": _staging(context, s),
        "smoke": _smoke(context, s),
        **_production(s, setup),
    }


def _staging(context: Context, s: dict[str, str]) -> dict[str, Any]:
    return _job(
        ["validate"],
        [
            {
                "uses": uses("actions/download-artifact"),
                "with": {"name": "manifests", "path": "deploy/k8s"},
            },
            {
                "name": "Apply to staging and wait for the Deployment",
                "env": {"KUBECONFIG_DATA": "${{ secrets.STAGING_KUBECONFIG }}"},
                "run": 'printf "%s" "$KUBECONFIG_DATA" > "$RUNNER_TEMP/kubeconfig"\n'
                'export KUBECONFIG="$RUNNER_TEMP/kubeconfig"\n'
                "kubectl apply -f deploy/k8s\n"
                f'kubectl -n "$NAMESPACE" rollout status deployment/{context.facts.app} '
                "--timeout=10m",
            },
        ],
        environment="staging",
        env={"NAMESPACE": s["staging_namespace"]},
        **{"timeout-minutes": 20},
    )


def _smoke(context: Context, s: dict[str, str]) -> dict[str, Any]:
    app = context.facts.app
    curl = 'curl --fail-with-body -sS "${auth[@]}"'  # with the API key, when there is one
    return _job(
        ["staging"],
        [
            {"uses": uses("actions/checkout")},
            {
                "name": "Readiness, the served version, one prediction on staging",
                "run": "auth=()\n"
                'if [ -n "$TOKEN" ]; then auth=(-H "Authorization: Bearer $TOKEN"); fi\n'
                'curl --fail-with-body -sS "$STAGING_URL/v2/health/ready"\n'
                f'{curl} "$STAGING_URL/v2/models/{app}/ready"\n'
                f'{curl} "$STAGING_URL/v2/models/{app}"\n'
                'if [ -f "$REQUEST" ]; then\n'
                f"  {curl} -H 'content-type: application/json' "
                f'--data @"$REQUEST" "$STAGING_URL/endpoints/{app}/predict"\n'
                "fi",
                "env": {
                    "STAGING_URL": "${{ secrets.SHIPYARD_STAGING_URL }}",
                    "TOKEN": "${{ secrets.SHIPYARD_STAGING_TOKEN }}",
                    "REQUEST": s["smoke_request"],
                },
            },
        ],
        **{"timeout-minutes": 10},
    )


def _production(s: dict[str, str], setup: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The canary behind the production environment's approval, then the promotion. Canary
    steps end at 100: the controller's verdict on the first step decides."""
    canary = {
        "name": f"Canary: {s['canary_weight']}% of production traffic",
        "run": 'shipyard deploy canary "$ENDPOINT" --model "models:/$MODEL/$VERSION" '
        f'--steps {s["canary_weight"]},100 --reason "{_REASON}"',
    }
    promote = {
        "name": "Promote: the alias the endpoint follows moves to the version",
        "run": f'shipyard deploy promote "$ENDPOINT" --reason "{_REASON}"\n'
        'shipyard deploy status "$ENDPOINT"',
    }
    wait = {"name": "Wait for the rollout controller's verdict", "run": _WAIT_FOR_VERDICT}
    return {
        "canary": _job(
            ["train", "smoke"],
            [*setup, canary, wait],
            environment="production",
            env={"VERSION": VERSION},
            **{"timeout-minutes": 90},
        ),
        "promote": _job(
            ["train", "canary"],
            [*setup, promote],
            env={"VERSION": VERSION},
            **{"timeout-minutes": 10},
        ),
    }
