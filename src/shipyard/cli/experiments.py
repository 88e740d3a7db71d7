"""`shipyard experiments`: list, show, rename and delete experiments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli._common import confirm, fmt_value, new_app, print_json, table, ts

if TYPE_CHECKING:
    from shipyard.tracking.experiments import ExperimentRecord

app = new_app("""List, show, rename and delete experiments.

\b
Examples:
  shipyard experiments list
  shipyard experiments show churn
  shipyard experiments rename churn churn-2026
  shipyard experiments delete scratch --yes
""")


@app.command("list")
def list_experiments(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List experiments with their number of runs, oldest first.

    \b
    Example:
      shipyard experiments list --json
    """
    from shipyard.stores import open_stores
    from shipyard.tracking import Experiments

    found = Experiments(open_stores()).list()
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    table(
        f"{len(found)} experiment(s)",
        ["name", "runs", "statuses", "created", "last run"],
        [
            [_name(e), e.runs, _statuses(e.statuses), ts(e.created_at), ts(e.last_run_at)]
            for e in found
        ],
    )


def _name(e: ExperimentRecord) -> str:
    """The name, marked when an MLflow client deleted the experiment (it can restore it)."""
    return f"{e.name} (deleted)" if e.lifecycle_stage == "deleted" else e.name


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k.lower()} {v}" for k, v in sorted(statuses.items()))


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    limit: Annotated[int, typer.Option(min=1, help="Show this many recent runs.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one experiment: run counts by status and its most recent runs.

    \b
    Example:
      shipyard experiments show churn --limit 5
    """
    from shipyard.stores import open_stores
    from shipyard.tracking import Experiments

    exps = Experiments(open_stores())
    exp = exps.get(name)
    runs = exps.recent_runs(name, limit)
    if as_json:
        print_json({**exp.to_dict(), "recent_runs": [r.to_dict() for r in runs]})
        return
    typer.echo(
        f"experiment {_name(exp)}: {exp.runs} run(s) ({_statuses(exp.statuses) or 'none'}), "
        f"created {ts(exp.created_at)}, last run {ts(exp.last_run_at)}"
    )
    if runs:
        keys = sorted({k for r in runs for k in r.metrics})[:6]
        table(
            "recent runs",
            ["run", "name", "status", "started", *keys],
            [
                [r.id[:8], r.name, r.status, ts(r.start_time)]
                + [fmt_value(r.metrics[k]) if k in r.metrics else "" for k in keys]
                for r in runs
            ],
        )


@app.command("rename")
def rename(
    name: Annotated[str, typer.Argument(help="Current name.")],
    new_name: Annotated[str, typer.Argument(help="New name (must be free).")],
) -> None:
    """Rename an experiment; its runs keep their ids. Audited.

    \b
    Example:
      shipyard experiments rename churn churn-2026
    """
    from shipyard.stores import open_stores
    from shipyard.tracking import Experiments

    Experiments(open_stores()).rename(name, new_name)
    typer.echo(f"renamed experiment {name} -> {new_name}")


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (audit log).")] = None,
) -> None:
    """Delete an experiment with its runs, params, metrics and tags, permanently (unlike
    MLflow, nothing is kept to restore). Refused while a registered model version's source
    run is in it (its lineage), a pipeline recorded one of its runs, or a run is RUNNING.
    Artifact files stay (content-addressed, maybe shared). Asks first unless --yes.

    \b
    Example:
      shipyard experiments delete scratch --yes --reason "smoke tests"
    """
    from shipyard.stores import open_stores
    from shipyard.tracking import Experiments

    exps = Experiments(open_stores())
    exp = exps.get(name)
    confirm(f"delete experiment {name} and its {exp.runs} run(s) permanently?", yes)
    gone = exps.delete(name, reason=reason)
    typer.echo(f"deleted experiment {gone.name} and {gone.runs} run(s)")
