"""Deployment assets rendered from what shipyard knows about a model version or an endpoint:
Dockerfile, Kubernetes, KServe, Argo Rollouts, Helm, Compose, Prometheus and Grafana, a CI
pipeline and an edge bundle.

    deploy = Deploy(stores)
    rendered = deploy.render("k8s", model_uri="models:/churn@champion", options=RenderOptions())
    written = deploy.write(rendered.files, Path("deploy/k8s"), what="k8s models:/churn/3")
    print(written.diff)

A render is a pure function of the facts (read once, the alias pinned to its version) and the
options: two renders of the same inputs are byte-identical, and writing it again over an
earlier render shows the diff. Nothing is written when a render fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.deploy.facts import Facts, VersionFacts, gather_endpoint, gather_model
from shipyard.deploy.options import RenderOptions, parse_settings
from shipyard.deploy.output import Written, diff, write
from shipyard.deploy.targets import TARGETS, Context, target_module
from shipyard.errors import InvalidArgumentError


@dataclass(frozen=True)
class Rendered:
    """One target's files for one subject."""

    target: str
    facts: Facts
    files: dict[str, str | bytes]

    @property
    def subject(self) -> str:
        endpoint = self.facts.endpoint
        return f"endpoint {endpoint.name}" if endpoint else self.facts.model.uri


if TYPE_CHECKING:
    from shipyard.stores import Stores

__all__ = ["TARGETS", "Deploy", "Facts", "RenderOptions", "Rendered", "Written", "parse_settings"]


class Deploy:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def facts(self, *, model_uri: str | None = None, endpoint: str | None = None) -> Facts:
        """The facts of a model URI (its alias resolved and pinned) or of a stored endpoint."""
        if (model_uri is None) == (endpoint is None):
            raise InvalidArgumentError(
                "give a model URI or --endpoint NAME (one of the two)", field="model_uri"
            )
        if endpoint is not None:
            return gather_endpoint(self.stores, endpoint)
        assert model_uri is not None
        return gather_model(self.stores, model_uri)

    def render(
        self,
        target: str,
        *,
        model_uri: str | None = None,
        endpoint: str | None = None,
        options: RenderOptions | None = None,
    ) -> Rendered:
        """The files of one target, in memory (relative path -> text or bytes)."""
        if target not in TARGETS:
            target_module(target)  # the error listing the targets
        facts = self.facts(model_uri=model_uri, endpoint=endpoint)
        options = options or RenderOptions()
        _check_trust(facts, options)
        module = target_module(target)
        context = Context(facts, options, self._read_files)
        files: dict[str, str | bytes] = module.render(context)
        return Rendered(target, facts, dict(sorted(files.items())))

    @staticmethod
    def settings(target: str) -> Mapping[str, str]:
        """The `--set` keys a target knows (key -> help)."""
        known: Mapping[str, str] = getattr(target_module(target), "SETTINGS", {})
        return known

    @staticmethod
    def write(files: Mapping[str, str | bytes], out: Path, *, what: str) -> Written:
        """Write a render into a folder: changed files only, each through a temporary name."""
        return write(out, files, what=what)

    @staticmethod
    def diff(files: Mapping[str, str | bytes], out: Path) -> str:
        """What writing the render into `out` would change, as a unified diff."""
        return diff(out, files)

    def _read_files(self, version: VersionFacts, onnx_only: bool) -> dict[str, bytes]:
        """A version's files, each verified against its digest: `manifest.json` and the files
        it lists, or with `onnx_only` just its ONNX file as `model.onnx`."""
        from shipyard.flavors import read_manifest

        artifacts = self.stores.artifacts
        manifest = read_manifest(artifacts, version.digest)
        if onnx_only:
            digest = version.onnx_digest or manifest["files"].get("model.onnx")
            if digest is None:
                raise InvalidArgumentError(
                    f"{version.uri} has no verified ONNX conversion (its ONNX status is "
                    f"'{version.onnx_status}'); this target runs the model on onnxruntime "
                    "alone: register a version that converts (shipyard models show "
                    f"{version.name} {version.version} says why this one did not)",
                    field="model_uri",
                )
            return {"model.onnx": artifacts.get_bytes(digest)}
        files = {"manifest.json": artifacts.get_bytes(version.digest)}
        for path, digest in sorted(manifest["files"].items()):
            files[path] = artifacts.get_bytes(digest)
        return files


def _check_trust(facts: Facts, options: RenderOptions) -> None:
    """A server rendered for a model that runs its own code when loaded (a pickle, a Python
    model) is started with --trusted: the person rendering says so, as with `serve`."""
    endpoint = facts.endpoint
    versions = [facts.model, *([endpoint.candidate] if endpoint and endpoint.candidate else [])]
    for version in versions:
        if version.needs_trust and not options.trusted:
            raise InvalidArgumentError(
                f"{version.uri} runs its own code when loaded ({version.flavor}, pickle or "
                "Python); render with --trusted if you trust it: the rendered server starts "
                "with --trusted",
                field="trusted",
            )
