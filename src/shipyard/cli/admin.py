"""`shipyard admin`: operate a shipyard installation (for now: `doctor`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli._common import new_app, print_json

if TYPE_CHECKING:
    from shipyard.tracking.doctor import DoctorReport

app = new_app("""Operate a shipyard installation.

\b
Examples:
  shipyard admin doctor --dry-run     # what a crash left behind
  shipyard admin doctor               # repair it
""")


@app.callback()
def _group() -> None:
    """Keeps `admin` a group while `doctor` is its only command."""


@app.command("doctor")
def doctor_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    stale_hours: Annotated[
        float | None,
        typer.Option(
            help="A run of another host (or of a REST client) is stale after this many hours "
            "without a heartbeat or metric (default: SHIPYARD_RUN_STALE_SECONDS, 6 h).",
        ),
    ] = None,
    grace_minutes: Annotated[
        float | None,
        typer.Option(
            help="Keep temporary files younger than this (default: "
            "SHIPYARD_TEMP_GRACE_SECONDS, 60 min).",
        ),
    ] = None,
) -> None:
    """Repair what a killed process left behind: runs stuck RUNNING whose process is gone
    (marked FAILED with the reason; live runs are never touched), ONNX conversions left
    pending (resumed here; marked failed after 3 unfinished attempts) and stale temporary
    files of the artifact store and prediction log. Exit 0 when healthy or repaired, 1 when a
    dry run found something (or something could not be repaired).

    \b
    Example:
      shipyard admin doctor --dry-run --json
      shipyard admin doctor --stale-hours 2
    """
    from shipyard.config import get_settings
    from shipyard.errors import InvalidArgumentError
    from shipyard.tracking.doctor import doctor

    for value, option in ((stale_hours, "--stale-hours"), (grace_minutes, "--grace-minutes")):
        if value is not None and not value >= 0:
            raise InvalidArgumentError(f"{option} must be a number >= 0, not {value}")
    settings = get_settings()
    default_db = settings.home / "shipyard.db"
    if settings.db_url is None and not default_db.exists():  # a mistyped SHIPYARD_HOME
        raise InvalidArgumentError(
            f"no shipyard database at {default_db}; is SHIPYARD_HOME (or SHIPYARD_DB_URL) right?"
        )
    report = doctor(
        settings,
        dry_run=dry_run,
        stale_seconds=None if stale_hours is None else stale_hours * 3600,
        grace_seconds=None if grace_minutes is None else grace_minutes * 60,
    )
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report)
    if not report.healthy:
        raise typer.Exit(1)


def _print(report: DoctorReport) -> None:
    for r in report.runs:
        typer.echo(f"run {r.run_id[:8]} ({r.name}): {r.action} — {r.reason}")
    for c in report.conversions:
        typer.echo(f"ONNX conversion of {c.name}/{c.version}: {c.action} — {c.detail}")
    for f in report.temp_files:
        extra = f" — {f.error}" if f.error else ""
        typer.echo(f"temporary file {f.path} ({f.bytes} bytes): {f.action}{extra}")
    found = len(report.runs) + len(report.conversions) + len(report.temp_files)
    summary = "nothing to repair" if not found else f"{found} finding(s)"
    if report.dry_run and not report.healthy:
        summary += "; run without --dry-run to repair"
    typer.echo(f"{summary}; {report.runs_alive} live run(s) left alone")
