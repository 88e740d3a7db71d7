"""Recovery after a crash (issue #13 item 10), on SQLite and PostgreSQL: pending ONNX
conversions are claimed by one process and resumed, runs of dead processes are marked FAILED,
stale temporary files are removed — by `shipyard admin doctor` and at server start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import shipyard as sy
from shipyard.config import Settings
from shipyard.registry import Registry, conversion
from shipyard.stores import Stores
from shipyard.stores import schema as t
from shipyard.stores.owners import current_owner
from shipyard.tracking.doctor import doctor


def dead_owner() -> str:
    """The owner string of a process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host, _pid, start, ns, boot = current_owner().split("|")
    return "|".join((host, str(proc.pid), start, ns, boot))


def other_host_owner() -> str:
    return "|".join(("elsewhere.example", "4242", "123", "pid:[1]", "abcdef12"))


def crashed_version(
    stores: Stores, model: Any, X: Any, *, claimed_by: str | None, attempts: int = 1, age_s=0.0
) -> int:
    """A version as a process killed mid-conversion leaves it: pending, claimed by that process."""
    mv = Registry(stores).register("churn", model, input_example=X[:5], onnx=False)
    c = t.model_versions.c
    with stores.metadata.db.write() as conn:
        conn.execute(
            t.model_versions.update()
            .where(c.name == "churn", c.version == mv.version)
            .values(
                onnx_status="pending",
                onnx_claimed_by=claimed_by,
                onnx_claimed_at=int((time.time() - age_s) * 1000) if claimed_by else None,
                onnx_attempts=attempts,
            )
        )
    return mv.version


def claim_row(stores: Stores, version: int) -> Any:
    c = t.model_versions.c
    with stores.metadata.db.read() as conn:
        return conn.execute(
            sa.select(c.onnx_status, c.onnx_claimed_by, c.onnx_attempts, c.onnx_detail).where(
                c.name == "churn", c.version == version
            )
        ).one()


# -- conversions -----------------------------------------------------------------------------------


def test_a_conversion_left_by_a_dead_process_is_resumed_by_doctor(
    settings: Settings, stores: Stores, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    v = crashed_version(stores, logreg, X, claimed_by=dead_owner())
    report = doctor(settings)
    assert [(c.version, c.action) for c in report.conversions] == [(v, "converted")]
    assert "is gone" in report.conversions[0].detail
    mv = Registry(stores).resolve(f"models:/churn/{v}")
    assert mv.onnx_status == "ok" and mv.onnx_digest is not None
    assert claim_row(stores, v).onnx_claimed_by is None
    assert report.healthy
    assert doctor(settings).conversions == []  # nothing left pending


def test_a_live_claim_is_left_alone_and_a_lapsed_one_of_another_host_taken_over(
    settings: Settings, stores: Stores, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    mine = crashed_version(stores, logreg, X, claimed_by=current_owner())
    fresh = crashed_version(stores, logreg, X, claimed_by=other_host_owner(), age_s=5)
    lapsed = crashed_version(stores, logreg, X, claimed_by=other_host_owner(), age_s=600)
    report = doctor(settings, dry_run=True)
    actions = {c.version: c.action for c in report.conversions}
    assert actions == {mine: "in progress", fresh: "in progress", lapsed: "would convert"}
    assert not report.healthy
    assert claim_row(stores, lapsed).onnx_status == "pending"  # a dry run changes nothing
    report = doctor(settings)
    actions = {c.version: c.action for c in report.conversions}
    assert actions == {mine: "in progress", fresh: "in progress", lapsed: "converted"}
    assert claim_row(stores, mine).onnx_claimed_by == current_owner()


def test_a_conversion_that_keeps_dying_is_marked_failed_with_the_reason(
    settings: Settings, stores: Stores, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    owner = dead_owner()
    v = crashed_version(stores, logreg, X, claimed_by=owner, attempts=conversion.MAX_ATTEMPTS)
    report = doctor(settings)
    assert [c.action for c in report.conversions] == ["failed"]
    row = claim_row(stores, v)
    assert row.onnx_status == "failed"
    assert "started 3 times and never finished" in row.onnx_detail
    assert f"pid {owner.split('|')[1]} is gone" in row.onnx_detail
    events = Registry(stores).audit("churn")
    assert any(e.action == "version.convert" and e.after["onnx"] == "failed" for e in events)


def test_two_processes_claiming_one_version_one_wins(stores: Stores, breast_cancer, logreg) -> None:  # type: ignore[no-untyped-def]
    X, _ = breast_cancer
    dead = dead_owner()
    v = crashed_version(stores, logreg, X, claimed_by=dead)
    rec = stores.metadata.recovery
    won = [
        rec.claim_conversion("churn", v, owner=who, lease_seconds=60, take_from=dead)
        for who in ("a|1|1|n|b", "b|2|2|n|b")
    ]
    assert won == [True, False]
    row = claim_row(stores, v)
    assert row.onnx_claimed_by == "a|1|1|n|b" and row.onnx_attempts == 2
    # a process shutting down gives its claim back without counting the attempt
    rec.release_conversion("churn", v, owner="a|1|1|n|b", failed=False)
    row = claim_row(stores, v)
    assert row.onnx_claimed_by is None and row.onnx_attempts == 1


def test_registering_claims_the_conversion_for_the_registering_process(
    stores: Stores, breast_cancer, logreg, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import shipyard.flavors

    X, _ = breast_cancer
    # the conversion waits until the claim is read, so it cannot have finished before
    release = threading.Event()
    convert_saved = shipyard.flavors.convert_saved

    def held(*args: Any, **kwargs: Any) -> Any:
        release.wait(60)
        return convert_saved(*args, **kwargs)

    monkeypatch.setattr(shipyard.flavors, "convert_saved", held)
    mv = Registry(stores).register("churn", logreg, input_example=X[:5])
    # the same transaction as the version: a server starting meanwhile cannot take it
    claimed = stores.metadata.recovery.pending_conversions()
    release.set()
    assert mv.onnx_status == "pending"
    assert [(p.version, p.claimed_by) for p in claimed] == [(1, current_owner())]
    Registry.wait_for_conversions(120)
    row = claim_row(stores, mv.version)
    assert (row.onnx_status, row.onnx_claimed_by) == ("ok", None)


def test_the_server_resumes_pending_conversions_at_start_up(
    settings: Settings, stores: Stores, breast_cancer, logreg
) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from shipyard.server.app import create_server_app

    X, _ = breast_cancer
    v = crashed_version(stores, logreg, X, claimed_by=dead_owner())
    app = create_server_app(settings.model_copy(update={"monitor_interval_seconds": 0}))
    with TestClient(app) as client:
        assert client.get("/v2/health/live").status_code == 200
        deadline = time.monotonic() + 120
        while claim_row(stores, v).onnx_status == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
    assert claim_row(stores, v).onnx_status == "ok"


# -- runs ------------------------------------------------------------------------------------------


def _set_owner(stores: Stores, run_id: str, owner: str | None, age_s: float) -> None:
    ms = int((time.time() - age_s) * 1000)
    with stores.metadata.db.write() as conn:
        conn.execute(
            t.runs.update()
            .where(t.runs.c.id == run_id)
            .values(owner=owner, heartbeat_at=ms if owner else None, start_time=ms)
        )


def test_doctor_fails_runs_of_dead_processes_and_never_a_live_one(
    settings: Settings, stores: Stores
) -> None:
    live = sy.start_run(experiment="e")  # this process: alive
    gone = sy.start_run(experiment="e")
    _set_owner(stores, gone.id, dead_owner(), 1)
    far_recent = sy.start_run(experiment="e")
    _set_owner(stores, far_recent.id, other_host_owner(), 600)
    far_stale = sy.start_run(experiment="e")
    _set_owner(stores, far_stale.id, other_host_owner(), 8 * 3600)
    rest = sy.start_run(experiment="e")  # as a REST client's run: no owner, a recent metric
    _set_owner(stores, rest.id, None, 8 * 3600)
    rest.log_metric("loss", 1.0)
    rest.flush()
    for run in (gone, far_recent, far_stale, rest):
        sy.tracking.runs._ACTIVE.discard(run)  # pretend they belong to other processes
    report = doctor(settings)
    failed = {r.run_id: r.reason for r in report.runs if r.action == "failed"}
    assert set(failed) == {gone.id, far_stale.id}
    assert failed[gone.id].startswith("process gone (")
    assert "no heartbeat or metric for 8.0 h" in failed[far_stale.id]
    assert report.runs_alive == 3
    assert sy.get_run(gone.id).status == "FAILED"
    assert "process gone" in (sy.get_run(gone.id).error or "")
    for run in (live, far_recent, rest):
        assert sy.get_run(run.id).status == "RUNNING"
    # a shorter staleness takes the quiet run of the other host too
    report = doctor(settings, stale_seconds=60)
    assert {r.run_id for r in report.runs} == {far_recent.id}
    live.end()


def test_a_run_renews_its_heartbeat(settings: Settings, stores: Stores) -> None:
    run = sy.start_run(experiment="e")
    first = sy.get_run(run.id)
    with stores.metadata.db.read() as conn:
        beat0, owner = conn.execute(
            sa.select(t.runs.c.heartbeat_at, t.runs.c.owner).where(t.runs.c.id == run.id)
        ).one()
    assert owner == current_owner() and beat0 == first.start_time
    time.sleep(0.01)
    assert stores.metadata.recovery.heartbeat_runs([run.id], owner=current_owner()) == 1
    assert stores.metadata.recovery.heartbeat_runs([run.id], owner="x|1|1|n|b") == 0
    run.end()
    assert stores.metadata.recovery.heartbeat_runs([run.id], owner=current_owner()) == 0


# -- temporary files and the CLI ---------------------------------------------------------------


def _aged(path: Path, age_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_doctor_cli_removes_stale_temp_files_and_keeps_young_ones(
    settings: Settings, stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    from shipyard.cli.main import main

    root = Path(settings.resolved_artifacts)
    old_put = _aged(root / "tmp" / ".put-abc123", 7200)
    young_put = _aged(root / "tmp" / ".put-young", 10)
    part = settings.predictions_dir / "endpoint=churn" / "date=2026-01-01" / "hour=03"
    old_log = _aged(part / ".part-1-abcd.parquet.tmp", 7200)
    kept_log = _aged(part / "part-1-abcd.parquet", 7200)  # a finished partition
    with pytest.raises(SystemExit) as exit_:
        main(["admin", "doctor", "--dry-run", "--json"])
    assert exit_.value.code == 1
    doc = json.loads(capsys.readouterr().out)
    assert {f["path"] for f in doc["temp_files"]} == {str(old_put), str(old_log)}
    assert old_put.exists()
    main(["admin", "doctor"])  # repaired: exit 0 (no SystemExit)
    out = capsys.readouterr().out
    assert f"temporary file {old_put} (4 bytes): removed" in out
    assert not old_put.exists() and not old_log.exists()
    assert young_put.exists() and kept_log.exists()
    main(["admin", "doctor"])
    assert "nothing to repair" in capsys.readouterr().out


def test_doctor_cli_bad_option_is_one_line_exit_2(settings: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard", "admin", "doctor", "--grace-minutes", "-5"],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --grace-minutes must be a number >= 0, not -5.0"
    ]


def test_doctor_on_a_home_without_a_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "typo"
    env = {k: v for k, v in os.environ.items() if k != "SHIPYARD_DB_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard", "admin", "doctor", "--dry-run"],
        capture_output=True,
        text=True,
        env={**env, "SHIPYARD_HOME": str(home)},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: no shipyard database at {home / 'shipyard.db'}; is SHIPYARD_HOME (or "
        "SHIPYARD_DB_URL) right?"
    ]
    assert not (home / "shipyard.db").exists()


def test_doctor_never_follows_a_symlinked_folder_out_of_the_store(
    settings: Settings, stores: Stores, tmp_path: Path
) -> None:
    """Someone with write access to the store points its temp folder and a prediction-log
    partition at another folder: doctor removes nothing there."""
    from shipyard.tracking.doctor import doctor

    victim = tmp_path / "victim"
    precious = _aged(victim / ".put-precious", 7200)
    also = _aged(victim / "date=x" / "hour=y" / ".part-1-abcd.parquet.tmp", 7200)
    tmp = Path(settings.resolved_artifacts) / "tmp"
    if tmp.exists():
        tmp.rmdir()
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.symlink_to(victim, target_is_directory=True)
    settings.predictions_dir.mkdir(parents=True, exist_ok=True)
    (settings.predictions_dir / "endpoint=zz").symlink_to(victim, target_is_directory=True)
    report = doctor(settings, dry_run=False)
    assert precious.exists() and also.exists()
    kept = [f for f in report.temp_files if f.action == "kept"]
    assert kept and all("outside the store" in (f.error or "") for f in kept)
