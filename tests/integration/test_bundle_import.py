"""`Registry.import_bundle`, on SQLite and PostgreSQL: a bundle packed from another registry
becomes a version of these stores (its number theirs) with the same manifest, flavor,
signature and ONNX conversion; importing it again changes nothing; a changed byte, a wrong
pinned digest or a folder that is no bundle is refused before anything is stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.config import Settings
from shipyard.errors import IntegrityError, InvalidArgumentError
from shipyard.registry import Registry
from shipyard.registry.bundle import pack
from shipyard.registry.bundle_import import import_bundle
from shipyard.stores import open_stores


@pytest.fixture
def source(tmp_path: Path, logreg: Any, breast_cancer: Any) -> Registry:
    """Another registry (SQLite in its own home): churn versions 1 and 2, the second with a
    verified ONNX conversion made after registering."""
    X, _ = breast_cancer
    registry = Registry(open_stores(Settings(home=tmp_path / "source", db_url=None)))
    registry.register("churn", logreg, input_example=X[:5], onnx=False)
    registry.register("churn", logreg, input_example=X[:5])
    Registry.wait_for_conversions(timeout=120)
    assert registry.get_version("churn", 2).onnx_status == "ok"
    return registry


def write_bundle(registry: Registry, version: int, folder: Path) -> Path:
    """The version's bundle as the docker and compose targets write it (`bundle.pack`)."""
    mv = registry.get_version("churn", version)
    artifacts = registry.stores.artifacts
    manifest = artifacts.get_bytes(mv.artifact_digest)
    files = {"manifest.json": manifest}
    for path, digest in json.loads(manifest)["files"].items():
        files[path] = artifacts.get_bytes(digest)
    if mv.onnx_digest:
        files["model.onnx"] = artifacts.get_bytes(mv.onnx_digest)
    packed = pack(
        name=mv.name,
        version=mv.version,
        digest=mv.artifact_digest,
        onnx_digest=mv.onnx_digest,
        files=files,
    )
    for path, data in packed.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    return folder


@pytest.fixture
def bundle(source: Registry, tmp_path: Path) -> Path:
    return write_bundle(source, 2, tmp_path / "model")


def stored(stores: Any) -> list[str]:
    return sorted(str(p) for p in (stores.artifacts.root / "sha256").rglob("*") if p.is_file())


def test_the_bundle_becomes_a_version_of_these_stores(
    stores: Any, source: Registry, bundle: Path, breast_cancer: Any
) -> None:
    registry = Registry(stores)
    doc = json.loads((bundle / "bundle.json").read_text())
    mv = registry.import_bundle(
        bundle, digest=f"sha256:{doc['digest']}", onnx_digest=f"sha256:{doc['onnx_digest']}"
    )
    original = source.get_version("churn", 2)
    assert (mv.name, mv.version) == ("churn", 1)  # the registry numbers it, not the bundle
    assert mv.artifact_digest == original.artifact_digest
    assert (mv.flavor, mv.signature) == (original.flavor, original.signature)
    assert (mv.onnx_status, mv.onnx_digest) == ("ok", original.onnx_digest)
    assert mv.run_id is None and "models:/churn/2" in mv.description
    events = [e for e in registry.audit("churn") if e.action == "version.import"]
    assert len(events) == 1 and events[0].subject == "churn/1"
    model = registry.load("models:/churn/1")
    assert model.backend == "onnxruntime"  # the fast path: the conversion came along
    X, _ = breast_cancer
    expected = source.load("models:/churn/2").predict(X[:20])
    assert np.array_equal(model.predict(X[:20]), expected)


def test_a_conversion_is_imported_only_when_its_digest_is_pinned_too(
    stores: Any, source: Registry, bundle: Path, breast_cancer: Any, logreg: Any
) -> None:
    """The manifest's digest does not cover model.onnx: another model's conversion (with
    bundle.json saying so) is not imported under the pinned manifest."""
    from sklearn.base import clone

    X, y = breast_cancer
    source.register("other", clone(logreg).fit(X, 1 - y), input_example=X[:5])
    Registry.wait_for_conversions(timeout=120)
    other = source.get_version("other", 1)
    assert other.onnx_digest
    doc = json.loads((bundle / "bundle.json").read_text())
    digest, original = f"sha256:{doc['digest']}", f"sha256:{doc['onnx_digest']}"
    (bundle / "model.onnx").write_bytes(source.stores.artifacts.get_bytes(other.onnx_digest))
    (bundle / "bundle.json").write_text(json.dumps({**doc, "onnx_digest": other.onnx_digest}))
    registry = Registry(stores)
    with pytest.raises(IntegrityError, match="ONNX conversion"):
        registry.import_bundle(bundle, digest=digest, onnx_digest=original)
    assert registry.list_models() == [] and stored(stores) == []
    mv = registry.import_bundle(bundle, digest=digest)  # nothing pins it: left behind
    assert (mv.onnx_status, mv.onnx_digest) == ("off", None)
    assert other.onnx_digest not in "".join(stored(stores))
    model = registry.load(f"models:/churn/{mv.version}")
    assert model.backend == "python"
    expected = source.load("models:/churn/2", backend="python").predict(X[:20])
    assert np.array_equal(model.predict(X[:20]), expected)


def test_importing_again_stores_and_records_nothing(
    stores: Any, bundle: Path, source: Registry
) -> None:
    registry = Registry(stores)
    first, created = import_bundle(registry, bundle)
    assert created
    files, audit = stored(stores), registry.audit("churn")
    again, created = import_bundle(registry, bundle)
    assert not created and again == first
    assert registry.import_bundle(bundle) == first
    assert [v.version for v in registry.list_versions("churn")] == [1]
    assert stored(stores) == files and registry.audit("churn") == audit
    # another version of the same model is another version here, numbered next
    other = registry.import_bundle(write_bundle(source, 1, bundle.parent / "v1"))
    assert other.version == 2 and other.onnx_status == "off"  # it travelled without one
    assert registry.load("models:/churn/2").backend != "onnxruntime"


def test_a_name_in_use_gets_the_next_number(
    stores: Any, bundle: Path, forest: Any, breast_cancer: Any
) -> None:
    X, _ = breast_cancer
    registry = Registry(stores)
    registry.register("churn", forest, input_example=X[:5], onnx=False)
    assert registry.import_bundle(bundle).version == 2


def _tamper_listed(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    path = folder / sorted(manifest["files"])[0]
    path.write_bytes(path.read_bytes() + b"\0")


def _tamper_conversion(folder: Path) -> None:
    (folder / "model.onnx").write_bytes((folder / "model.onnx").read_bytes()[:-1])


def _point_elsewhere(folder: Path) -> None:
    doc = json.loads((folder / "bundle.json").read_text())
    doc["digest"] = "0" * 64
    (folder / "bundle.json").write_text(json.dumps(doc))


def _drop_manifest(folder: Path) -> None:
    (folder / "manifest.json").unlink()


@pytest.mark.parametrize(
    ("spoil", "digest", "error", "message"),
    [
        (_tamper_listed, None, IntegrityError, "does not match its digest"),
        (_tamper_conversion, None, IntegrityError, "model.onnx does not match its digest"),
        (_point_elsewhere, None, IntegrityError, "manifest.json does not match its digest"),
        (_drop_manifest, None, IntegrityError, "lacks manifest.json"),
        (None, "sha256:" + "ab" * 32, IntegrityError, "not the pinned sha256:abab"),
        (None, "nonsense", InvalidArgumentError, "is not a sha256 digest"),
    ],
)
def test_a_spoilt_bundle_is_refused_and_nothing_is_stored(
    stores: Any, bundle: Path, spoil: Any, digest: str | None, error: type, message: str
) -> None:
    if spoil is not None:
        spoil(bundle)
    registry = Registry(stores)
    with pytest.raises(error, match=message):
        registry.import_bundle(bundle, digest=digest)
    assert registry.list_models() == [] and stored(stores) == []


@pytest.mark.parametrize("what", ["missing", "empty", "file", "bad description"])
def test_a_folder_that_is_no_bundle_is_refused(stores: Any, tmp_path: Path, what: str) -> None:
    folder = tmp_path / "model"
    if what == "empty":
        folder.mkdir()
    elif what == "file":
        folder.write_text("not a folder")
    elif what == "bad description":
        folder.mkdir()
        (folder / "bundle.json").write_text('{"format": 1, "name": "churn"}')
    registry = Registry(stores)
    with pytest.raises(InvalidArgumentError) as info:
        registry.import_bundle(folder)
    assert info.value.details["field"] in ("folder", "model_uri")
    assert registry.list_models() == [] and stored(stores) == []


def test_a_bundle_of_a_name_the_registry_refuses(stores: Any, bundle: Path) -> None:
    doc = json.loads((bundle / "bundle.json").read_text())
    doc["name"] = "no/slashes"
    (bundle / "bundle.json").write_text(json.dumps(doc))
    registry = Registry(stores)
    with pytest.raises(InvalidArgumentError, match="model name 'no/slashes' is not valid"):
        registry.import_bundle(bundle)
    assert registry.list_models() == [] and stored(stores) == []


def test_the_endpoint_of_an_import_is_written_only_when_it_changes(
    stores: Any, bundle: Path, source: Registry
) -> None:
    """`deploy create --replace --if-changed`, as the compose stack's one-shot runs it after
    each import: an endpoint that serves the URI already (a rollout of it included) stays."""
    from shipyard.rollout import Deployments

    registry, deployments = Registry(stores), Deployments(stores)
    registry.set_alias("churn", "served", registry.import_bundle(bundle).version)
    ensure = {"replace": True, "if_changed": True}
    first = deployments.create("churn", "churn@served", **ensure)
    assert deployments.create("churn", "churn@served", **ensure) == first
    other = registry.import_bundle(write_bundle(source, 1, bundle.parent / "v1"))
    deployments.canary("churn", f"models:/churn/{other.version}", steps=[5, 50, 100])
    events = len(registry.stores.metadata.audit.list(limit=1000))
    kept = deployments.create("churn", "churn@served", **ensure)
    assert kept.policy == "canary" and kept.generation == deployments.get("churn").generation
    assert len(registry.stores.metadata.audit.list(limit=1000)) == events
    moved = deployments.create("churn", "models:/churn/1", **ensure)  # another URI: replaced
    assert (moved.model_uri, moved.policy) == ("models:/churn/1", "single")


def test_the_cli_imports_once_and_sets_the_alias(stores: Any, bundle: Path) -> None:
    """`shipyard models import DIR --alias served --json`, the real CLI on these stores."""
    import os
    import subprocess

    from tests.helpers import SHIPYARD

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*SHIPYARD, "models", "import", str(bundle), *args]
        return subprocess.run(
            command, capture_output=True, text=True, env=dict(os.environ), timeout=120
        )

    first = run("--alias", "served", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert (doc["version"], doc["created"], doc["alias"]) == (1, True, "served")
    registry = Registry(stores)
    assert registry.get_model("churn").aliases == {"served": 1}
    audit = registry.audit("churn")
    again = run("--alias", "served")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("churn: already registered as version 1 (churn@served)")
    assert registry.audit("churn") == audit  # the alias was not set a second time
    wrong = run("--digest", "sha256:" + "0" * 64)
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "not the pinned sha256:0000" in wrong.stderr
