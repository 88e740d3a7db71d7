"""`shipyard gate`: quality gates of a registered model — set them, check a version, show."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shipyard.cli._common import new_app, print_json, table, ts

app = new_app("""Quality gates: a version must pass them before it gets an alias or serves.

\b
Example:
  shipyard gate set churn --metric roc_auc:0.01 --latency-p99-ms 5 --min-samples 500
  shipyard gate check churn 4 --data holdout.parquet --target churned
""")


@app.callback()
def gate() -> None:
    """Quality gates (a group)."""


@app.command("set")
def set_gates(
    name: Annotated[str, typer.Argument(help="Registered model.")],
    metric: Annotated[
        list[str] | None,
        typer.Option(help="METRIC:MAX_DROP vs the champion, e.g. roc_auc:0.01 (repeat)."),
    ] = None,
    latency_p99_ms: Annotated[
        float | None, typer.Option(help="p99 budget of a 1-row prediction, ms.")
    ] = None,
    fairness: Annotated[
        list[str] | None,
        typer.Option(help="COLUMN:METRIC:MIN, e.g. gender:demographic_parity_ratio:0.8."),
    ] = None,
    min_samples: Annotated[int | None, typer.Option(help="Minimum evaluation rows.")] = None,
    file: Annotated[
        str | None, typer.Option("--file", "-f", help="YAML list of gates instead.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every gate.")] = False,
) -> None:
    """Replace the gates of a model (audited).

    \b
    Examples:
      shipyard gate set churn --metric roc_auc:0.01 --latency-p99-ms 5
      shipyard gate set churn --fairness gender:demographic_parity_ratio:0.8 --min-samples 500
      shipyard gate set churn --clear
    """
    from shipyard.errors import InvalidArgumentError
    from shipyard.pipelines import gates as g

    docs: list[Any] = []
    if file:
        from pathlib import Path

        import yaml

        try:
            loaded = yaml.safe_load(Path(file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidArgumentError(f"cannot read gates from {file}: {exc}") from exc
        if not isinstance(loaded, list):
            raise InvalidArgumentError(f"{file}: expected a list of gates")
        docs.extend(loaded)
    for text in metric or []:
        parts = text.split(":")
        if len(parts) != 2:
            raise InvalidArgumentError(f"--metric takes METRIC:MAX_DROP, not {text!r}")
        docs.append(g.MetricGate(parts[0], max_drop=_number(parts[1], "--metric")))
    if latency_p99_ms is not None:
        docs.append(g.LatencyGate(p99_ms=latency_p99_ms))
    for text in fairness or []:
        parts = text.split(":")
        if len(parts) != 3:
            raise InvalidArgumentError(f"--fairness takes COLUMN:METRIC:MIN, not {text!r}")
        docs.append(g.FairnessGate(parts[0], parts[1], _number(parts[2], "--fairness")))
    if min_samples is not None:
        docs.append(g.MinSamples(min_samples))
    if not docs and not clear:
        raise InvalidArgumentError("give at least one gate (or --clear); see --help")
    saved = g.configure(name, [] if clear else docs)
    typer.echo(f"{name}: {len(saved)} gate(s) set" if saved else f"{name}: gates removed")


def _number(text: str, option: str) -> float:
    from shipyard.errors import InvalidArgumentError

    try:
        return float(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"{option}: {text!r} is not a number") from exc


@app.command("check")
def check(
    name: Annotated[str, typer.Argument(help="Registered model.")],
    version: Annotated[int, typer.Argument(help="Version to check.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Held-out data (Parquet/CSV).")],
    target: Annotated[str, typer.Option("--target", "-t", help="Label column.")],
    trusted: Annotated[bool, typer.Option(help="Allow pickle-based models.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a version against its model's gates; the report is stored with the version.
    Exit 0 when every gate passed, 1 otherwise.

    \b
    Example:
      shipyard gate check churn 4 --data holdout.parquet --target churned
    """
    from shipyard.monitoring.sources import read_table
    from shipyard.pipelines import gates as g

    report = g.check(name, version, read_table(data), target=target, trusted=trusted)
    if as_json:
        print_json(report.to_dict())
    else:
        _show(report.to_dict())
    if not report.passed:
        raise typer.Exit(1)


def _show(report: dict[str, Any]) -> None:
    champion = f"champion v{report['champion']}" if report["champion"] else "no champion"
    table(
        f"{report['model']} v{report['version']} on {report['rows']:,} rows ({champion})",
        ["gate", "passed", "value", "threshold", "detail"],
        [
            [
                r["name"],
                "yes" if r["passed"] else "NO",
                "-" if r["value"] is None else f"{r['value']:.4g}",
                "-" if r["threshold"] is None else f"{r['threshold']:.4g}",
                r["detail"],
            ]
            for r in report["gates"]
        ],
    )
    typer.echo("passed" if report["passed"] else "FAILED: this version may not get an alias")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Registered model.")],
    version: Annotated[int | None, typer.Argument(help="Show this version's report.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's gates, or a version's latest gate report.

    \b
    Examples:
      shipyard gate show churn
      shipyard gate show churn 4 --json
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    registry = Registry(open_stores())
    if version is None:
        gates = registry.gates(name)
        if as_json:
            print_json(gates)
            return
        if not gates:
            typer.echo(f"{name} has no quality gates")
            return
        table(
            f"gates of {name}",
            ["kind", "settings"],
            [
                [d["kind"], ", ".join(f"{k}={v}" for k, v in d.items() if k != "kind")]
                for d in gates
            ],
        )
        return
    record = registry.gate_report(name, version)
    if record is None:
        from shipyard.errors import NotFoundError

        raise NotFoundError(
            f"{name} version {version} has no gate report; run `shipyard gate check {name} "
            f"{version} --data … --target …`"
        )
    if as_json:
        print_json(record.to_dict())
        return
    typer.echo(f"checked {ts(record.created_at)} by {record.created_by}")
    _show(record.report)
