"""`shipyard runs`: list, show and compare tracked runs."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import fmt_value, new_app, print_json, table, ts

app = new_app("""List, show and compare runs; a metric's history.

\b
Examples:
  shipyard runs list --experiment churn --filter "metrics.auc > 0.9" --order-by "metrics.auc DESC"
  shipyard runs show 3f2a9c1b
  shipyard runs compare 3f2a9c1b 8d93a1e0
  shipyard runs metric 3f2a9c1b loss
""")


@app.command("list")
def list_runs(
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Only runs of this experiment.")
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="e.g. 'metrics.auc > 0.9 and params.model = \"rf\"'"),
    ] = None,
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", "-o", help='e.g. "metrics.auc DESC"')
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List runs, newest first (or as --order-by says).

    \b
    Example:
      shipyard runs list -e churn -f "metrics.auc > 0.9" -o "metrics.auc DESC" --limit 5
    """
    from shipyard.tracking import search_runs

    runs = search_runs(filter_, experiments=experiment, order_by=order_by, max_results=limit)
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    metric_keys = sorted({k for r in runs for k in r.metrics})[:6]
    rows = [
        [
            r.id[:8],
            r.experiment,
            r.name,
            r.status,
            ts(r.start_time),
            *[fmt_value(r.metrics[k]) if k in r.metrics else "" for k in metric_keys],
        ]
        for r in runs
    ]
    table(
        f"{len(runs)} run(s)",
        ["run", "experiment", "name", "status", "started", *metric_keys],
        rows,
    )


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one run: params, metrics, tags, datasets, artifacts, code and models.

    \b
    Example:
      shipyard runs show 3f2a9c1b --json
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores
    from shipyard.tracking import RunQueries

    stores = open_stores()
    run = RunQueries(stores).get(run_id)
    models = Registry(stores).versions_of_run(run.id)
    if as_json:
        doc = run.to_dict()
        doc["models"] = [{"name": m.name, "version": m.version} for m in models]
        print_json(doc)
        return
    rows = [
        ["id", run.id],
        ["experiment", run.experiment],
        ["name", run.name],
        ["status", run.status],
        ["started", ts(run.start_time)],
        ["ended", ts(run.end_time)],
        ["user", run.user],
        ["git", f"{run.git_commit or '-'}{' (dirty)' if run.git_dirty else ''}"],
        ["source", run.source or "-"],
    ]
    rows += [[f"param {k}", v] for k, v in sorted(run.params.items())]
    rows += [[f"metric {k}", fmt_value(v)] for k, v in sorted(run.metrics.items())]
    rows += [[f"tag {k}", v] for k, v in sorted(run.tags.items())]
    rows += [
        [f"dataset {d.role}", f"{d.name} rows={d.rows} sha256:{d.digest[:12]}"]
        for d in run.datasets
    ]
    rows += [
        [f"artifact {a.path}", f"{a.size} bytes sha256:{a.digest[:12]}"] for a in run.artifacts
    ]
    rows += [["model", f"models:/{m.name}/{m.version}"] for m in models]
    if run.error:
        rows.append(["error", run.error.strip().splitlines()[-1]])
    table(f"run {run.id[:8]}", ["field", "value"], rows)


@app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (prefixes work).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare runs side by side: every param and metric, differences marked with *.

    \b
    Example:
      shipyard runs compare 3f2a9c1b 8d93a1e0
    """
    from shipyard.errors import InvalidArgumentError
    from shipyard.stores import open_stores
    from shipyard.tracking import RunQueries

    if len(run_ids) < 2:
        raise InvalidArgumentError("compare needs at least two run ids")
    queries = RunQueries(open_stores())
    runs = [queries.get(r) for r in run_ids]
    if as_json:
        print_json(
            {
                "runs": [r.id for r in runs],
                "params": {
                    k: [r.params.get(k) for r in runs]
                    for k in sorted({k for r in runs for k in r.params})
                },
                "metrics": {
                    k: [r.metrics.get(k) for r in runs]
                    for k in sorted({k for r in runs for k in r.metrics})
                },
            }
        )
        return
    rows = []
    for kind, attr in (("param", "params"), ("metric", "metrics")):
        keys = sorted({k for r in runs for k in getattr(r, attr)})
        for k in keys:
            values = [getattr(r, attr).get(k) for r in runs]
            differ = len({str(v) for v in values}) > 1
            rows.append(
                [
                    f"{'*' if differ else ' '} {kind} {k}",
                    *["" if v is None else fmt_value(v) for v in values],
                ]
            )
    table("comparison", ["", *[r.id[:8] for r in runs]], rows)


@app.command("metric")
def metric(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    key: Annotated[str, typer.Argument(help="Metric name, e.g. loss.")],
    limit: Annotated[
        int, typer.Option(min=1, help="Table rows: the last this many points (JSON has all).")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A metric's history: every logged step, value and time, and a sparkline of all of them.

    \b
    Example:
      shipyard runs metric 3f2a9c1b loss
      shipyard runs metric 3f2a9c1b auc --json
    """
    from shipyard.errors import NotFoundError
    from shipyard.stores import open_stores
    from shipyard.tracking import RunQueries

    queries = RunQueries(open_stores())
    run = queries.get(run_id)
    points = queries.metric_history(run.id, key)
    if not points:
        raise NotFoundError.for_name(f"metric of run {run.id[:8]}", key, list(run.metrics))
    if as_json:
        print_json(
            {
                "run_id": run.id,
                "key": key,
                "points": [
                    {"step": p.step, "value": p.value, "timestamp": p.timestamp} for p in points
                ],
            }
        )
        return
    shown = points[-limit:]
    table(
        f"{key} of run {run.id[:8]}: {len(points)} point(s)"
        + (f", the last {len(shown)} shown" if len(shown) < len(points) else ""),
        ["step", "value", "time"],
        [[p.step, fmt_value(p.value), ts(p.timestamp)] for p in shown],
    )
    values = [p.value for p in points]
    finite = [v for v in values if v == v]
    low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
    typer.echo(f"{sparkline(values)}  min {fmt_value(low)}  max {fmt_value(high)}")


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 60) -> str:
    """One bar per value (the mean of each bucket beyond `width` values), scaled between the
    smallest and the largest; a value that is not a number is a space."""
    import math

    if len(values) > width:
        size = len(values) / width
        buckets = [values[int(i * size) : int((i + 1) * size)] for i in range(width)]
        values = [
            math.fsum(f) / len(f) if (f := [v for v in b if not math.isnan(v)]) else math.nan
            for b in buckets
        ]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(" ")
        elif span == 0:
            out.append(BARS[len(BARS) // 2])
        else:
            out.append(BARS[min(len(BARS) - 1, int((v - low) / span * len(BARS)))])
    return "".join(out)
