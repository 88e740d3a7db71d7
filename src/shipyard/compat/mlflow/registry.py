"""MLflow's model registry routes on shipyard's `Registry`: registered models, versions,
aliases, tags, stages, download URIs.

A version an MLflow client creates from a logged model (`models:/m-…`) or from a run's
artifacts (`runs:/<id>/<path>`, `mlflow-artifacts:/…`) is registered by shipyard from that
MLflow model directory (`Registry.register_mlflow_model`): scikit-learn (skops) and ONNX
models become shipyard models that `shipyard serve` runs, with the ONNX fast path when the
conversion passes; a pickle is kept and loads only when trusted. It is READY when answered.

Every version downloads as an MLflow model directory from `mlflow-artifacts:/registry/<name>/
<version>` (`registry.mlflow_export`). What MLflow keeps as version fields and shipyard does not
(the source URI, the logged model, the deprecated stage) are version tags, hidden here.
An alias moved through this API is the same alias shipyard's endpoints follow: the model's
quality gates apply, and moving or deleting one needs the "admin" scope.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from shipyard.compat.mlflow import convert
from shipyard.errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from shipyard.registry import Registry
    from shipyard.registry.mlflow_export import ModelVersionRecord, RegisteredModelRecord
    from shipyard.tracking import RemoteRuns
    from shipyard.tracking.logged_models import LoggedModels

SOURCE_TAG: Final = "mlflow.source"
MODEL_ID_TAG: Final = "mlflow.model_id"
STAGE_TAG: Final = "mlflow.current_stage"
HIDDEN_TAGS: Final = frozenset({SOURCE_TAG, MODEL_ID_TAG, STAGE_TAG})
STAGES: Final = ("None", "Staging", "Production", "Archived")
# MLflow's limits: registered models 1000 a page, versions 200,000
MAX_MODELS_PAGE: Final = 1000
MAX_VERSIONS_PAGE: Final = 200_000
_RUNS_URI = re.compile(r"^runs:/(?P<run>[^/]+)/?(?P<path>.*)$")
_MODELS_ID_URI = re.compile(r"^models:/(?P<id>m-[0-9a-f]{32})/?$")
_PROXY_URI = re.compile(r"^mlflow-artifacts:(?://[^/]*)?/(?P<path>.+)$")
_CLAUSE = re.compile(
    r"""\s*(?P<key>name|run_id|source_path|tags?\.`[^`]+`|tags?\.[^`=!<> ]+|version_number)\s*
    (?P<op>=|!=|(?i:like|ilike))\s*(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\d+)\s*""",
    re.VERBOSE,
)


class RegistryRoutes:
    def __init__(self, registry: Registry, runs: RemoteRuns, models: LoggedModels) -> None:
        self.registry = registry
        self.runs = runs
        self.models = models

    # -- JSON ------------------------------------------------------------------------------------

    def version_json(self, mv: ModelVersionRecord) -> dict[str, Any]:
        from shipyard.registry.mlflow_export import download_uri

        out: dict[str, Any] = {
            "name": mv.name,
            "version": str(mv.version),
            "creation_timestamp": mv.created_at,
            "last_updated_timestamp": mv.created_at,
            "user_id": mv.created_by,
            "current_stage": mv.tags.get(STAGE_TAG, "None"),
            "description": mv.description,
            "source": mv.tags.get(SOURCE_TAG) or download_uri(mv.name, mv.version),
            "status": "READY",
            "tags": _tags(mv.tags),
            "aliases": list(mv.aliases),
        }
        if mv.run_id:
            out["run_id"] = mv.run_id
        if mv.tags.get(MODEL_ID_TAG):
            out["model_id"] = mv.tags[MODEL_ID_TAG]
        return out

    def model_json(self, record: RegisteredModelRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": record.name,
            "creation_timestamp": record.created_at,
            "last_updated_timestamp": record.updated_at,
            "description": record.description,
            "tags": _tags(record.tags),
            "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(record.aliases.items())],
        }
        if record.latest_version is not None:
            latest = self.registry.get_version(record.name, record.latest_version)
            out["latest_versions"] = [self.version_json(latest)]
        return out

    # -- registered models -----------------------------------------------------------------------

    def create_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = convert.required(body, "name")
        description = convert.text(body, "description", required=False) or ""
        self.registry.create_model(name, description=description)
        for key, value in convert.key_values(body, "tags").items():
            self.registry.set_model_tag(name, key, value)
        return {"registered_model": self.model_json(self.registry.get_model(name))}

    def get_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        record = self.registry.get_model(convert.required(body, "name"))
        return {"registered_model": self.model_json(record)}

    def search_models(self, body: Mapping[str, Any]) -> dict[str, Any]:
        clauses = _clauses(convert.text(body, "filter", required=False))
        found = [
            m for m in self.registry.list_models() if _matches(clauses, {"name": m.name}, m.tags)
        ]
        found.sort(key=lambda m: m.name)
        page, token = convert.offset_page(body, found, MAX_MODELS_PAGE)
        out: dict[str, Any] = {"registered_models": [self.model_json(m) for m in page]}
        if token:
            out["next_page_token"] = token
        return out

    def rename_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, new_name = convert.required(body, "name"), convert.required(body, "new_name")
        self.registry.rename(name, new_name)
        return {"registered_model": self.model_json(self.registry.get_model(new_name))}

    def update_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = convert.required(body, "name")
        description = convert.text(body, "description", required=False)
        if description is not None:
            self.registry.set_description(name, description)
        return {"registered_model": self.model_json(self.registry.get_model(name))}

    def delete_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.registry.delete(convert.required(body, "name"), reason="MLflow client")
        return {}

    def set_model_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key, value = convert.required(body, "key"), convert.text(body, "value", required=False)
        self.registry.set_model_tag(convert.required(body, "name"), key, value or "")
        return {}

    def delete_model_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.registry.delete_tag(convert.required(body, "name"), convert.required(body, "key"))
        return {}

    def latest_versions(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The newest version in each stage asked for (every stage when none is)."""
        name = convert.required(body, "name")
        stages = {s.lower() for s in convert.strings(body, "stages")}
        newest: dict[str, ModelVersionRecord] = {}
        for mv in self.registry.list_versions(name):
            stage = mv.tags.get(STAGE_TAG, "None")
            wanted = not stages or stage.lower() in stages
            if wanted and (stage not in newest or mv.version > newest[stage].version):
                newest[stage] = mv
        versions = sorted(newest.values(), key=lambda mv: mv.version)
        return {"model_versions": [self.version_json(mv) for mv in versions]}

    # -- aliases ---------------------------------------------------------------------------------

    def set_alias(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, alias = convert.required(body, "name"), convert.required(body, "alias")
        if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
            raise InvalidArgumentError(
                f"alias {alias!r} is reserved: 'latest' and v<number> name versions "
                "(models:/<name>/latest, …); choose another alias",
                field="alias",
            )
        version = _version(body)
        self.registry.set_alias(name, alias, version, reason="MLflow client")
        return {}

    def delete_alias(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, alias = convert.required(body, "name"), convert.required(body, "alias")
        self.registry.delete_alias(name, alias, reason="MLflow client")
        return {}

    def get_by_alias(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, alias = convert.required(body, "name"), convert.required(body, "alias")
        mv = self.registry.resolve(f"models:/{name}@{alias}")
        return {"model_version": self.version_json(mv)}

    # -- versions --------------------------------------------------------------------------------

    def create_version(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Register the MLflow model at `source` (a logged model or a run's artifacts)."""
        name = convert.required(body, "name")
        source = convert.required(body, "source")
        model_id = convert.text(body, "model_id", required=False)
        run_id = convert.text(body, "run_id", required=False)
        tags = convert.key_values(body, "tags")
        for key in tags:
            _not_hidden(key)
        with tempfile.TemporaryDirectory(prefix="shipyard-mlflow-") as tmp:
            try:
                found_run = self._fetch_source(source, model_id, Path(tmp))
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise InvalidArgumentError(
                    f"the files at {source[:200]!r} do not form a directory: one path is both a "
                    "file and a folder (e.g. 'model/x' and 'model/x/y')",
                    field="source",
                ) from None
            tags[SOURCE_TAG] = source
            if model_id or _MODELS_ID_URI.match(source):
                tags[MODEL_ID_TAG] = model_id or source.split("/")[-1]
            self.registry.create_model(name, exist_ok=True)
            mv = self.registry.register_mlflow_model(
                name,
                tmp,
                run_id=self._lineage(run_id, found_run),
                description=convert.text(body, "description", required=False) or "",
                tags=tags,
            )
        return {"model_version": self.version_json(mv)}

    def _lineage(self, given: str | None, found: str | None) -> str | None:
        """The version's run: the one its files came from. A `run_id` naming another run (or,
        for a source with none, no run at all) would give the version a lineage it lacks."""
        if given and found and given != found:
            raise InvalidArgumentError(
                f"run_id '{given}' is not the run the source's files come from ('{found}')",
                field="run_id",
            )
        if given and not found:
            self.runs.stage(given)  # NotFoundError when there is no such run
        return given or found

    def _fetch_source(self, source: str, model_id: str | None, folder: Path) -> str | None:
        """Copy the MLflow model at `source` into `folder`; returns the run it came from."""
        from shipyard.compat.mlflow.artifacts import place_of

        match = _MODELS_ID_URI.match(source)
        if match and model_id and model_id != match.group("id"):
            raise InvalidArgumentError(
                f"source names the logged model {match.group('id')} but model_id says "
                f"{model_id}: give one, or the same in both",
                field="model_id",
            )
        if model_id:  # the model the version links to must exist, wherever its files come from
            self.models.get(model_id, allow_deleted=False)
        if match or (model_id and not _RUNS_URI.match(source) and not _PROXY_URI.match(source)):
            wanted = match.group("id") if match else str(model_id)
            found = self.models.get(wanted, allow_deleted=False)
            self.models.download(found.id, folder)
            return found.source_run_id
        runs = _RUNS_URI.match(source)
        proxied = _PROXY_URI.match(source)
        if source.startswith("models:/"):  # another version (copy_model_version): its files
            mv = self.registry.resolve(source)
            self._download_version(f"{mv.name}/{mv.version}", folder)
            return mv.run_id
        if runs is not None:
            self._download_run(runs.group("run"), runs.group("path"), folder)
            return runs.group("run")
        if proxied is not None:
            place = place_of(proxied.group("path"))
            if place.kind == "model":
                owner = self.models.get(place.owner, allow_deleted=False)
                self.models.download(owner.id, folder, place.path)
                return owner.source_run_id
            if place.kind == "run":
                self._download_run(place.owner, place.path, folder)
                return place.owner
            self._download_version(place.owner, folder)
            return self.registry.resolve("models:/" + place.owner).run_id
        raise InvalidArgumentError(
            f"source {source[:200]!r} is not a model this server stores: give a logged model "
            "(models:/m-…), a run's artifacts (runs:/<run_id>/<path>) or an mlflow-artifacts:/ "
            "URI this server handed out",
            field="source",
        )

    def _download_version(self, owner: str, folder: Path) -> None:
        import shutil

        from shipyard.registry.mlflow_export import VersionFiles

        files = VersionFiles(self.registry.stores)
        for record in files.files(owner):
            dest = folder / record.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files.file(owner, record.path)[1], dest)

    def _download_run(self, run_id: str, prefix: str, folder: Path) -> None:
        import shutil

        from shipyard.tracking.logged_models import clean_path

        prefix = clean_path(prefix, allow_empty=True)
        copied = 0
        for record in self.runs.artifacts(run_id):
            if prefix and not record.path.startswith(prefix + "/"):
                continue
            dest = folder / record.path[len(prefix) :].lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.runs.artifact_file(run_id, record.path)[1], dest)
            copied += 1
        if copied:
            return
        # MLflow 3 keeps a run's model as a logged model: runs:/<run>/<name> names it
        logged = self.models.search([], source_run_id=run_id, names=[prefix] if prefix else [])
        if not logged:
            raise NotFoundError(f"run '{run_id}' has no artifacts nor logged model at {prefix!r}")
        self.models.download(logged[0].id, folder)

    def get_version(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mv = self.registry.get_version(convert.required(body, "name"), _version(body))
        return {"model_version": self.version_json(mv)}

    def update_version(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, version = convert.required(body, "name"), _version(body)
        description = convert.text(body, "description", required=False)
        if description is not None:
            self.registry.set_description(name, description, version)
        return {"model_version": self.version_json(self.registry.get_version(name, version))}

    def delete_version(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = convert.required(body, "name")
        self.registry.delete(name, _version(body), reason="MLflow client")
        return {}

    def search_versions(self, body: Mapping[str, Any]) -> dict[str, Any]:
        clauses = _clauses(convert.text(body, "filter", required=False))
        names = [v for k, op, v in clauses if k == "name" and op == "="]
        models = names or [m.name for m in self.registry.list_models()]
        found = []
        for model in models:
            try:
                versions = self.registry.list_versions(model)
            except NotFoundError:
                continue
            for mv in versions:
                fields = {
                    "name": mv.name,
                    "run_id": mv.run_id or "",
                    "source_path": mv.tags.get(SOURCE_TAG, ""),
                    "version_number": str(mv.version),
                }
                if _matches(clauses, fields, mv.tags):
                    found.append(mv)
        found.sort(key=lambda mv: (mv.name, -mv.version))
        page, token = convert.offset_page(body, found, MAX_VERSIONS_PAGE)
        out: dict[str, Any] = {"model_versions": [self.version_json(mv) for mv in page]}
        if token:
            out["next_page_token"] = token
        return out

    def set_version_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, version = convert.required(body, "name"), _version(body)
        key, value = convert.required(body, "key"), convert.text(body, "value", required=False)
        self.registry.set_version_tag(name, version, _not_hidden(key), value or "")
        return {}

    def delete_version_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, version = convert.required(body, "name"), _version(body)
        self.registry.delete_tag(name, _not_hidden(convert.required(body, "key")), version)
        return {}

    def download_uri(self, body: Mapping[str, Any]) -> dict[str, Any]:
        from shipyard.registry.mlflow_export import download_uri

        mv = self.registry.get_version(convert.required(body, "name"), _version(body))
        return {"artifact_uri": download_uri(mv.name, mv.version)}

    def transition_stage(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """MLflow's deprecated stages, kept as a version tag (aliases are what shipyard's
        endpoints follow); `archive_existing_versions` archives the others in that stage."""
        name, version = convert.required(body, "name"), _version(body)
        wanted = convert.required(body, "stage")
        stage = next((s for s in STAGES if s.lower() == wanted.lower()), None)
        if stage is None:
            raise InvalidArgumentError(
                f"stage must be one of {', '.join(STAGES)}, got {wanted!r}", field="stage"
            )
        self.registry.get_version(name, version)
        if body.get("archive_existing_versions") in (True, "true") and stage != "Archived":
            for mv in self.registry.list_versions(name):
                if mv.version != version and mv.tags.get(STAGE_TAG) == stage:
                    self.registry.set_version_tag(name, mv.version, STAGE_TAG, "Archived")
        self.registry.set_version_tag(name, version, STAGE_TAG, stage)
        return {"model_version": self.version_json(self.registry.get_version(name, version))}


# -- helpers ---------------------------------------------------------------------------------------


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items() if k not in HIDDEN_TAGS]


def _not_hidden(key: str) -> str:
    """A version tag key a client may write: not one this module keeps for MLflow's version
    fields (the stage moves only through transition-stage, which needs "admin")."""
    if key.strip().casefold() in HIDDEN_TAGS:
        raise InvalidArgumentError(
            f"tag '{key}' holds a model version field (source, model id, stage) and cannot be "
            "set by hand; use transition-stage to change the stage",
            field="key",
        )
    return key


def _version(body: Mapping[str, Any]) -> int:
    text = convert.required(body, "version")
    if not text.isdigit() or int(text) < 1:
        raise InvalidArgumentError(
            f"version must be a positive integer, got {text!r}", field="version"
        )
    return int(text)


def _clauses(text: str | None) -> list[tuple[str, str, str]]:
    """MLflow's registry filter: name, run_id, source_path, version_number and tags.<key>
    (or tag.<key>) with =, !=, LIKE, ILIKE."""
    usage = "use name, run_id, tags.<key> with =, !=, LIKE or ILIKE and a quoted value"
    return convert.clauses(text, _CLAUSE, usage)


def _matches(
    clauses: list[tuple[str, str, str]], fields: Mapping[str, str], tags: Mapping[str, str]
) -> bool:
    for key, op, value in clauses:
        have = tags.get(key[5:]) if key.startswith("tags.") else fields.get(key)
        if have is None:  # a missing tag is no value: "!=" holds (what the client's own
            if op == "!=":  # `tag.mlflow.prompt.is_prompt != 'true'` relies on), the rest not
                continue
            return False
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op in ("like", "ilike") and not convert.like(have, value, fold=op == "ilike"):
            return False
    return True
