"""A registered version as an MLflow model directory, for MLflow clients' `load_model`.

A version registered from an MLflow model keeps that directory (`flavors.mlflow_dir`) and
hands it back as it came. A version shipyard saved itself is described in MLflow's terms
where MLflow has the same format: a scikit-learn model in skops (MLflow's `sklearn` flavor,
`serialization_format: skops`) or an ONNX model (MLflow's `onnx` flavor). The MLmodel file is
written from the manifest; the model file is the very file shipyard verified.

    files = VersionFiles(stores)
    files.files("churn/3")              # [ArtifactRecord("MLmodel", …), ("model.skops", …)]
    files.download_uri("churn", 3)      # mlflow-artifacts:/registry/churn/3
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.stores.artifacts import clean_path

# the records this capability returns (the edges import them from here)
from shipyard.stores.records import ArtifactRecord, ModelVersionRecord, RegisteredModelRecord

if TYPE_CHECKING:
    from shipyard.stores import Stores


def download_uri(name: str, version: int) -> str:
    return f"mlflow-artifacts:/registry/{name}/{version}"


class VersionFiles:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def _version(self, owner: str) -> ModelVersionRecord:
        name, _, number = owner.rpartition("/")
        if not number.isdigit():
            raise InvalidArgumentError(f"'{owner}' is not <name>/<version>", field="path")
        return self.stores.metadata.models.get_version(name, int(number))

    def files(self, owner: str) -> list[ArtifactRecord]:
        """The version's MLflow directory: every file with its digest and size."""
        from shipyard.flavors import read_manifest
        from shipyard.flavors.mlflow_dir import directory_files

        mv = self._version(owner)
        manifest = read_manifest(self.stores.artifacts, mv.artifact_digest)
        kept = directory_files(manifest)
        if kept:
            sizes = (manifest.get("mlflow") or {}).get("sizes", {})
            return [ArtifactRecord(p, d, int(sizes.get(p, 0))) for p, d in sorted(kept.items())]
        return self._described(mv, manifest)

    def file(self, owner: str, path: str) -> tuple[ArtifactRecord, Path]:
        path = clean_path(path)
        for record in self.files(owner):
            if record.path == path:
                return record, self.stores.artifacts.local_path(record.digest)
        raise NotFoundError(f"model version {owner} has no file {path!r}")

    def _described(self, mv: ModelVersionRecord, manifest: dict[str, Any]) -> list[ArtifactRecord]:
        """MLmodel, the model file and requirements.txt for a version shipyard saved."""
        import yaml

        files: dict[str, str] = manifest["files"]
        flavors, model_file = self._flavors(mv, manifest)
        doc = {
            "artifact_path": "model",
            "flavors": flavors,
            "mlflow_version": "3.0.0",
            "model_uuid": mv.artifact_digest[:32],
            "run_id": mv.run_id,
            "utc_time_created": _utc(mv.created_at),
            "signature": _signature(manifest),
        }
        if doc["run_id"] is None:
            del doc["run_id"]
        mlmodel = yaml.safe_dump(doc, sort_keys=True).encode()
        records = [ArtifactRecord("MLmodel", *self.stores.artifacts.put_bytes(mlmodel))]
        for name in (model_file, "requirements.txt"):
            if name in files:
                path = self.stores.artifacts.local_path(files[name])
                records.append(ArtifactRecord(name, files[name], path.stat().st_size))
        return records

    def _flavors(
        self, mv: ModelVersionRecord, manifest: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        files = manifest["files"]
        env = manifest.get("environment") or {}
        python = str(env.get("python") or manifest.get("python") or "")
        packages = env.get("packages") or {}
        if mv.flavor == "onnx" and "model.onnx" in files:
            return {
                "onnx": {"data": "model.onnx", "onnx_version": packages.get("onnx", "")},
                "python_function": {
                    "loader_module": "mlflow.onnx",
                    "data": "model.onnx",
                    "python_version": python,
                },
            }, "model.onnx"
        skops = manifest.get("serialization") == "skops" and "model.skops" in files
        if mv.flavor == "sklearn" and skops and not manifest.get("native_steps"):
            path = self.stores.artifacts.local_path(files["model.skops"])
            return {
                "sklearn": {
                    "pickled_model": "model.skops",
                    "serialization_format": "skops",
                    "sklearn_version": packages.get("scikit-learn", ""),
                    "skops_trusted_types": _reviewed_types(path),
                    "code": None,
                },
                "python_function": {
                    "loader_module": "mlflow.sklearn",
                    "model_path": "model.skops",
                    "predict_fn": "predict",
                    "python_version": python,
                },
            }, "model.skops"
        raise NotFoundError(
            f"models:/{mv.name}/{mv.version} ({mv.flavor}, saved by shipyard) has no MLflow "
            "form: MLflow clients load scikit-learn models saved with skops and ONNX models; "
            f"load this one with shipyard.load_model('models:/{mv.name}/{mv.version}')"
        )


def _reviewed_types(path: Path) -> list[str]:
    """The skops file's types beyond skops' defaults that shipyard reviewed (what it loads
    untrusted): MLflow's loader then trusts the same ones and no more."""
    import skops.io as sio

    from shipyard.flavors import skops_trust

    reviewed, _ = skops_trust.split_types(sio.get_untrusted_types(file=path))
    return sorted(reviewed)


def _signature(manifest: dict[str, Any]) -> dict[str, Any] | None:
    signature = manifest.get("signature") or {}
    if signature.get("kind") != "columns":
        return None
    inputs = [
        {"type": c["type"], "name": c["name"], "required": not c.get("missing", False)}
        for c in signature.get("inputs", [])
    ]
    return {"inputs": json.dumps(inputs), "outputs": None, "params": None}


def _utc(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


__all__ = ["ArtifactRecord", "ModelVersionRecord", "RegisteredModelRecord", "VersionFiles"]
