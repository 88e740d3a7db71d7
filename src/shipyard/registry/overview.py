"""What the registry's pages read: every model with its latest version and its versions'
approvals; one version's gate reports; its lineage, from the data to the endpoints.

    overview = RegistryOverview(open_stores())
    overview.models()          # [{"name": "churn", "latest": {...}, "approvals": {...}}]
    overview.lineage("churn", 3)   # datasets → run → version → endpoints, parent, children

Read-only: every change goes through `Registry`, which audits it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import NotFoundError

if TYPE_CHECKING:
    from shipyard.stores import Stores
    from shipyard.stores.gates import GateReportRecord
    from shipyard.stores.records import ModelVersionRecord, RunRecord

# what a model's row shows of its latest version
LATEST_FIELDS = (
    "version",
    "flavor",
    "approval",
    "onnx_status",
    "created_at",
    "created_by",
    "run_id",
)
# the run an optimized version was made from: its parent's (`shipyard.optimize.data`)
SOURCE_RUN_TAG = "optimize_source_run"


class RegistryOverview:
    """Read-only views over the registry, each in a few queries (the pages' door to it)."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._models = stores.metadata.models

    def models(self) -> list[dict[str, Any]]:
        """Every registered model (name order) with its aliases, tags, its latest version's
        main fields (`latest`, None before the first) and how many of its versions are in
        each approval state (`approvals`)."""
        counts = self._models.approval_counts()
        out = []
        for record in self._models.list_models():
            doc = record.to_dict()
            doc["latest"] = None
            if record.latest_version is not None:
                mv = self._models.get_version(record.name, record.latest_version)
                doc["latest"] = {k: getattr(mv, k) for k in LATEST_FIELDS}
            doc["approvals"] = counts.get(record.name, {})
            out.append(doc)
        return out

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of a model, oldest first, each with the result of its latest gate
        report (`gate`: {"passed", "created_at"}, None when its gates never ran)."""
        results = self.stores.metadata.gates.latest_results(name)
        out = []
        for mv in self._models.list_versions(name):
            doc = mv.to_dict()
            found = results.get(mv.version)
            doc["gate"] = None if found is None else {"passed": found[0], "created_at": found[1]}
            out.append(doc)
        return out

    def gate_reports(self, name: str, version: int) -> list[GateReportRecord]:
        """Every gate report of a version, newest first ([] when its gates never ran)."""
        self._models.get_version(name, int(version))  # a clear not-found
        return self.stores.metadata.gates.reports(name, int(version))

    def lineage(self, name: str, version: int) -> dict[str, Any]:
        """Where a version comes from and where it goes: the datasets its run logged, the run
        (for an optimized version, its parent's: `run_via` says so), the version it was
        optimized from (`parent`) and those optimized from it (`children`), and the endpoints
        that serve it now, with how (`roles`)."""
        mv = self._models.get_version(name, int(version))
        run_id, via = mv.run_id, None
        if run_id is None and mv.tags.get(SOURCE_RUN_TAG):
            run_id, via = mv.tags[SOURCE_RUN_TAG], "parent"
        run = self._run(run_id) if run_id else None
        return {
            "model": mv.name,
            "version": mv.version,
            "run": _run_doc(run, run_id) if run_id else None,
            "run_via": via,
            "datasets": _datasets(run),
            "parent": self._parent(mv),
            "children": self._children(mv),
            "endpoints": self._endpoints(mv),
        }

    def _run(self, run_id: str) -> RunRecord | None:
        try:
            return self.stores.metadata.runs.get_run(run_id)
        except NotFoundError:  # removed since: the version still names it
            return None

    def _parent(self, mv: ModelVersionRecord) -> dict[str, Any] | None:
        raw = mv.tags.get("optimize_parent")
        if not raw or not raw.isdigit():
            return None
        try:
            parent = self._models.get_version(mv.name, int(raw))
        except NotFoundError:
            parent = None
        return {
            "version": int(raw),
            "technique": mv.tags.get("optimize_technique"),
            "exists": parent is not None,
            "approval": parent.approval if parent else None,
        }

    def _children(self, mv: ModelVersionRecord) -> list[dict[str, Any]]:
        found = self._models.versions_tagged(mv.name, "optimize_parent", str(mv.version))
        out = []
        for number in found:
            child = self._models.get_version(mv.name, number)
            out.append({"version": number, "technique": child.tags.get("optimize_technique")})
        return out

    def _endpoints(self, mv: ModelVersionRecord) -> list[dict[str, Any]]:
        from shipyard.registry.usage import endpoint_roles

        model = self._models.get_model(mv.name)
        out = []
        for e in self.stores.metadata.endpoints.list():
            roles = endpoint_roles(e, mv.name, [mv], model.latest_version, model.aliases)
            if roles:
                out.append(
                    {"name": e.name, "policy": e.policy, "model_uri": e.model_uri, "roles": roles}
                )
        return out


def _run_doc(run: RunRecord | None, run_id: str) -> dict[str, Any]:
    if run is None:
        return {"id": run_id, "missing": True}
    return {
        "id": run.id,
        "experiment": run.experiment,
        "name": run.name,
        "status": run.status,
        "user": run.user,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "git_commit": run.git_commit,
        "git_dirty": run.git_dirty,
        "missing": False,
    }


def _datasets(run: RunRecord | None) -> list[dict[str, Any]]:
    if run is None:
        return []
    return [
        {"digest": d.digest, "name": d.name, "role": d.role, "rows": d.rows} for d in run.datasets
    ]
