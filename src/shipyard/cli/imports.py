"""`shipyard import`: bring another tool's runs and models into shipyard."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shipyard.cli._common import new_app, print_json

app = new_app("""Copy runs and models from another tool into shipyard.

\b
Example:
  shipyard import mlflow --from http://mlflow.internal:5000
""")


@app.callback()
def import_() -> None:
    """Imports (a group: more sources join it)."""


@app.command("mlflow")
def mlflow(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="An MLflow tracking server (http://host:port) or its database "
            "(sqlite:///mlflow.db, postgresql://user@host/db).",
        ),
    ],
    artifacts_from: Annotated[
        str | None,
        typer.Option(
            help="For a database: where its mlflow-artifacts:/ files are (the server's URL, or "
            "its --artifacts-destination folder).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="A token for an MLflow server behind auth (what MLFLOW_TRACKING_TOKEN holds); "
            "for basic auth put user:password in the URL."
        ),
    ] = None,
    models: Annotated[
        bool, typer.Option(help="Also import registered models, versions and aliases.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Copy experiments, runs (params, metrics with their history, tags, dataset inputs),
    artifacts, registered models, versions and aliases from MLflow. Run it again at any
    time: what is already here is skipped, an interrupted import finishes where it stopped.

    \b
    Example:
      shipyard import mlflow --from http://localhost:5000
      shipyard import mlflow --from sqlite:///mlflow.db --artifacts-from ./mlartifacts
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from shipyard.stores import open_stores
    from shipyard.tracking.mlflow_import import import_mlflow, open_source

    opened = open_source(source, artifacts_from=artifacts_from, token=token)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),  # stdout stays the summary (or its JSON)
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"importing {phase}", total=total)
            bar.update(tasks[phase], completed=done, total=total)

        summary = import_mlflow(
            open_stores(), source, models=models, progress=progress, source=opened
        )
    if as_json:
        print_json(summary.to_dict())
        return
    for line in summary.lines():
        typer.echo(line)
