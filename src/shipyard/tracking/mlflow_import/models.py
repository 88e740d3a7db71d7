"""Registered models, their versions (with description and tags) and aliases from MLflow into
shipyard's registry.

A version's model directory (MLmodel + model.skops, …) is downloaded and registered by
`Registry.register_mlflow_model`, which reads the MLmodel file (a pickle is kept but loads
only when trusted; the summary says so); the new version is tagged with
the MLflow version it came from, in the same transaction, so a second import finds it and
copies nothing. shipyard numbers versions itself (densely): where MLflow deleted a version the
numbers differ, and aliases follow the mapping.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import NotFoundError, ShipyardError

if TYPE_CHECKING:
    from shipyard.registry import Registry
    from shipyard.stores import Stores
    from shipyard.stores.mlflow_records import MlflowModel, MlflowVersion
    from shipyard.tracking.mlflow_import.sources import MlflowSource
    from shipyard.tracking.mlflow_import.summary import ImportSummary, Progress

VERSION_TAG = "shipyard.imported_version"  # the MLflow version number a version came from


class ModelImport:
    def __init__(
        self, stores: Stores, source: MlflowSource, summary: ImportSummary, progress: Progress
    ) -> None:
        from shipyard.registry import Registry

        self.stores = stores
        self.source = source
        self.summary = summary
        self.progress = progress
        self.registry: Registry = Registry(stores)

    def run(self) -> None:
        models = self.source.models()
        self.progress("models", 0, len(models))
        for done, model in enumerate(models, 1):
            try:
                self._model(model)
            except ShipyardError as exc:
                self.summary.skip("models", model.name, exc.message.splitlines()[0])
            self.progress("models", done, len(models))

    def _model(self, model: MlflowModel) -> None:
        if self._exists(model.name):
            self.summary.unchanged["models"] += 1
        else:
            self.registry.create_model(model.name, description=model.description)
            self.summary.copied["models"] += 1
        mapping = self._imported(model.name)
        for version in self.source.versions(model.name):
            if version.version in mapping:
                self.summary.unchanged["model versions"] += 1
                continue
            copied = self._version(version)
            if copied is not None:
                mapping[version.version] = copied
                self.summary.copied["model versions"] += 1
        self._metadata(model)
        self._aliases(model, mapping)

    def _exists(self, name: str) -> bool:
        try:
            self.registry.get_model(name)
        except NotFoundError:
            return False
        return True

    def _imported(self, name: str) -> dict[int, int]:
        """MLflow version → shipyard version, for the versions an import made already."""
        try:
            versions = self.registry.list_versions(name)
        except NotFoundError:
            return {}
        return {
            int(mv.tags[VERSION_TAG]): mv.version
            for mv in versions
            if mv.tags.get(VERSION_TAG, "").isdigit()
        }

    def _version(self, version: MlflowVersion) -> int | None:
        what = f"{version.name}/{version.version}"
        if version.status != "READY":
            self.summary.skip("model versions", what, f"MLflow status {version.status}")
            return None
        tags = dict(version.tags) | {VERSION_TAG: str(version.version)}
        run_id = version.run_id if version.run_id and self._run_exists(version.run_id) else None
        try:
            with tempfile.TemporaryDirectory(prefix="mlflow-model-") as tmp:
                folder = Path(tmp)
                self.source.artifacts.download(self.source.model_location(version), folder)
                caveat = _caveat(folder)
                mv = self.registry.register_mlflow_model(
                    version.name,
                    folder,
                    run_id=run_id,
                    description=version.description,
                    tags=tags,
                )
        except ShipyardError as exc:
            self.summary.skip("model versions", what, exc.message.splitlines()[0])
            return None
        if caveat or mv.flavor == "mlflow":
            why = caveat or "a flavor shipyard does not run: kept for MLflow clients, not served"
            self.summary.note("model versions", f"{what} → {mv.version}", why)
        return int(mv.version)

    def _run_exists(self, run_id: str) -> bool:
        try:
            self.stores.metadata.runs.get_run(run_id)
        except NotFoundError:
            return False
        return True

    def _metadata(self, model: MlflowModel) -> None:
        """The model's description and tags, written only where they differ (no audit noise
        on a second import)."""
        found = self.registry.get_model(model.name)
        if model.description and found.description != model.description:
            self.registry.set_description(model.name, model.description)
            self.summary.copied["model descriptions"] += 1
        for key, value in model.tags.items():
            if found.tags.get(key) != value:
                self.registry.set_model_tag(model.name, key, value)
                self.summary.copied["model tags"] += 1

    def _aliases(self, model: MlflowModel, mapping: dict[int, int]) -> None:
        current = self.registry.get_model(model.name).aliases
        for alias, version in model.aliases.items():
            target = mapping.get(version)
            if target is None:
                self.summary.skip(
                    "aliases", f"{model.name}@{alias}", f"version {version} was not imported"
                )
            elif current.get(alias) == target:
                self.summary.unchanged["aliases"] += 1
            else:
                try:
                    self.registry.set_alias(
                        model.name, alias, target, reason="imported from MLflow"
                    )
                except ShipyardError as exc:
                    self.summary.skip("aliases", f"{model.name}@{alias}", exc.message)
                    continue
                self.summary.copied["aliases"] += 1


def _caveat(folder: Path) -> str | None:
    """What a user must know about a model directory shipyard keeps: a pickle."""
    from shipyard.flavors.mlflow_dir import read_mlmodel

    sk = read_mlmodel(folder)["flavors"].get("sklearn")
    if isinstance(sk, dict) and sk.get("serialization_format") in ("pickle", "cloudpickle"):
        return (
            f"the model is a {sk['serialization_format']} file: it loads only when trusted "
            "(load_model(..., trusted=True))"
        )
    return None
