"""`shipyard batch`: score files of any size with a registered model."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import new_app, print_json

app = new_app("""Batch scoring: Parquet/CSV of any size, in chunks, in parallel, resumable.

\b
Example:
  shipyard batch score --model churn@champion --input data/ --output preds/
""")


@app.callback()
def batch() -> None:
    """Batch jobs (a group: more commands join it)."""


TimestampOption = Annotated[
    str | None,
    typer.Option(
        help="Event-time column, for a model whose version names a feature service "
        "(features are joined as of each row's time). Default: event_timestamp."
    ),
]
ProbaOption = Annotated[
    bool | None,
    typer.Option(
        "--proba/--no-proba",
        help="Class probabilities: one column _proba_<class> per class. Default: when the "
        "model has predict_proba; --proba requires them (an error for a model without), "
        "--no-proba leaves them out.",
    ),
]


@app.command("score")
def score(
    model: Annotated[str, typer.Option("--model", "-m", help="e.g. models:/churn@champion")],
    input_path: Annotated[str, typer.Option("--input", "-i", help="A file or a folder.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the predictions.")],
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows per chunk (bounds memory).")
    ] = 100_000,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes (default: cores).")] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", "-k", help="Input columns to copy (repeat; default all)."),
    ] = None,
    trusted: Annotated[bool, typer.Option(help="Allow pickle-based models.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace another job's output.")] = False,
    executor: Annotated[str, typer.Option(help="local (processes) or ray (Ray Data).")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray).")
    ] = None,
    timestamp: TimestampOption = None,
    proba: ProbaOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score files; a rerun after a crash skips the chunks already written. Output: the
    kept input columns, _prediction, _proba_<class> per class (classifiers) and
    _model_version.

    \b
    Example:
      shipyard batch score --model churn@champion --input data/ --output preds/ --keep id
      shipyard batch score -m churn@champion -i data/ -o preds/ --executor ray
      shipyard batch score -m iris@champion -i data.csv -o preds/ --proba
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from shipyard.batch import score_files
    from shipyard.config import get_settings

    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeRemainingColumn(),
        transient=as_json,
    ) as bar:
        task = bar.add_task("score", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = score_files(
            get_settings(),
            model,
            input_path,
            output,
            chunk_rows=chunk_rows,
            workers=workers,
            keep=keep,
            trusted=trusted,
            overwrite=overwrite,
            progress=progress,
            executor=executor,
            ray_address=ray_address,
            timestamp=timestamp,
            proba=proba,
        )
    if as_json:
        print_json(result.to_dict())
        return
    typer.echo(
        f"scored {result.rows:,} rows with {result.model} in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s); {result.skipped_chunks} of "
        f"{result.chunks} chunks were already done; output: {result.output}"
    )
