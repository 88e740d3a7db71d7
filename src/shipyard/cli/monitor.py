"""`shipyard monitor`: drift and data quality of files or of an endpoint's live traffic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from shipyard.cli._common import new_app, print_json, table

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.monitoring import DriftReport, Profile, QualityReport
    from shipyard.monitoring.alerts import AlertRules
    from shipyard.monitoring.drift import Correction
    from shipyard.monitoring.performance import Task

app = new_app("""Drift and data quality: files against files, or an endpoint's traffic against
the data its model was trained on.

\b
Examples:
  shipyard monitor drift --reference train.parquet --current today.parquet
  shipyard monitor drift --endpoint churn --window 1h --json
""")


@app.callback()
def monitor() -> None:
    """Drift and data quality (a group: more commands join it)."""


Reference = Annotated[str | None, typer.Option(help="Reference data (.parquet or .csv).")]
Current = Annotated[str | None, typer.Option(help="Current data (.parquet or .csv).")]
Endpoint = Annotated[str | None, typer.Option(help="Compare this endpoint's logged traffic.")]
Window = Annotated[str, typer.Option(help="With --endpoint: how far back, e.g. 1h, 30m, 7d.")]
Columns = Annotated[
    list[str] | None, typer.Option("--column", "-c", help="Only these columns (repeat).")
]
Alpha = Annotated[float, typer.Option(help="Significance level after correction.")]
CorrectionOpt = Annotated[str, typer.Option(help="holm, bonferroni, bh or none.")]
MinEffect = Annotated[float | None, typer.Option(help="Also require this effect size.")]


@dataclass
class _Comparison:
    """What `_compare` found: the drift and quality reports, both samples as profiles and (when
    there are rows) as frames, and a description of the source."""

    report: DriftReport
    quality: QualityReport
    reference: Profile
    current: Profile
    source: dict[str, object]
    reference_rows: pd.DataFrame | None  # None: the reference is a training profile
    current_rows: pd.DataFrame


def _compare(
    reference: str | None,
    current: str | None,
    endpoint: str | None,
    window: str,
    column: list[str] | None,
    alpha: float,
    correction: str,
    min_effect: float | None,
) -> _Comparison:
    """Drift and quality of files, or of an endpoint's window, against the reference."""
    from shipyard.errors import InvalidArgumentError
    from shipyard.monitoring import Profile, check_quality, detect_drift
    from shipyard.monitoring.sources import (
        endpoint_reference,
        endpoint_window,
        parse_window,
        read_table,
    )

    if correction not in ("holm", "bonferroni", "bh", "none"):
        raise InvalidArgumentError(
            f"--correction must be holm, bonferroni, bh or none, not {correction!r}"
        )
    corr = cast("Correction", correction)
    source: dict[str, object]
    if endpoint is not None:
        if reference is not None and current is not None:
            raise InvalidArgumentError("give --endpoint, or --reference with --current, not both")
        from shipyard.config import get_settings
        from shipyard.rollout import Deployments
        from shipyard.stores import open_stores

        settings = get_settings()
        seconds = parse_window(window)
        stores = open_stores(settings)
        Deployments(stores).get(endpoint)  # an unknown name fails first, with a suggestion
        ref_df: pd.DataFrame | None = None
        if reference is not None:
            ref_df = read_table(reference)
            ref: Profile = Profile.from_frame(ref_df)
            version = None
            cur_df = endpoint_window(settings, endpoint, seconds)
            columns = column or [c for c in ref.columns if c in cur_df.columns]
        else:
            ref, columns, version = endpoint_reference(stores, endpoint)
            columns = column or columns
            cur_df = endpoint_window(settings, endpoint, seconds)
        source = {
            "endpoint": endpoint,
            "window": window,
            "current_rows": len(cur_df),
            "model_version": version,
        }
        report = detect_drift(
            ref, cur_df, columns=columns, alpha=alpha, correction=corr, min_effect=min_effect
        )
    else:
        if reference is None or current is None:
            raise InvalidArgumentError("give --reference and --current files, or --endpoint NAME")
        ref_df = read_table(reference)
        cur_df = read_table(current)
        ref = Profile.from_frame(ref_df)
        columns = column or [str(c) for c in ref_df.columns if c in cur_df.columns]
        source = {
            "reference": reference,
            "current": current,
            "reference_rows": len(ref_df),
            "current_rows": len(cur_df),
        }
        report = detect_drift(
            ref_df, cur_df, columns=columns, alpha=alpha, correction=corr, min_effect=min_effect
        )
    window_profile = ref.empty_like()
    window_profile.observe(cur_df)
    quality = check_quality(ref, window_profile, [str(c) for c in cur_df.columns])
    return _Comparison(report, quality, ref, window_profile, source, ref_df, cur_df)


@app.command("drift")
def drift(
    reference: Reference = None,
    current: Current = None,
    endpoint: Endpoint = None,
    window: Window = "1h",
    column: Columns = None,
    alpha: Alpha = 0.05,
    correction: CorrectionOpt = "holm",
    min_effect: MinEffect = None,
    multivariate: Annotated[
        bool, typer.Option(help="Also run a domain classifier over all columns (files only).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Test every shared column for drift and report data quality.

    Exit code 0 either way; read `drifted_columns` (or the table) for the verdict.

    \b
    Examples:
      shipyard monitor drift --reference train.parquet --current live.csv --json
      shipyard monitor drift --endpoint churn --window 1h
    """
    found = _compare(reference, current, endpoint, window, column, alpha, correction, min_effect)
    report, quality = found.report, found.quality
    doc = {**report.to_dict(), "source": found.source, "quality": quality.to_dict()}
    if multivariate:
        from shipyard.errors import InvalidArgumentError
        from shipyard.monitoring.multivariate import domain_classifier

        if found.reference_rows is None or current is None or endpoint is not None:
            raise InvalidArgumentError("--multivariate needs --reference and --current files")
        doc["multivariate"] = domain_classifier(
            found.reference_rows, found.current_rows, columns=list(report.columns), alpha=alpha
        ).to_dict()
    if as_json:
        print_json(doc)
        return
    if multivariate:
        mv = doc["multivariate"]
        typer.echo(
            f"multivariate (domain classifier): AUC {mv['auc']:.3f}, p={mv['p_value']:.3g}"
            f" -> {'DRIFT' if mv['drifted'] else 'no drift'}"
        )
    rows = []
    for name, col in report.columns.items():
        q = quality.columns.get(name)
        rows.append(
            [
                ("DRIFT " if col.drifted else "") + name,
                col.test,
                f"{col.statistic:.4g}",
                f"{col.p_adjusted:.3g}",
                f"{col.effect_metric}={col.effect_size:.3g}",
                "" if col.psi is None else f"{col.psi:.3g}",
                str(q.violations) if q else "",
            ]
        )
    table(
        f"drift: {len(report.drifted_columns)} of {len(report.columns)} column(s) drifted "
        f"(alpha {alpha}, {correction})",
        ["column", "test", "statistic", "adj. p", "effect", "PSI", "quality violations"],
        rows,
    )


@app.command("report")
def report_command(
    out: Annotated[str, typer.Option(help="Where to write the HTML page.")],
    reference: Reference = None,
    current: Current = None,
    endpoint: Endpoint = None,
    window: Window = "1h",
    column: Columns = None,
    alpha: Alpha = 0.05,
    correction: CorrectionOpt = "holm",
    min_effect: MinEffect = None,
    multivariate: Annotated[
        bool,
        typer.Option(
            help="Also run a domain classifier over whole rows (needs reference rows: files, "
            "or --endpoint with --reference FILE)."
        ),
    ] = True,
    json_out: Annotated[
        str | None, typer.Option(help="Also write the result as JSON here.")
    ] = None,
) -> None:
    """Write a self-contained HTML drift report (works offline; distributions overlaid on axes,
    the multivariate verdict and, for an endpoint, live accuracy from the labels sent back).

    \b
    Examples:
      shipyard monitor report --reference train.parquet --current live.parquet --out drift.html
      shipyard monitor report --endpoint churn --window 1d --out churn.html --json-out churn.json
    """
    from pathlib import Path

    from shipyard.monitoring.report import multivariate_section, render_html

    found = _compare(reference, current, endpoint, window, column, alpha, correction, min_effect)
    report = found.report
    doc = {**report.to_dict(), "source": found.source, "quality": found.quality.to_dict()}
    if multivariate:
        doc["multivariate"] = multivariate_section(
            found.reference_rows, found.current_rows, list(report.columns), alpha
        )
    if endpoint is not None:
        doc["accuracy"] = _live_accuracy(endpoint, found.current_rows, "auto")
    page = render_html(
        report,
        found.quality,
        found.reference,
        found.current,
        title=f"Drift report: {endpoint}" if endpoint else f"Drift report: {current}",
        source=found.source,
        multivariate=doc.get("multivariate"),
        accuracy=doc.get("accuracy"),
    )
    Path(out).write_text(page, encoding="utf-8")
    if json_out:
        Path(json_out).write_text(json.dumps(doc, indent=2, allow_nan=False))
    typer.echo(
        f"wrote {out} ({len(page) / 1024:.0f} kB): {len(report.drifted_columns)} of "
        f"{len(report.columns)} column(s) drifted"
    )


def _live_accuracy(endpoint: str, predictions: pd.DataFrame, task: str) -> dict[str, Any]:
    """Live accuracy of an endpoint's predictions from the labels sent back for them."""
    from shipyard.config import get_settings
    from shipyard.monitoring.performance import live_accuracy
    from shipyard.monitoring.sources import endpoint_labels

    labels = endpoint_labels(get_settings(), endpoint)
    return live_accuracy(predictions, labels, cast("Task", task), endpoint=endpoint)


@app.command("labels")
def labels(
    path: Annotated[str, typer.Argument(help="CSV or Parquet with request_id, label [, row].")],
    endpoint: Annotated[str, typer.Option(help="The endpoint that made the predictions.")],
) -> None:
    """Import late labels for logged predictions.

    \b
    Example:
      shipyard monitor labels outcomes.csv --endpoint churn
    """
    from shipyard.config import get_settings
    from shipyard.monitoring.sources import import_labels, unissued_request_ids
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    settings = get_settings()
    Deployments(open_stores(settings)).get(endpoint)
    n = import_labels(settings, endpoint, path)
    unknown = unissued_request_ids(settings, endpoint, path)
    note = f"; {unknown} request id(s) were never issued by {endpoint}" if unknown else ""
    typer.echo(f"imported {n} label(s) for endpoint {endpoint}{note}")


@app.command("accuracy")
def accuracy(
    endpoint: Annotated[str, typer.Option(help="The endpoint to score.")],
    window: Annotated[str, typer.Option(help="Predictions from how far back, e.g. 1d.")] = "1d",
    task: Annotated[str, typer.Option(help="auto, classification or regression.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Live quality from late labels: accuracy/F1/AUC or MAE/RMSE, per model version.

    \b
    Example:
      shipyard monitor accuracy --endpoint churn --window 7d --json
    """
    from shipyard.config import get_settings
    from shipyard.errors import InvalidArgumentError
    from shipyard.monitoring.sources import endpoint_window, parse_window
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    if task not in ("auto", "classification", "regression"):
        raise InvalidArgumentError("--task must be auto, classification or regression")
    settings = get_settings()
    Deployments(open_stores(settings)).get(endpoint)
    predictions = endpoint_window(settings, endpoint, parse_window(window))
    doc = {"endpoint": endpoint, "window": window, **_live_accuracy(endpoint, predictions, task)}
    if as_json:
        print_json(doc)
        return
    for what, reason in doc["not_computable"].items():
        if reason != doc["overall"].get("reason"):  # that one is said below the table
            typer.echo(f"{'live quality' if what == 'all' else what} not computable: {reason}")
    if "all" in doc["not_computable"]:
        return
    rows = [
        [
            v,
            *(
                f"{m[k]:.4g}" if isinstance(m.get(k), float) else _cell(m, k)
                for k in ("n", "accuracy", "f1", "auc", "mae", "rmse")
            ),
        ]
        for v, m in [("all", doc["overall"]), *doc["by_version"].items()]
    ]
    table(
        f"{endpoint}: {doc['labelled_rows']} labelled of {len(predictions)} predicted rows "
        f"({doc['task']})",
        ["version", "n", "accuracy", "f1", "auc", "mae", "rmse"],
        rows,
    )
    for v, m in [("all", doc["overall"]), *doc["by_version"].items()]:
        if m.get("reason"):
            typer.echo(f"{v}: {m['reason']}", err=True)


def _cell(metrics: dict[str, Any], key: str) -> str:
    """A table cell: blank when the task has no such metric, "n/a" when it was not computable."""
    if key not in metrics:
        return ""
    return "n/a" if metrics[key] is None else str(metrics[key])


alert_app = new_app("""Alert rules per endpoint: a condition on a monitored metric, held for some
windows, with a webhook and/or a command (e.g. a retraining pipeline) as the action.

\b
Examples:
  shipyard monitor alert add churn --name drift --when "drift_share > 0.3" --for 2 \\
      --command "shipyard pipeline run pipelines/churn.py"
  shipyard monitor alert list
  shipyard monitor alert events --endpoint churn
""")
app.add_typer(alert_app, name="alert")


def _alert_rules() -> AlertRules:
    from shipyard.config import get_settings
    from shipyard.monitoring.alerts import AlertRules
    from shipyard.stores import open_stores

    settings = get_settings()
    return AlertRules(settings, open_stores(settings))


@alert_app.command("add")
def alert_add(
    endpoint: Annotated[str, typer.Argument(help="The endpoint to watch.")],
    name: Annotated[str, typer.Option(help="A name for the rule.")],
    when: Annotated[str, typer.Option(help='e.g. "drift_share > 0.3", "accuracy < 0.85".')],
    for_windows: Annotated[int, typer.Option("--for", min=1, help="Consecutive windows.")] = 1,
    webhook: Annotated[str | None, typer.Option(help="POST the alert as JSON here.")] = None,
    command: Annotated[
        str | None,
        typer.Option(
            help="Run this when it fires (retrain): a program and its arguments, split like a "
            "shell would but run without one (use sh -c '…' for pipes or &&). It gets "
            "SHIPYARD_ALERT, SHIPYARD_ALERT_ENDPOINT, SHIPYARD_ALERT_VALUE and "
            "SHIPYARD_ALERT_CAUSE (JSON) in its environment."
        ),
    ] = None,
) -> None:
    """Add an alert rule.

    \b
    Example:
      shipyard monitor alert add churn --name acc --when "accuracy < 0.85" --webhook https://hooks.example/x
    """
    rule = _alert_rules().add(
        endpoint, name, when=when, for_windows=for_windows, webhook=webhook, command=command
    )
    typer.echo(f"alert {endpoint}/{rule.name}: {rule.condition} for {rule.for_windows} window(s)")


@alert_app.command("list")
def alert_list(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List alert rules and their state: ok, pending, firing, or unknown when the metric could
    not be computed.

    \b
    Example:
      shipyard monitor alert list --endpoint churn
    """
    rules = _alert_rules().rules(endpoint)
    if as_json:
        print_json([r.to_dict() for r in rules])
        return
    table(
        f"{len(rules)} alert rule(s)",
        ["endpoint", "name", "condition", "for", "state", "action"],
        [
            [
                r.endpoint,
                r.name,
                r.condition,
                r.for_windows,
                r.state,
                ", ".join(
                    x for x in ("webhook" if r.webhook else "", "command" if r.command else "") if x
                ),
            ]
            for r in rules
        ],
    )


@alert_app.command("remove")
def alert_remove(
    endpoint: Annotated[str, typer.Argument(help="The endpoint.")],
    name: Annotated[str, typer.Argument(help="The rule's name.")],
) -> None:
    """Remove an alert rule (and its events).

    \b
    Example:
      shipyard monitor alert remove churn drift
    """
    _alert_rules().remove(endpoint, name)
    typer.echo(f"removed alert {endpoint}/{name}")


@alert_app.command("events")
def alert_events(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Fired and resolved alerts, newest first, with the cause and what was done.

    \b
    Example:
      shipyard monitor alert events --endpoint churn --json
    """
    from shipyard.cli._common import ts

    events = _alert_rules().events(endpoint, limit)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    table(
        f"{len(events)} alert event(s)",
        ["when", "endpoint", "alert", "event", "value", "action"],
        [
            [
                ts(e.ts),
                e.endpoint,
                e.rule,
                e.kind,
                "" if e.value is None else f"{e.value:.4g}",
                json.dumps(e.action) if e.action else "",
            ]
            for e in events
        ],
    )


@app.command("run")
def run_once(
    endpoint: Annotated[list[str] | None, typer.Option(help="Endpoints (default: all).")] = None,
    window: Annotated[str | None, typer.Option(help="Window (default: the server's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate endpoints' last window now and act on alert rules (for cron, or CI).

    \b
    Example:
      shipyard monitor run --endpoint churn --window 1h --json
    """
    from shipyard.config import get_settings
    from shipyard.monitoring.live import LiveMonitor
    from shipyard.monitoring.sources import parse_window
    from shipyard.rollout import Deployments
    from shipyard.stores import open_stores

    settings = get_settings()
    if window is not None:
        settings = settings.model_copy(update={"monitor_window_seconds": parse_window(window)})
    stores = open_stores(settings)
    deployments = Deployments(stores)
    names = endpoint or [e.name for e in deployments.list()]
    for n in names:
        deployments.get(n)
    results = LiveMonitor(settings, stores, None).evaluate_all(names)
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    for r in results:
        if r.error:
            typer.echo(f"{r.endpoint}: {r.error}")
            continue
        drift = r.drift or {}
        typer.echo(
            f"{r.endpoint}: {r.rows} rows, drifted: "
            f"{', '.join(drift.get('drifted_columns') or []) or 'none'}; "
            f"alerts: {', '.join(a['alert'] + ' ' + a['change'] for a in r.alerts) or 'no change'}"
        )
