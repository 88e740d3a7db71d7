"""The render targets: each a module with `SETTINGS` (its `--set` keys, key -> help) and
`render(context) -> dict[path, text]`, imported only when chosen."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType

from shipyard.deploy.facts import Facts, VersionFacts
from shipyard.deploy.options import RenderOptions
from shipyard.errors import InvalidArgumentError

# name -> (module, one line for --help)
TARGETS: dict[str, tuple[str, str]] = {
    "docker": ("shipyard.deploy.targets.docker", "multi-stage Dockerfile and .dockerignore"),
    "k8s": ("shipyard.deploy.targets.k8s", "Deployment, Service, HPA, PDB, ServiceMonitor…"),
    "kserve": ("shipyard.deploy.targets.kserve", "a KServe InferenceService (V2 protocol)"),
    "argo": ("shipyard.deploy.targets.argo", "an Argo Rollouts canary with AnalysisTemplates"),
    "helm": ("shipyard.deploy.targets.helm", "a Helm chart with values.schema.json"),
    "compose": ("shipyard.deploy.targets.compose", "server, PostgreSQL, Redis, Prometheus…"),
    "monitoring": ("shipyard.deploy.targets.monitoring", "Prometheus rules, Grafana dashboard"),
    "ci": ("shipyard.deploy.targets.ci", "a GitHub Actions pipeline for your repository"),
    "edge": ("shipyard.deploy.targets.edge", "ONNX bundle with a stdlib predictor"),
}


@dataclass(frozen=True)
class Context:
    """What a target renders from: the facts, the options, and a reader of a version's
    files (for the targets that carry the model: docker with a baked model, edge)."""

    facts: Facts
    options: RenderOptions
    read_files: Callable[[VersionFacts, bool], Mapping[str, bytes]]
    # (version, onnx_only) -> relative path -> bytes, every file verified against its digest

    def image(self) -> str:
        """The serving image the manifests run."""
        model = self.facts.model
        return self.options.image or f"shipyard-{self.facts.app}:v{model.version}"


def target_module(name: str) -> ModuleType:
    """The module of a target, with an error listing the targets for an unknown name."""
    if name not in TARGETS:
        raise InvalidArgumentError(
            f"unknown target '{name}'; targets: {', '.join(TARGETS)}", field="target"
        )
    return importlib.import_module(TARGETS[name][0])
