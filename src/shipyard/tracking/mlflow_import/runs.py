"""Experiments and runs from MLflow into shipyard's tracking store.

A run keeps its MLflow id. Its metadata (params, tags, every metric point, dataset inputs)
lands in one transaction with a pending tag; its artifact files follow; then the pending tag
goes. So a second import skips every run without a pending tag, and one killed half way
finishes the files of the run it was on (files already stored are not fetched again). A run
that was still running in MLflow when it was copied, and has a new status or end time there
now, is copied again over the first copy (in one transaction too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError
from shipyard.stores.records import ArtifactRecord
from shipyard.stores.run_imports import CopiedRun, CopiedState
from shipyard.tracking.experiments import Experiments
from shipyard.tracking.mlflow_import.artifacts import safe_path
from shipyard.tracking.remote import ForeignDataset

if TYPE_CHECKING:
    from shipyard.stores import Stores
    from shipyard.stores.mlflow_records import MlflowExperiment, MlflowRun
    from shipyard.tracking.mlflow_import.sources import MlflowSource
    from shipyard.tracking.mlflow_import.summary import ImportSummary, Progress

IMPORTED_FROM = "shipyard.imported_from"  # where a run came from (kept)
PENDING = "shipyard.import_pending"  # a run whose artifacts are not all copied yet
DEFAULT = ("0", "default")  # MLflow's experiment 0 is shipyard's "default" (as compat does)
_STATUSES = {"SCHEDULED": "RUNNING"}  # shipyard has no SCHEDULED


class RunImport:
    def __init__(
        self, stores: Stores, source: MlflowSource, summary: ImportSummary, progress: Progress
    ) -> None:
        self.stores = stores
        self.source = source
        self.summary = summary
        self.progress = progress
        self._store = stores.metadata.run_imports

    def experiments(self) -> dict[str, str]:
        """MLflow experiment id → shipyard experiment name, each made if missing."""
        names: dict[str, str] = {}
        for exp in self.source.experiments():
            name = DEFAULT[1] if exp.id == DEFAULT[0] else exp.name
            try:
                made = self._store.ensure_experiment(
                    name,
                    created_at=exp.created_at,
                    actor=self.stores.actor,
                    origin=self.source.label,
                )
            except ShipyardError as exc:
                why = f"{exc.message.splitlines()[0]}; its runs are not imported"
                self.summary.skip("experiments", name, why)
                continue
            names[exp.id] = name
            if not made:
                self.summary.unchanged["experiments"] += 1
                continue
            self.summary.copied["experiments"] += 1
            if exp.lifecycle_stage == "deleted":
                Experiments(self.stores).mark_deleted(name)
            self._experiment_tags(name, exp)
        return names

    def _experiment_tags(self, name: str, exp: MlflowExperiment) -> None:
        """Copy the experiment's tags (its note, a team…), each on its own: a refused one is
        skipped and said so."""
        experiments = Experiments(self.stores)
        for key, value in exp.tags.items():
            try:
                experiments.set_tag(name, key, value)
            except ShipyardError as exc:
                self.summary.skip("experiment tags", f"{exp.name}: {key}", exc.message)

    def runs(self, experiments: dict[str, str]) -> None:
        done = 0
        self.progress("runs", 0, None)
        for page in self.source.runs(list(experiments)):
            found = self._store.states(
                [r.id for r in page], imported_key=IMPORTED_FROM, pending_key=PENDING
            )
            for run in page:
                self._one(run, experiments, found.get(run.id))
                done += 1
                self.progress("runs", done, None)

    def _one(self, run: MlflowRun, experiments: dict[str, str], found: CopiedState | None) -> None:
        """Copy a new run, finish a half-copied one, update one that changed in MLflow since
        (it was running: a new status or end time), skip the rest."""
        if run.experiment_id not in experiments:
            self.summary.skip(
                "runs", run.id, f"its experiment {run.experiment_id} was not imported"
            )
            return
        if found is not None and found.imported_from is None:
            self.summary.skip("runs", run.id, "a shipyard run with this id exists already")
            return
        changed = found is not None and (found.status, found.end_time) != (
            _STATUSES.get(run.status, run.status),
            run.end_time,
        )
        if found is not None and not found.pending and not changed:
            self.summary.unchanged["runs"] += 1
            return
        try:
            if found is None or changed:
                copied = self._copied(run, experiments[run.experiment_id])
                self._store.write_run(copied, replace=found is not None)
            self.summary.copied[_counted(found, changed)] += 1
            self._artifacts(run)
            self._store.finish(run.id, pending_key=PENDING, stage=run.lifecycle_stage)
        except ShipyardError as exc:
            self.summary.skip("runs", run.id, exc.message.splitlines()[0])

    def _copied(self, run: MlflowRun, experiment: str) -> CopiedRun:
        tags = dict(run.tags)
        datasets = [
            ForeignDataset(
                d.name, d.digest, d.source_type, d.source, d.schema, d.profile, d.context
            ).record()
            for d in run.datasets
        ]
        return CopiedRun(
            id=run.id,
            experiment=experiment,
            name=run.name or tags.get("mlflow.runName", ""),
            user=run.user or tags.get("mlflow.user", "") or "unknown",
            status=_STATUSES.get(run.status, run.status),
            start_time=run.start_time,
            end_time=run.end_time,
            source=tags.get("mlflow.source.name"),
            git_commit=tags.get("mlflow.source.git.commit"),
            parent_run_id=tags.get("mlflow.parentRunId"),
            params=run.params,
            tags=tags | {IMPORTED_FROM: self.source.label, PENDING: "artifacts"},
            metrics=self.source.metric_history(run),
            datasets=datasets,
        )

    def _artifacts(self, run: MlflowRun) -> None:
        """Copy the run's files, those already stored by an interrupted import excepted."""
        if not run.artifact_uri:
            return
        reader = self.source.artifacts.reader(run.artifact_uri)
        if reader is None:
            self.summary.skip(
                "run artifacts", run.id, self.source.artifacts.why_not(run.artifact_uri)
            )
            return
        runs = self.stores.metadata.runs
        have = {a.path: a.size for a in runs.get_run(run.id).artifacts}
        for item in reader.list(run.artifact_uri):
            if item.path in have and have[item.path] == item.size:
                continue
            try:
                path = safe_path(item.path)
                with reader.open(run.artifact_uri, item.path) as src:
                    digest, size = self.stores.artifacts.put_stream(src)
            except ShipyardError as exc:
                self.summary.skip("artifacts", f"{run.id}/{item.path}", exc.message)
                continue
            runs.log_artifact(run.id, ArtifactRecord(path, digest, size))
            self.summary.copied["artifacts"] += 1


def _counted(found: CopiedState | None, changed: bool) -> str:
    if found is None:
        return "runs"
    return "runs updated" if changed else "runs resumed"
