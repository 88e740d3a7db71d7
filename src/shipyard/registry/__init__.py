"""The model registry: registered models, immutable versions, aliases, tags, audit.

reg = Registry(open_stores())
mv = reg.register("churn", model, input_example=X[:5])
reg.set_alias("churn", "champion", mv.version)
model = reg.load("models:/churn@champion")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.registry.uris import ModelRef, parse_model_uri
from shipyard.stores.records import MAX_VERSION

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.flavors import LoadedModel, OnnxMode, Serialization, Signature
    from shipyard.flavors.environment import Difference, Environment
    from shipyard.stores import Stores
    from shipyard.stores.gates import GateReportRecord
    from shipyard.stores.records import AuditRecord, ModelVersionRecord, RegisteredModelRecord


class Registry:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._models = stores.metadata.models
        self.bundle_pins: dict[str, tuple[str | None, str | None]] = {}  # folder -> its pins

    def register(
        self,
        name: str,
        model: Any,
        *,
        input_example: Any,
        run_id: str | None = None,
        serialization: Serialization = "skops",
        onnx: OnnxMode = "auto",
        description: str = "",
        tags: dict[str, str] | None = None,
        reference_data: Any = None,
        reference_target: Any = None,
        allow_missing: bool | Iterable[str] = (),
        code: Iterable[str | Path] | None = None,
        artifacts: Mapping[str, str | Path] | None = None,
        pip_requirements: Iterable[str] = (),
    ) -> ModelVersionRecord:
        """Save the model's artifacts, then record a new immutable version.

        A `shipyard.PythonModel` goes with its `code` (["mypkg/", "pre.py"]; its class must be
        in it) and `artifacts` (name → path). The version locks the package versions it needs,
        `pip_requirements` included; `load` compares them with the running environment.

        Missing values (null, NaN) are refused at serving time in the columns the model was
        trained without them: `allow_missing` names the columns (True: all) where the model
        handles them; columns with missing values in `input_example` or `reference_data`, and
        every column of a model that declares it handles them (gradient-boosted trees, a
        pipeline that starts with an imputer), take them too.

        `reference_data` (and `reference_target`), typically the training data, give the
        version a monitoring reference: profiles of its features, of the model's predictions
        on them and of the target (prediction and label drift); up to 1000 of its rows also
        check the ONNX conversion, with the input example's (`flavors/parity_rows.py`).

        `onnx`: "auto" converts models that have a converter (scikit-learn, XGBoost, LightGBM)
        to ONNX in the background and keeps the conversion only if its outputs match
        (`wait_for_conversions()` to block; the version's `onnx_detail` says why one was
        refused); True converts now and raises ConversionError on a mismatch; False never
        converts."""
        from shipyard.flavors import save_model

        _check_name(name)
        flavor, digest, signature, manifest = save_model(
            model,
            self.stores.artifacts,
            input_example=input_example,
            serialization=serialization,
            onnx=onnx is True,
            allow_missing=_missing(allow_missing, reference_data),
            code=code,
            artifacts_of_model=artifacts,
            pip_requirements=pip_requirements,
            check_data=reference_data,
        )
        version_tags = dict(tags or {})
        if reference_data is not None:
            from shipyard.registry.reference import reference_profile

            version_tags["reference_profile"] = reference_profile(
                self.stores, model, (reference_data, reference_target), digest, signature.kind
            )
        return self.record_saved(
            name,
            (flavor, digest, signature, manifest),
            run_id=run_id,
            onnx=onnx,
            description=description,
            tags=version_tags,
        )

    def record_saved(
        self,
        name: str,
        saved: tuple[str, str, Signature, dict[str, Any]],
        *,
        run_id: str | None = None,
        onnx: OnnxMode = "auto",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        event: tuple[str, Mapping[str, Any]] | None = None,
    ) -> ModelVersionRecord:
        """Record a new version of a model `flavors.save_model` saved already (what `register`
        does after saving); `event` adds an audit event in the same transaction."""
        from shipyard.stores.owners import current_owner

        _check_name(name)
        flavor, digest, signature, manifest = saved
        status = _onnx_status(
            manifest, onnx, all_numeric=signature.all_numeric and not signature.categorical
        )
        mv = self._models.create_version(
            name,
            actor=self.stores.actor,
            flavor=flavor,
            artifact_digest=digest,
            signature=signature.to_dict(),
            run_id=run_id,
            description=description,
            tags=dict(tags or {}),
            onnx_status=status,
            onnx_detail=_not_converted(signature) if status == "refused" else None,
            onnx_claimed_by=current_owner() if status == "pending" else None,
            event=event,
        )
        if status == "pending":
            from shipyard.registry import conversion

            conversion.submit(self.stores, mv.name, mv.version, mv.artifact_digest, claimed=True)
        return mv

    def register_mlflow_model(
        self,
        name: str,
        folder: str | Path,
        *,
        run_id: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        trusted: bool = False,
    ) -> ModelVersionRecord:
        """A new version of `name` from an MLflow model directory (`flavors.mlflow_dir`:
        scikit-learn and ONNX models run as shipyard's own; a pickle loads only if trusted)."""
        from shipyard.flavors.mlflow_dir import save_mlflow_dir

        for key, value in (tags or {}).items():  # a remote caller's: no approval_*, no monitoring
            _check_tag_key(key, version_tag=True)
            _check_text(value, "value")
        saved = save_mlflow_dir(Path(folder), self.stores.artifacts, trusted=trusted)
        return self.record_saved(name, saved, run_id=run_id, description=description, tags=tags)

    def import_bundle(self, folder: str | Path, **pins: str | None) -> ModelVersionRecord:
        """A bundle folder's version, recorded here once (see `registry.bundle_import`);
        `digest=` and `onnx_digest=` (`sha256:…`) pin its manifest and its conversion."""
        from shipyard.registry.bundle_import import import_bundle

        return import_bundle(self, Path(folder), **pins)[0]

    def reference_profile(self, mv: ModelVersionRecord) -> dict[str, Any] | None:
        """The monitoring reference recorded with a version, if any."""
        import json

        digest = mv.tags.get("reference_profile")
        if not digest:
            return None
        return json.loads(self.stores.artifacts.get_bytes(digest))  # type: ignore[no-any-return]

    def approve(
        self, name: str, version: int, *, reviewer: str, comment: str = ""
    ) -> ModelVersionRecord:
        """Approve a pending version (endpoints that require approval serve only these)."""
        return self._models.set_approval(
            name,
            int(version),
            state="approved",
            reviewer=reviewer,
            comment=comment,
            actor=self.stores.actor,
        )

    def request_approval(
        self, name: str, version: int, *, reviewer: str | None = None, comment: str = ""
    ) -> ModelVersionRecord:
        """Ask for a review of a pending version (audited; `reviewer` is who is asked)."""
        return self._models.request_approval(
            name, int(version), reviewer=reviewer, comment=comment, actor=self.stores.actor
        )

    def reject(
        self, name: str, version: int, *, reviewer: str, comment: str = ""
    ) -> ModelVersionRecord:
        return self._models.set_approval(
            name,
            int(version),
            state="rejected",
            reviewer=reviewer,
            comment=comment,
            actor=self.stores.actor,
        )

    def convert(self, name: str, version: int) -> ModelVersionRecord:
        """Convert a version to ONNX now (e.g. one registered with onnx=False)."""
        from shipyard.registry import conversion

        mv = self._models.get_version(name, version)
        if mv.onnx_status != "ok":
            conversion.convert_version(self.stores, name, version, mv.artifact_digest)
        return self._models.get_version(name, version)

    @staticmethod
    def wait_for_conversions(timeout: float | None = None) -> None:
        """Block until background ONNX conversions started by this process are done (on every
        open store; each store owns its conversion worker and closes it with itself)."""
        from shipyard.registry import conversion

        conversion.wait(timeout)

    def resolve(self, uri: str | ModelRef) -> ModelVersionRecord:
        """The version a URI points at, now."""
        ref = parse_model_uri(uri) if isinstance(uri, str) else uri
        if ref.run_id is not None:
            versions = self._models.versions_of_run(ref.run_id)
            if not versions:  # the short id the CLI shows: the one run it starts
                run_id = self.stores.metadata.runs.run_id_of_prefix(ref.run_id)
                versions = self._models.versions_of_run(run_id)
            if not versions:
                raise NotFoundError(
                    f"run '{ref.run_id}' logged no model", kind="run", name=ref.run_id
                )
            return versions[-1]
        assert ref.name is not None
        if ref.alias is not None:
            version = self._models.resolve_alias(ref.name, ref.alias)
        elif ref.latest:
            version = self._models.latest_version(ref.name)
        else:
            assert ref.version is not None
            version = ref.version
        return self._models.get_version(ref.name, version)

    def load(
        self,
        uri: str,
        *,
        trusted: bool = False,
        backend: Literal["auto", "onnx", "python"] = "auto",
        ignore_env: bool = False,
    ) -> LoadedModel:
        """Load a version. A model whose code runs when loaded (pickle, a Python model) needs
        `trusted`; one saved with another major version of its framework needs `ignore_env`
        (other differences from its lock are warnings). A bundle folder (`registry.bundle`:
        what the docker target bakes) loads from its own verified files."""
        from shipyard.flavors import load_model
        from shipyard.registry.bundle import is_bundle, load_bundle

        if is_bundle(uri):  # pinned as `shipyard serve --digest/--onnx-digest` pinned it
            pins = self.bundle_pins.get(uri, (None, None))
            return load_bundle(
                Path(uri), *pins, trusted=trusted, ignore_env=ignore_env, backend=backend
            )
        mv = self.resolve(uri)
        model = load_model(
            self.stores.artifacts,
            mv.artifact_digest,
            trusted=trusted,
            backend=backend,
            onnx_digest=mv.onnx_digest,
            ignore_env=ignore_env,
            what=f"models:/{mv.name}/{mv.version}",
        )
        model.name, model.version = mv.name, mv.version
        return model

    def environment(self, uri: str) -> Environment:
        """The lock of package versions a version needs (`shipyard models env`)."""
        from shipyard.flavors import read_manifest
        from shipyard.flavors.environment import Environment

        mv = self.resolve(uri)
        return Environment.from_manifest(read_manifest(self.stores.artifacts, mv.artifact_digest))

    def check_environment(
        self, uri: str, *, ignore_env: bool = False, warn: bool = True
    ) -> list[Difference]:
        """What `load` would say about the running environment, without loading: raises
        ModelLoadError on a framework's other major version unless `ignore_env`; returns the
        differences (and warns of them, if `warn`)."""
        from shipyard.flavors import check_environment, read_manifest

        mv = self.resolve(uri)
        manifest = read_manifest(self.stores.artifacts, mv.artifact_digest)
        onnx = "model.onnx" in manifest["files"] or mv.onnx_digest is not None
        return check_environment(
            manifest,
            onnx=onnx,
            ignore_env=ignore_env,
            what=f"models:/{mv.name}/{mv.version}",
            warn=warn,
        )

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str | None = None,
        override_gates: str | None = None,
    ) -> None:
        """Point an alias at a version. A model with quality gates refuses a version without
        a passing gate report unless `override_gates` gives a reason (audited)."""
        self._models.set_alias(
            name,
            alias,
            int(version),
            actor=self.stores.actor,
            reason=reason,
            override_gates=override_gates,
        )

    # -- quality gates ---------------------------------------------------------------------------

    def set_gates(self, name: str, gates: list[dict[str, Any]]) -> None:
        """Replace the quality gates of a model (see `shipyard.pipelines.gates`); audited."""
        self.stores.metadata.gates.configure(name, gates, actor=self.stores.actor)

    def gates(self, name: str) -> list[dict[str, Any]]:
        self._models.get_model(name)
        return self.stores.metadata.gates.config(name)

    def record_gate_report(
        self, name: str, version: int, report: dict[str, Any], *, passed: bool
    ) -> GateReportRecord:
        return self.stores.metadata.gates.record_report(
            name, int(version), passed=passed, report=report, actor=self.stores.actor
        )

    def gate_report(self, name: str, version: int) -> GateReportRecord | None:
        self._models.get_version(name, int(version))
        return self.stores.metadata.gates.latest_report(name, int(version))

    def require_gates(
        self, name: str, version: int, *, action: str, override: str | None = None
    ) -> None:
        """Raise GateBlockedError unless the version may serve (used by deployments)."""
        from shipyard.stores.gates import require_pass

        with self.stores.metadata.db.write() as conn:
            require_pass(
                conn,
                name,
                int(version),
                action=action,
                actor=self.stores.actor,
                override_reason=override,
            )

    def delete_alias(self, name: str, alias: str, *, reason: str | None = None) -> None:
        self._models.delete_alias(name, alias, actor=self.stores.actor, reason=reason)

    def create_model(self, name: str, *, description: str = "", exist_ok: bool = False) -> None:
        """A registered model with no version yet (`register` makes one when missing)."""
        _check_name(name)
        _check_text(description, "description")
        self._models.create_model(
            name, actor=self.stores.actor, description=description, exist_ok=exist_ok
        )

    def get_model(self, name: str) -> RegisteredModelRecord:
        return self._models.get_model(name)

    def list_models(self) -> list[RegisteredModelRecord]:
        return self._models.list_models()

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        return self._models.list_versions(name)

    def get_version(self, name: str, version: int) -> ModelVersionRecord:
        return self._models.get_version(name, version)

    def versions_of_run(self, run_id: str) -> list[ModelVersionRecord]:
        """The versions a run registered (its lineage, seen from the run)."""
        return self._models.versions_of_run(run_id)

    def set_description(self, name: str, description: str, version: int | None = None) -> None:
        """Describe a model, or one of its versions; audited."""
        _check_text(description, "description")
        if version is None:
            self._models.update_model(name, actor=self.stores.actor, description=description)
        else:
            self._models.set_version_description(
                name, int(version), description, actor=self.stores.actor
            )

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        _check_tag_key(key, version_tag=False)
        _check_text(value, "value")
        self._models.set_model_tag(name, key, value, actor=self.stores.actor)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        _check_tag_key(key, version_tag=True)
        _check_text(value, "value")
        self._models.set_version_tag(name, version, key, value, actor=self.stores.actor)

    def delete_tag(self, name: str, key: str, version: int | None = None) -> None:
        """Remove a tag of a model, or of one of its versions; audited."""
        _check_tag_key(key, version_tag=version is not None)
        if version is None:
            self._models.delete_model_tag(name, key, actor=self.stores.actor)
        else:
            self._models.delete_version_tag(name, int(version), key, actor=self.stores.actor)

    def delete(self, name: str, version: int | None = None, *, reason: str | None = None) -> int:
        """Delete a version, or the whole model; returns how many versions went. Refused
        (ConflictError naming them) while an alias or an endpoint uses what would go. Audited;
        version numbers are never reused."""
        from shipyard.registry.usage import endpoint_users

        if version is not None:
            mv = self._models.get_version(name, int(version))
            latest = self._models.latest_version(name)
            self._models.delete_version(
                name,
                mv.version,
                actor=self.stores.actor,
                judge=lambda eps: endpoint_users(eps, name, [mv], latest),
                reason=reason,
            )
            return 1
        versions = self._models.list_versions(name)
        return self._models.delete_model(
            name,
            actor=self.stores.actor,
            judge=lambda eps: endpoint_users(
                eps, name, versions, max((v.version for v in versions), default=None)
            ),
            reason=reason,
        )

    def rename(self, name: str, new_name: str) -> None:
        """Rename a model with its versions, aliases, tags and gates. Refused (ConflictError)
        while an endpoint serves it: its model URI names the model."""
        from shipyard.registry.usage import endpoint_roles

        _check_name(new_name)
        model = self._models.get_model(name)
        versions = self._models.list_versions(name)
        latest = max((v.version for v in versions), default=None)
        self._models.rename_model(
            name,
            new_name,
            actor=self.stores.actor,
            judge=lambda eps: [
                f"endpoint '{e.name}'"
                for e in eps
                if endpoint_roles(e, name, versions, latest, aliases=model.aliases)
            ],
        )

    def audit(self, name: str | None = None, limit: int = 100) -> list[AuditRecord]:
        if name is not None:
            self._models.get_model(name)  # a clear not-found with a suggestion
            return self.stores.metadata.audit.list(
                subject_prefix=name, subject_types=("model", "model_version"), limit=limit
            )
        return self.stores.metadata.audit.list(limit=limit)


def set_alias(
    name: str,
    alias: str,
    version: int,
    *,
    reason: str | None = None,
    override_gates: str | None = None,
    settings: Settings | None = None,
) -> None:
    """Point `alias` (e.g. "champion") at a version of a registered model; audited. A model
    with quality gates refuses a version that has not passed them, unless `override_gates`
    gives a reason."""
    from shipyard.stores import open_stores

    Registry(open_stores(settings)).set_alias(
        name, alias, version, reason=reason, override_gates=override_gates
    )


def load_model(
    uri: str,
    *,
    trusted: bool = False,
    backend: Literal["auto", "onnx", "python"] = "auto",
    ignore_env: bool = False,
    settings: Settings | None = None,
) -> LoadedModel:
    """Load a model by URI: `models:/churn@champion`, `models:/churn/3`, `runs:/<id>/model`.
    `trusted` lets a model run its own code (pickle, a Python model); `ignore_env` loads one
    saved with another major version of its framework (see `Registry.load`).

    >>> model = shipyard.load_model("models:/churn@champion")
    >>> model.predict(X)
    """
    from shipyard.stores import open_stores

    return Registry(open_stores(settings)).load(
        uri, trusted=trusted, backend=backend, ignore_env=ignore_env
    )


def _not_converted(signature: Signature) -> str:
    from shipyard.flavors.categories import not_converted

    return not_converted(signature)


def _onnx_status(manifest: Mapping[str, Any], onnx: OnnxMode, *, all_numeric: bool) -> str:
    """A new version's ONNX status: converted already, to convert in the background, refused
    (not all-numeric inputs) or off."""
    from shipyard.flavors import convertible

    if "model.onnx" in manifest["files"]:
        return "ok"
    if onnx == "auto" and convertible(manifest):
        return "pending" if all_numeric else "refused"
    return "off"


# version tags shipyard writes and reads back itself: approval state (every `approval_*`),
# monitoring reference; in any case
RESERVED_VERSION_TAGS = frozenset({"reference_profile"})
# approval state; what `shipyard models optimize` records (parent, technique, report)
RESERVED_VERSION_TAG_PREFIX = ("approval_", "optimize_")


def _check_text(text: str, field: str) -> None:
    """No NUL (PostgreSQL refuses it in text) nor other control characters but tab and newline."""

    if any((ord(c) < 32 and c not in "\t\n") or c == "\x7f" for c in text):
        raise InvalidArgumentError(f"'{field}' holds a control character", field=field)


def _check_tag_key(key: str, *, version_tag: bool) -> None:

    if not key or len(key) > 256:
        raise InvalidArgumentError("a tag key must be 1 to 256 characters", field="key")
    if any(ord(c) < 32 or c == "\x7f" for c in key):
        raise InvalidArgumentError("a tag key holds a control character", field="key")
    folded = key.casefold()
    if version_tag and (
        folded in RESERVED_VERSION_TAGS or folded.startswith(RESERVED_VERSION_TAG_PREFIX)
    ):
        raise InvalidArgumentError(
            f"tag '{key}' is kept by shipyard itself (approval, monitoring, optimize); it "
            "cannot be edited by hand",
            field="key",
        )


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}", name or ""):
        raise InvalidArgumentError(
            f"model name {name!r} is not valid: use letters, digits, '_', '-', '.' "
            "(it appears in URLs and URIs)",
            field="name",
        )


def _missing(allow_missing: bool | Iterable[str], reference_data: Any) -> bool | set[str]:
    """The columns taking missing values: those named, and those with one in the reference."""
    from shipyard.flavors.signature import missing_columns

    if allow_missing is True:
        return True
    return {*_names(allow_missing), *missing_columns(reference_data)}


def _names(columns: Iterable[str] | bool) -> set[str]:
    """`allow_missing` as a set of column names (one name alone is one column, not letters)."""
    if isinstance(columns, str):
        return {columns}
    return set() if isinstance(columns, bool) else {str(c) for c in columns}


__all__ = ["MAX_VERSION", "ModelRef", "Registry", "load_model", "parse_model_uri", "set_alias"]
