"""Importing a bundle (`registry.bundle`) into a registry: the version it holds becomes a new
version of the same model name in these stores, with the same flavor, signature, manifest
and ONNX conversion. What the compose stack's `model` one-shot runs
(`shipyard models import /model --digest sha256:…`).

    mv, created = import_bundle(registry, Path("churn-stack/model"), digest="sha256:<hex>")

Every file is verified as `load_bundle` verifies it (the manifest against bundle.json's digest
and the pinned one, each listed file and the conversion against theirs; with `--digest` the
conversion only when `--onnx-digest` pins it too, else it is not imported) before anything is
stored; each file is then stored content-addressed and its stored digest checked again, and
only then is the version recorded (with an audit event `version.import`), so a bundle that is
refused leaves no version behind. A bundle whose manifest a version of that name already has
is that version: nothing is stored or recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import IntegrityError, InvalidArgumentError, NotFoundError
from shipyard.registry.bundle import BUNDLE_FILE, CONVERSION_FILE, BundleInfo, read_bundle

if TYPE_CHECKING:
    from shipyard.registry import Registry
    from shipyard.stores.records import ModelVersionRecord


def import_bundle(
    registry: Registry,
    folder: Path,
    *,
    digest: str | None = None,
    onnx_digest: str | None = None,
) -> tuple[ModelVersionRecord, bool]:
    """The version of `registry` that holds the bundle in `folder`, and whether this call
    recorded it (False: a version of that name already had its manifest). With `digest`
    pinned, the bundle's conversion is imported only when `onnx_digest` pins it too."""
    from shipyard.registry import _check_name

    _check_folder(folder)
    # every file verified, nothing stored; an unpinned conversion is left out
    info, paths = read_bundle(folder, digest=digest, onnx_digest=onnx_digest)
    _check_name(info.name)
    known = _version_with(registry, info.name, info.digest)
    if known is not None:
        return known, False
    manifest = json.loads(paths[info.digest].read_bytes())
    flavor, signature = _flavor_and_signature(manifest, folder)
    for file_digest, path in sorted(paths.items()):
        stored, _ = registry.stores.artifacts.put_file(path)
        if stored != file_digest:  # changed between the check and the copy
            raise IntegrityError(
                f"{path} changed while it was imported (sha256:{stored[:12]}…, not "
                f"sha256:{file_digest[:12]}…); nothing was recorded: import it again"
            )
    status, onnx_digest, detail = _conversion(manifest, info, paths)
    mv = registry.stores.metadata.models.create_version(
        info.name,
        actor=registry.stores.actor,
        flavor=flavor,
        artifact_digest=info.digest,
        signature=signature,
        run_id=None,
        description=f"imported from the bundle of {info.uri}",
        onnx_status=status,
        onnx_digest=onnx_digest,
        onnx_detail=detail,
        event=(
            "version.import",
            {"bundle": info.uri, "artifact_digest": info.digest, "onnx_digest": onnx_digest},
        ),
    )
    return mv, True


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise InvalidArgumentError(
            f"no folder {folder}: give the model/ folder of a render (`shipyard deploy render "
            "MODEL_URI --target docker` or `--target compose`)",
            field="folder",
        )
    if not (folder / BUNDLE_FILE).is_file():
        raise InvalidArgumentError(
            f"{folder} holds no {BUNDLE_FILE}, so it is not a shipyard bundle: give the model/ "
            "folder of `shipyard deploy render MODEL_URI --target docker` (or compose)",
            field="folder",
        )


def _version_with(registry: Registry, name: str, digest: str) -> ModelVersionRecord | None:
    """The first version of `name` whose manifest has `digest`, if any."""
    try:
        versions = registry.list_versions(name)
    except NotFoundError:
        return None
    return next((v for v in versions if v.artifact_digest == digest), None)


def _flavor_and_signature(manifest: dict[str, Any], folder: Path) -> tuple[str, dict[str, Any]]:
    """The version's flavor and signature, as its (verified) manifest records them."""
    from shipyard.flavors.signature import Signature

    try:
        flavor = str(manifest["flavor"])
        signature = Signature.from_dict(manifest["signature"]).to_dict()
    except (KeyError, TypeError, ValueError, InvalidArgumentError) as exc:
        raise InvalidArgumentError(
            f"{folder}/manifest.json records no flavor or signature ({exc}): it is not the "
            "manifest of a shipyard model version",
            field="folder",
        ) from exc
    return flavor, signature


def _conversion(
    manifest: dict[str, Any], info: BundleInfo, paths: dict[str, Path]
) -> tuple[str, str | None, str | None]:
    """(onnx status, conversion digest, detail): a conversion in the manifest or beside it
    in the bundle is `ok` (served by onnxruntime); a bundle without one is `off`
    (`shipyard models convert` makes one)."""
    if CONVERSION_FILE in manifest["files"]:
        return "ok", None, None
    if info.onnx_digest is None:
        return "off", None, None
    detail = None
    try:
        from shipyard.flavors.tree_onnx import parity_of

        detail = parity_of(paths[info.onnx_digest].read_bytes())
    except ImportError:  # the parity note is a nicety: onnx itself may be absent here
        pass
    return "ok", info.onnx_digest, detail
