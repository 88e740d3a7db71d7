"""`shipyard pipeline`: run pipelines from a Python file, list their runs, trace outputs."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import new_app, print_json, table, ts

app = new_app("""Pipelines: cached, tracked steps from a Python file; local or on Ray.

\b
Example:
  shipyard pipeline run examples/churn_pipeline.py --param C=0.5
""")


@app.callback()
def pipeline() -> None:
    """Pipelines (a group)."""


@app.command("run")
def run(
    path: Annotated[str, typer.Argument(help="Python file that defines a @shipyard.Pipeline.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="key=value (repeat).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Which pipeline, if the file has several.")
    ] = None,
    executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rerun every step.")] = False,
    seed: Annotated[int | None, typer.Option(help="Pipeline seed (each step's derives).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run a pipeline; unchanged steps are reused from the cache. Exit 1 when a step fails.

    \b
    Examples:
      shipyard pipeline run examples/churn_pipeline.py
      shipyard pipeline run pipe.py --param C=2.0 --no-cache --executor ray
    """
    from shipyard.pipelines.loader import find_pipeline, load_module, parse_params

    module = load_module(path)
    pipe = find_pipeline(module, name)
    result = pipe.run(
        parse_params(pipe, param or []),
        cache=not no_cache,
        executor=executor,
        ray_address=ray_address,
        seed=seed,
        progress=not as_json,
        raise_on_failure=False,
        modules=[module],
    )
    if as_json:
        print_json(result.to_dict())
    else:
        done = len(result.executed)
        typer.echo(
            f"pipeline {result.name} {result.status.lower()}: {done} step(s) ran, "
            f"{len(result.cached)} cached (run {result.id[:12]}; "
            f"`shipyard pipeline show {result.id[:12]}`)"
        )
    if result.status != "FINISHED":
        typer.echo(f"error: {result.error}", err=True)
        raise typer.Exit(1)


@app.command("runs")
def runs(
    name: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List pipeline runs, newest first.

    \b
    Example:
      shipyard pipeline runs --name churn
    """
    from shipyard.pipelines.history import list_runs

    records = list_runs(name, limit)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table(
        "pipeline runs",
        ["id", "pipeline", "status", "executor", "started", "params"],
        [
            [r.id[:12], r.name, r.status, r.executor, ts(r.started_at), str(r.params)[:60]]
            for r in records
        ],
    )


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Pipeline run id (a prefix works).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a pipeline run: each step's status, outputs, cache use and error.

    \b
    Example:
      shipyard pipeline show 3f2a9c1b
    """
    from shipyard.pipelines.history import get_run

    record = get_run(run_id)
    if as_json:
        print_json(record.to_dict())
        return
    typer.echo(f"{record.name} {record.id} {record.status} ({record.executor}) {record.params}")
    table(
        None,
        ["step", "status", "outputs", "run", "error"],
        [
            [
                s.step,
                s.status + (f" (from {s.cached_from[:8]})" if s.cached_from else ""),
                " ".join(o["digest"][:12] for o in s.outputs),
                (s.run_id or "")[:12],
                (s.error or "").strip().splitlines()[-1][:80] if s.error else "",
            ]
            for s in record.steps
        ],
    )


@app.command("lineage")
def lineage_command(
    digest: Annotated[str, typer.Argument(help="Output digest (8+ characters).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Trace an output back: step, code hash, params, seed, git commit and inputs.

    \b
    Example:
      shipyard pipeline lineage 9b1c44e2a0f1
    """
    from shipyard.pipelines.lineage import lineage

    tree = lineage(digest)
    if as_json:
        print_json(tree)
        return

    def show_node(node: dict, arg: str, depth: int) -> None:  # type: ignore[type-arg]
        pad = "  " * depth
        typer.echo(
            f"{pad}{arg}{node['digest'][:12]} <- {node['step']} "
            f"(code {node['code_hash'][:10]}, seed {node['seed']}, params {node['params']}, "
            f"commit {(node['git_commit'] or '-')[:10]}, pipeline run {node['pipeline_run'][:8]})"
        )
        for name, child in node["inputs"].items():
            show_node(child, f"{name}=", depth + 1)

    show_node(tree, "", 0)
