"""A model bundle: one version's files in a folder, served without the stores that registered
it (`shipyard serve /opt/model`). The docker target bakes one into an image.

    model/
      bundle.json     {"format": 1, "name": "churn", "version": 3, "digest": "<sha256>", ...}
      manifest.json   the version's manifest, byte for byte: its sha256 is the version's digest
      model.skops …   the files the manifest lists, under the names it gives them
      model.onnx      the verified ONNX conversion the registry made after registering, if any

    files = pack(name="churn", version=3, digest=..., onnx_digest=..., files=version_files)
    model = load_bundle(Path("/opt/model"), digest="sha256:<hex>")  # verified, then loaded

Loading checks manifest.json against the digest bundle.json records and against the one the
caller pins (`--digest`), and every other file against the digest the manifest (or
bundle.json, for the conversion) names, before anything is deserialized: a changed byte
refuses the whole bundle. The manifest's digest covers the files it lists, not model.onnx (a
conversion made after registering, named only by bundle.json): with a pinned `digest` the
conversion is used only when its digest is pinned too (`--onnx-digest`, refused unless it
matches); otherwise it is ignored and the model is served by the files the manifest lists
(the Python backend), so whatever is loaded is what the pins name. The flavor's own loader
then runs as it does from the stores (`flavors.load_model`: environment check, `trusted`,
ONNX preferred).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import IntegrityError, InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from shipyard.flavors import LoadedModel
    from shipyard.registry import Registry

BUNDLE_FILE = "bundle.json"
MANIFEST_FILE = "manifest.json"
CONVERSION_FILE = "model.onnx"
FORMAT = 1


@dataclass(frozen=True)
class BundleInfo:
    """What bundle.json says: the version a bundle holds and its manifest's digest."""

    name: str
    version: int
    digest: str  # sha256 hex of manifest.json
    onnx_digest: str | None  # sha256 hex of model.onnx, a conversion made after registering

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def plain_digest(digest: str, *, field: str = "digest") -> str:
    """`sha256:<hex>` or `<hex>` as the 64 hex digits the stores use."""
    text = digest.strip().lower()
    text = text.removeprefix("sha256:")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidArgumentError(
            f"'{digest}' is not a sha256 digest (sha256:<64 hex digits>)", field=field
        )
    return text


def pack(
    *,
    name: str,
    version: int,
    digest: str,
    onnx_digest: str | None,
    files: Mapping[str, bytes],
) -> dict[str, bytes]:
    """A bundle's files (relative path -> bytes) from a version's files as the deploy
    capability reads them: `manifest.json`, the files it lists, and `model.onnx` when the
    registry made a conversion after registering (`onnx_digest`). Checked as `load_bundle`
    checks them, so a render never bakes a bundle that would be refused."""
    manifest = _manifest(files.get(MANIFEST_FILE), digest)
    listed = _listed(manifest)
    out: dict[str, bytes] = {MANIFEST_FILE: files[MANIFEST_FILE]}
    for path, file_digest in listed.items():
        out[path] = _checked(files.get(path), file_digest, path)
    conversion = None
    if onnx_digest and CONVERSION_FILE not in listed:
        out[CONVERSION_FILE] = _checked(files.get(CONVERSION_FILE), onnx_digest, CONVERSION_FILE)
        conversion = onnx_digest
    info = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "digest": digest,
        "onnx_digest": conversion,
        "uri": f"models:/{name}/{version}",
    }
    out[BUNDLE_FILE] = (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()
    return dict(sorted(out.items()))


def is_bundle(uri: str) -> bool:
    """Whether a MODEL_URI names a bundle folder rather than a registered version: a string
    in the form of a model URI (`churn@champion`, `churn/3`) always names a registered
    version, even when a folder of that name in the working directory holds a bundle."""
    from shipyard.registry.uris import is_model_uri

    if is_model_uri(uri):
        return False
    return (Path(uri) / BUNDLE_FILE).is_file()


def looks_like_folder(uri: str) -> bool:
    """A path (absolute, ./relative or an existing folder) that holds no bundle: an error
    that says so beats 'not a model URI'."""
    from shipyard.registry.uris import is_model_uri

    if is_model_uri(uri):
        return False
    return uri.startswith(("/", "./", "../")) or Path(uri).is_dir()


def read_bundle(
    folder: Path, *, digest: str | None = None, onnx_digest: str | None = None
) -> tuple[BundleInfo, dict[str, Path]]:
    """The bundle's description and its files (digest -> path), every one verified; `digest`
    pins the manifest's digest (`sha256:<hex>`), as `shipyard serve --digest` does, and
    `onnx_digest` the conversion's (`--onnx-digest`). With `digest` pinned and `onnx_digest`
    not, the conversion is left out (the returned info has no `onnx_digest`): nothing pins it."""
    info = _pinned(folder, bundle_info(folder), digest, onnx_digest)
    manifest = _manifest(_read(folder, MANIFEST_FILE), info.digest)
    paths = {info.digest: folder / MANIFEST_FILE}
    listed = dict(_listed(manifest))
    if info.onnx_digest:
        listed[CONVERSION_FILE] = info.onnx_digest
    for path, file_digest in sorted(listed.items()):
        _checked(_read(folder, path), file_digest, f"{folder}/{path}")
        paths[file_digest] = folder / path
    return info, paths


def _pinned(
    folder: Path, info: BundleInfo, digest: str | None, onnx_digest: str | None
) -> BundleInfo:
    """`info` checked against the pins, without its conversion when only `digest` is pinned."""
    if digest is not None and plain_digest(digest) != info.digest:
        raise IntegrityError(
            f"{folder} holds {info.uri} with manifest digest sha256:{info.digest}, not the "
            f"pinned sha256:{plain_digest(digest)}; refusing to serve it"
        )
    if onnx_digest is not None:
        wanted = plain_digest(onnx_digest, field="onnx_digest")
        if info.onnx_digest != wanted:
            has = f"sha256:{info.onnx_digest}" if info.onnx_digest else "none"
            raise IntegrityError(
                f"{folder} holds {info.uri} with ONNX conversion {has}, not the pinned "
                f"sha256:{wanted}; refusing to serve it"
            )
    elif digest is not None and info.onnx_digest is not None:
        return replace(info, onnx_digest=None)  # unpinned: served from the manifest's files
    return info


def load_bundle(
    folder: Path,
    digest: str | None = None,
    onnx_digest: str | None = None,
    *,
    trusted: bool = False,
    ignore_env: bool = False,
    backend: Literal["auto", "onnx", "python"] = "auto",
) -> LoadedModel:
    """The model of a bundle folder, every file verified first (see the module's text)."""
    from shipyard.flavors import load_model

    info, paths = read_bundle(folder, digest=digest, onnx_digest=onnx_digest)
    model = load_model(
        _BundleFiles(paths),  # type: ignore[arg-type]
        info.digest,
        trusted=trusted,
        backend=backend,
        onnx_digest=info.onnx_digest,
        ignore_env=ignore_env,
        what=f"{info.uri} (bundle {folder})",
    )
    model.name, model.version = info.name, info.version
    return model


class _BundleFiles:
    """The bundle's verified files where `flavors.load_model` expects the artifact store:
    each read is checked against its digest again (the files stay where they are)."""

    def __init__(self, paths: Mapping[str, Path]) -> None:
        self._paths = dict(paths)

    def _path(self, digest: str) -> Path:
        path = self._paths.get(digest)
        if path is None:
            raise NotFoundError(f"the bundle holds no file with digest sha256:{digest}")
        return path

    def get_bytes(self, digest: str) -> bytes:
        path = self._path(digest)
        return _checked(path.read_bytes(), digest, str(path))

    def local_path(self, digest: str) -> Path:
        self.get_bytes(digest)
        return self._path(digest)


def bundle_info(folder: Path) -> BundleInfo:
    """What a bundle's bundle.json says (nothing verified yet: `read_bundle` does that)."""
    from shipyard.registry import _check_name

    raw = _read(folder, BUNDLE_FILE)
    try:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}")
        onnx = doc.get("onnx_digest")
        name = doc["name"]
        if not isinstance(name, str):
            raise ValueError(f"name {name!r}")
        _check_name(name)  # it becomes the endpoint's name: as the registry checks names
        return BundleInfo(
            name=name,
            version=int(doc["version"]),
            digest=plain_digest(str(doc["digest"])),
            onnx_digest=plain_digest(str(onnx)) if onnx else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError, InvalidArgumentError) as exc:
        raise InvalidArgumentError(
            f"{folder}/{BUNDLE_FILE} is not a shipyard bundle description ({exc}); render "
            "the bundle again with `shipyard deploy render MODEL_URI --target docker`",
            field="model_uri",
        ) from exc


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"the bundle {folder} lacks {name}; it is incomplete") from None
    except OSError as exc:
        raise IntegrityError(f"cannot read {folder}/{name}: {exc.strerror}") from exc


def _manifest(data: bytes | None, digest: str) -> dict[str, Any]:
    blob = _checked(data, digest, MANIFEST_FILE)
    doc = json.loads(blob)
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise IntegrityError("manifest.json lists no files")
    return doc


def _listed(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The manifest's files (relative path -> digest), each a plain relative path."""
    out: dict[str, str] = {}
    for path, file_digest in sorted(manifest["files"].items()):
        p = PurePosixPath(str(path))
        if p.is_absolute() or ".." in p.parts or not p.parts or str(p) in (BUNDLE_FILE,):
            raise IntegrityError(f"the manifest names a file the bundle cannot hold: {path!r}")
        out[str(p)] = plain_digest(str(file_digest), field="manifest")
    return out


def _checked(data: bytes | None, digest: str, what: str) -> bytes:
    if data is None:
        raise IntegrityError(f"the bundle lacks {what}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise IntegrityError(
            f"{what} does not match its digest (sha256:{digest[:12]}…, its content hashes to "
            f"{actual[:12]}…): the bundle was changed after it was rendered; refusing to load it"
        )
    return data


def served_uri(
    registry: Registry, uri: str, *, digest: str | None = None, onnx_digest: str | None = None
) -> str:
    """What `shipyard serve MODEL_URI [--digest sha256:…] [--onnx-digest sha256:…]` loads: a
    bundle folder (verified now, pinned to `digest` and `onnx_digest` when given), or the
    registered version `uri` names, pinned to its number when `digest` is given and refused
    unless its manifest (and, when `onnx_digest` is given, its conversion) has that digest
    (an image that pulls its model at start serves exactly the version it was rendered for)."""
    if is_bundle(uri):
        read_bundle(Path(uri), digest=digest, onnx_digest=onnx_digest)
        return uri
    if looks_like_folder(uri):
        what = f"{uri} holds no {BUNDLE_FILE}" if Path(uri).is_dir() else f"no folder {uri}"
        raise InvalidArgumentError(
            f"{what}: a bundle is the model/ folder of "
            "`shipyard deploy render MODEL_URI --target docker`",
            field="model_uri",
        )
    if digest is None and onnx_digest is None:
        return uri
    mv = registry.resolve(uri)
    wanted = plain_digest(digest) if digest is not None else mv.artifact_digest
    onnx = plain_digest(onnx_digest, field="onnx_digest") if onnx_digest else mv.onnx_digest
    if mv.artifact_digest != wanted or mv.onnx_digest != onnx:
        raise IntegrityError(
            f"models:/{mv.name}/{mv.version} has manifest digest sha256:{mv.artifact_digest} "
            f"and ONNX conversion {_shown(mv.onnx_digest)}, not the pinned sha256:{wanted} and "
            f"{_shown(onnx)}; refusing to serve it (its stores hold another model under that "
            "name: point SHIPYARD_DB_URL/SHIPYARD_ARTIFACTS at the right ones)"
        )
    return f"models:/{mv.name}/{mv.version}"


def _shown(digest: str | None) -> str:
    return f"sha256:{digest}" if digest else "none"
