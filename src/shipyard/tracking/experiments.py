"""Experiments as a user manages them: list, show, create, rename, delete.

exps = Experiments(open_stores())
exps.rename("churn", "churn-2026")
exps.delete("scratch")           # its runs go too; refused while a model version came from one

Delete is permanent (MLflow only marks an experiment deleted and keeps it restorable): the
experiment, its runs and their params, tags, metrics and dataset inputs are removed in one
transaction, and an audit event records it. It is refused, naming what is in the way, while a
registered model version's source run is in the experiment (its lineage must stay whole), a
pipeline recorded one of its runs, a run of another experiment is a child of one, or one is
still RUNNING. Content-addressed artifact files stay in the artifact store: other runs,
versions or pipelines may hold the same bytes. `mark_deleted` and `restore` are MLflow's
delete and restore: a lifecycle stage, nothing removed.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING

# the records this capability returns (the edges import them from here)
from shipyard.stores.experiments import DeletedExperiment, ExperimentRecord

if TYPE_CHECKING:
    from shipyard.stores import Stores
    from shipyard.stores.records import RunRecord

__all__ = ["DeletedExperiment", "ExperimentRecord", "Experiments"]


class Experiments:
    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._experiments = stores.metadata.experiments

    def list(self) -> builtins.list[ExperimentRecord]:
        """Every experiment with its run counts, oldest first."""
        return self._experiments.list()

    def get(self, name: str) -> ExperimentRecord:
        return self._experiments.get(name)

    def get_by_id(self, experiment_id: int) -> ExperimentRecord:
        return self._experiments.by_id(experiment_id)

    def create(self, name: str, *, tags: Mapping[str, str] | None = None) -> ExperimentRecord:
        """A new, empty experiment (audited); AlreadyExistsError when the name is taken."""
        for key, value in (tags or {}).items():
            _check_tag(key, value)
        return self._experiments.create(name, actor=self._stores.actor, tags=tags)

    def set_tag(self, name: str, key: str, value: str) -> None:
        _check_tag(key, value)
        self._experiments.set_tag(name, key, value)

    def delete_tag(self, name: str, key: str) -> None:
        self._experiments.set_tag(name, key, None)

    def mark_deleted(self, name: str) -> ExperimentRecord:
        """MLflow's delete: the experiment and its runs stay, marked "deleted" until
        `restore` (audited). `delete` removes them for good."""
        return self._experiments.set_stage(name, "deleted", actor=self._stores.actor)

    def restore(self, name: str) -> ExperimentRecord:
        """Undo `mark_deleted` (audited)."""
        return self._experiments.set_stage(name, "active", actor=self._stores.actor)

    def recent_runs(self, name: str, limit: int = 10) -> builtins.list[RunRecord]:
        """The experiment's newest runs."""
        self._experiments.get(name)
        return self._stores.metadata.runs.search_runs(experiments=[name], limit=limit)

    def rename(self, name: str, new_name: str) -> ExperimentRecord:
        """Rename (audited); runs keep their ids, filters by the new name find them."""
        return self._experiments.rename(name, new_name, actor=self._stores.actor)

    def delete(self, name: str, *, reason: str | None = None) -> DeletedExperiment:
        """Delete the experiment and its runs, or raise ConflictError naming what uses them."""
        return self._experiments.delete(name, actor=self._stores.actor, reason=reason)


def _check_tag(key: str, value: str) -> None:
    from shipyard.errors import InvalidArgumentError

    if not key or len(key) > 250 or any(ord(c) < 32 for c in key):
        raise InvalidArgumentError(
            "an experiment tag's key must be 1 to 250 characters without control characters",
            field="key",
        )
    if "\x00" in value or len(value) > 5000:
        raise InvalidArgumentError(
            f"experiment tag {key!r}: the value must be at most 5000 characters, without NUL",
            field="value",
        )
