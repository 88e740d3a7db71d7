"""The render targets: each a module with `SETTINGS` (its `--set` keys, key -> help) and
`render(context) -> dict[path, text]`, imported only when chosen."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType

from shipyard.deploy.facts import Facts, VersionFacts, kube_name
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

    def image(self, version: VersionFacts | None = None) -> str:
        """The serving image of a version (default: the subject's): `--image` for the
        subject's, `--set candidate_image=` for a rollout's candidate, else a local tag."""
        version = version or self.facts.model
        if version == self.facts.model and self.options.image:
            return self.options.image
        candidate = self.options.settings.get("candidate_image")
        if version != self.facts.model and candidate:
            return candidate
        return f"shipyard-{kube_name(version.name)}:v{version.version}"

    def serve_args(self, version: VersionFacts | None = None) -> list[str]:
        """The arguments of the image's `shipyard` entry point that serve a version: from the
        bundle baked into the image (`/opt/model`), or pulled by its pinned URI from the
        stores the environment names; either way refused unless its manifest has the
        recorded digest (`--digest`) and its ONNX conversion, if any, the recorded one
        (`--onnx-digest`: the manifest's digest does not cover it)."""
        version = version or self.facts.model
        source = BUNDLE_DIR if self.options.model_source == "bake" else version.uri
        args = ["serve", source, "--name", self.facts.app]
        args += ["--host", "0.0.0.0", "--port", str(self.options.port)]
        args += ["--drain", number_text(self.options.drain_seconds)]
        args += ["--digest", f"sha256:{version.digest}"]
        if version.onnx_digest:
            args += ["--onnx-digest", f"sha256:{version.onnx_digest}"]
        if version.needs_trust:
            args.append("--trusted")
        return args

    @property
    def live_path(self) -> str:
        return "/v2/health/live"

    @property
    def ready_path(self) -> str:
        """The V2 ready route of the served model: 200 once it is loaded and warmed up."""
        return f"/v2/models/{self.facts.app}/ready"


# where the docker target puts a baked model's bundle in the image
BUNDLE_DIR = "/opt/model"


def number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def target_module(name: str) -> ModuleType:
    """The module of a target, with an error listing the targets for an unknown name."""
    if name not in TARGETS:
        raise InvalidArgumentError(
            f"unknown target '{name}'; targets: {', '.join(TARGETS)}", field="target"
        )
    return importlib.import_module(TARGETS[name][0])
