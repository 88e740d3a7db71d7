"""Validating rendered Kubernetes manifests offline: the core kinds with
`kubernetes-validate --strict`, custom resources with `check-jsonschema` against the
openAPIV3Schema of a CRD vendored under tests/deploy/schemas/ (read at test time)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import tool

SCHEMAS = Path(__file__).parent / "schemas"
# the oldest and the newest Kubernetes the manifests must pass
K8S_VERSIONS = ("1.30.0", "1.37.0")


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def validate_core(tmp_path: Path, text: str) -> None:
    """Every document of `text` passes kubernetes-validate --strict (unknown fields refused)."""
    validator = tool("kubernetes-validate")
    path = tmp_path / "core.yaml"
    path.write_text(text)
    for version in K8S_VERSIONS:
        run = subprocess.run(
            [validator, "--strict", "-k", version, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, f"k8s {version}: {run.stdout}{run.stderr}"
        assert "INFO" in run.stdout and "ERROR" not in run.stdout, run.stdout


def crd_schema(crd_file: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of one served version of a vendored CRD, made strict the way the
    API server's strict field validation is: an object that lists its properties and does not
    preserve unknown fields refuses any other property."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are up to 2 MB
    crd = yaml.load((SCHEMAS / crd_file).read_text(), Loader=loader)
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema: dict[str, Any] = found["schema"]["openAPIV3Schema"]
    _strict(schema)
    return schema


def _strict(node: Any) -> None:
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


@functools.cache
def _schema_text(crd_file: str, version: str) -> str:
    """A CRD's strict schema as JSON, parsed once per test process (InferenceService's CRD
    is 2 MB of YAML: seconds to parse)."""
    return json.dumps(crd_schema(crd_file, version))


def validate_custom(tmp_path: Path, doc: dict[str, Any], crd_file: str) -> None:
    """One custom resource against its CRD's schema (the version its apiVersion names)."""
    checker = tool("check-jsonschema")
    version = doc["apiVersion"].split("/")[-1]
    schema = tmp_path / f"{crd_file}.{version}.schema.json"
    if not schema.exists():
        schema.write_text(_schema_text(crd_file, version))
    instance = tmp_path / f"{doc['kind']}-{doc['metadata']['name']}.json"
    instance.write_text(json.dumps(doc))
    run = subprocess.run(
        [checker, "--schemafile", str(schema), str(instance)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{doc['kind']}: {run.stdout}{run.stderr}"


def render(stores: Any, target: str, **kwargs: Any) -> dict[str, str | bytes]:
    from shipyard.deploy import Deploy, RenderOptions

    options = kwargs.pop("options", None) or RenderOptions()
    return Deploy(stores).render(target, options=options, **kwargs).files
