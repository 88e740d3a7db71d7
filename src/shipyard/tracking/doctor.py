"""Repair what a killed process leaves behind (`shipyard admin doctor`).

- Runs still RUNNING whose process is gone are marked FAILED with the reason. A run owned by a
  process on this host is checked directly (pid, start time); one of another host, or one driven
  over the REST API, only once it sent no heartbeat or metric for `run_stale_seconds` (default
  6 h; live runs beat every minute). A live run is never touched.
- ONNX conversions left pending are resumed or, after repeated crashes, marked failed
  (`registry/conversion.py`).
- Temporary files of the artifact store and of the prediction and label logs older than
  `temp_grace_seconds` (default 1 h, so a write in progress is kept) are removed.

    report = doctor(get_settings(), dry_run=True)
    print(report.to_dict())
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.stores.owners import describe, owner_alive

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.registry.conversion import Resumption
    from shipyard.stores import Stores


@dataclass(frozen=True)
class RunFinding:
    run_id: str
    name: str
    action: str  # failed | would fail | left (it came back to life meanwhile)
    reason: str


@dataclass(frozen=True)
class TempFinding:
    path: str
    bytes: int
    action: str  # removed | would remove | kept (an error says why)
    error: str | None = None


@dataclass
class DoctorReport:
    dry_run: bool
    runs: list[RunFinding] = field(default_factory=list)
    runs_alive: int = 0
    conversions: list[Resumption] = field(default_factory=list)
    temp_files: list[TempFinding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Nothing is left to repair (after a dry run: nothing was found)."""
        open_actions = ("would fail", "would convert", "would remove", "kept")
        actions = [r.action for r in self.runs] + [t.action for t in self.temp_files]
        actions += [c.action for c in self.conversions]
        return not any(a in open_actions for a in actions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "dry_run": self.dry_run,
            "runs": [r.__dict__ for r in self.runs],
            "runs_alive": self.runs_alive,
            "conversions": [c.to_dict() for c in self.conversions],
            "temp_files": [t.__dict__ for t in self.temp_files],
        }


def doctor(
    settings: Settings,
    *,
    dry_run: bool = False,
    stale_seconds: float | None = None,
    grace_seconds: float | None = None,
) -> DoctorReport:
    """Check runs, conversions and temporary files; repair them unless `dry_run`."""
    from shipyard.registry import conversion
    from shipyard.stores import open_stores

    stores = open_stores(settings)
    report = DoctorReport(dry_run=dry_run)
    stale = settings.run_stale_seconds if stale_seconds is None else stale_seconds
    report.runs, report.runs_alive = check_runs(stores, stale_seconds=stale, dry_run=dry_run)
    report.conversions = conversion.resume_pending(
        stores, lease_seconds=settings.conversion_lease_seconds, dry_run=dry_run
    )
    grace = settings.temp_grace_seconds if grace_seconds is None else grace_seconds
    report.temp_files = clean_temp_files(settings, stores, grace_seconds=grace, dry_run=dry_run)
    return report


def check_runs(
    stores: Stores, *, stale_seconds: float, dry_run: bool
) -> tuple[list[RunFinding], int]:
    """(runs found dead and what was done, how many RUNNING runs are alive)."""
    recovery = stores.metadata.recovery
    now = time.time()
    found: list[RunFinding] = []
    alive = 0
    for run in recovery.running_runs():
        reason = _dead_reason(run.owner, now - run.last_seen / 1000, stale_seconds)
        if reason is None:
            alive += 1
            continue
        if dry_run:
            found.append(RunFinding(run.id, run.name, "would fail", reason))
        elif recovery.fail_run(run, reason=reason):
            found.append(RunFinding(run.id, run.name, "failed", reason))
        else:
            alive += 1  # it ended, or beat, between the read and the update
    return found, alive


def _dead_reason(owner: str | None, idle_seconds: float, stale_seconds: float) -> str | None:
    state = owner_alive(owner)
    if state is True:
        return None
    if state is False:
        return f"process gone ({describe(owner)}); marked failed by shipyard admin doctor"
    if idle_seconds <= stale_seconds:
        return None
    who = f"run by {describe(owner)}" if owner else "no owning process recorded"
    return (
        f"no heartbeat or metric for {idle_seconds / 3600:.1f} h ({who}); "
        "marked failed by shipyard admin doctor"
    )


def clean_temp_files(
    settings: Settings, stores: Stores, *, grace_seconds: float, dry_run: bool
) -> list[TempFinding]:
    from shipyard.stores.predictions import PredictionLogStore

    paths: list[Path] = stores.artifacts.stale_temp_files(grace_seconds)
    for folder in (settings.predictions_dir, settings.labels_dir, settings.outcomes_dir):
        paths += PredictionLogStore(folder).stale_temp_files(grace_seconds)
    roots = [
        Path(p).resolve()
        for p in (
            settings.resolved_artifacts,
            settings.predictions_dir,
            settings.labels_dir,
            settings.outcomes_dir,
        )
    ]
    out = []
    for path in paths:
        real = path.parent.resolve() / path.name
        if not any(real.is_relative_to(root) for root in roots):  # a symlinked folder
            out.append(TempFinding(str(path), 0, "kept", f"leads outside the store, to {real}"))
            continue
        try:
            size = path.lstat().st_size
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            continue  # its writer finished or removed it meanwhile
        except OSError as exc:
            out.append(TempFinding(str(path), 0, "kept", f"{type(exc).__name__}: {exc}"))
            continue
        out.append(TempFinding(str(path), size, "would remove" if dry_run else "removed"))
    return out
