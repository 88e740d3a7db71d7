"""`shipyard features`: register definitions, list and show them, materialize, look up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli._common import new_app, print_json, table, ts

app = new_app("""Feature store: definitions, materialization and online lookups.

\b
Examples:
  shipyard features apply features/            # register every definition in the folder
  shipyard features list
  shipyard features show driver_stats
  shipyard features materialize                # incremental: since the last run, until now
  shipyard features get churn -e driver_id=7 -e amount=12.5
  shipyard features push driver_stats fresh.json
""")


def _store() -> Any:
    from shipyard.features import FeatureStore

    return FeatureStore()


@app.command("apply")
def apply(
    path: Annotated[Path, typer.Argument(help="A .py file or a folder of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register the entities, feature views, on-demand views and services defined in PATH.
    A changed definition becomes a new version; an unchanged one is left alone.

    \b
    Example:
      shipyard features apply features/definitions.py
    """
    from shipyard.features import load_definitions

    store = _store()
    results = []
    for base, objects in load_definitions(path):
        results += store.apply(objects, base_path=base)
    if as_json:
        print_json(
            [
                {"kind": k, "name": r.record.name, "version": r.record.version, "change": r.change}
                for k, r in results
            ]
        )
        return
    for kind, r in results:
        typer.echo(f"{kind:<10} {r.record.name:<30} v{r.record.version:<4} {r.change}")


@app.command("list")
def list_definitions(
    kind: Annotated[
        str | None, typer.Option("--kind", help="entity, view, on_demand or service.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the newest version of every definition.

    \b
    Example:
      shipyard features list --kind view
    """
    records = _store().list_definitions(kind)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table(
        f"{len(records)} definition(s)",
        ["kind", "name", "version", "features", "owner", "updated"],
        [
            [
                r.kind,
                r.name,
                r.version,
                len(r.spec.get("features") or []),
                r.spec.get("owner", ""),
                ts(r.created_at),
            ]
            for r in records
        ],
    )


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A view, on-demand view, service or entity.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a definition's versions and, for a view, how far it is materialized.

    \b
    Example:
      shipyard features show driver_stats
    """
    from shipyard.errors import NotFoundError

    store = _store()
    versions = []
    for kind in ("view", "on_demand", "service", "entity"):
        versions = store.versions(kind, name)
        if versions:
            break
    if not versions:
        every = [r.name for r in store.list_definitions()]
        raise NotFoundError.for_name("feature definition", name, every)
    latest = versions[-1]
    until = store.materialized_until(name, latest.version) if latest.kind == "view" else None
    doc = {
        **latest.to_dict(),
        "versions": [
            {"version": v.version, "created_at": v.created_at, "created_by": v.created_by}
            for v in versions
        ],
        "materialized_until": until,
    }
    if as_json:
        print_json(doc)
        return
    spec = latest.spec
    typer.echo(f"{latest.kind} {name} v{latest.version} (by {latest.created_by})")
    _echo_spec(spec)
    if latest.kind == "view":
        typer.echo(f"  materialized until: {ts(until)}")
    typer.echo(f"  versions: {', '.join(str(v.version) for v in versions)}")


def _echo_spec(spec: dict[str, Any]) -> None:
    """A definition's spec as indented lines: its fields, features and code."""
    for key in ("description", "owner", "entity", "timestamp", "ttl_seconds", "online"):
        if spec.get(key) not in (None, ""):
            typer.echo(f"  {key}: {spec[key]}")
    if "source" in spec:
        typer.echo(f"  source: {spec['source']}")
    if "default" in spec:
        typer.echo(f"  default: {spec['default']}")
    features = spec.get("features")
    if isinstance(features, dict):
        for f, t in features.items():
            typer.echo(f"  feature {f}: {t}")
    elif isinstance(features, list):
        for f in features:
            typer.echo(f"  feature {f}")
    if spec.get("code_text"):
        typer.echo("  code:")
        for line in str(spec["code_text"]).rstrip().splitlines():
            typer.echo(f"    {line}")


def _when(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    from shipyard.errors import InvalidArgumentError

    try:
        return dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"--{name} {value!r} is not an ISO time (e.g. 2026-01-31T12:00)"
        ) from exc


@app.command("materialize")
def materialize(
    start: Annotated[
        str | None,
        typer.Option("--start", help="ISO time (UTC if naive). Default: where the last run ended."),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="ISO time (UTC if naive). Default: now.")
    ] = None,
    view: Annotated[
        list[str] | None, typer.Option("--view", "-v", help="Only these views (repeatable).")
    ] = None,
) -> None:
    """Load the latest value per entity into the online store, with a progress bar. Each view
    is written atomically: a failure leaves its online values as they were.

    \b
    Examples:
      shipyard features materialize
      shipyard features materialize --start 2026-01-01 --end 2026-02-01 -v driver_stats
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    store = _store()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=False
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=max(total, 1))
            bar.update(tasks[name], completed=done, total=max(total, 1))

        written = store.materialize(
            _when(start, "start"), _when(end, "end"), views=view, progress=progress
        )
    for name, n in written.items():
        typer.echo(f"{name}: {n} entit{'y' if n == 1 else 'ies'} written")


@app.command("get")
def get(
    features: Annotated[str, typer.Argument(help="A service, a view or view:feature[,…].")],
    entity: Annotated[list[str], typer.Option("--entity", "-e", help="key=value (repeatable).")],
) -> None:
    """Look features up in the online store for one entity.

    \b
    Example:
      shipyard features get churn -e driver_id=7 -e amount=12.5
    """
    from shipyard.errors import InvalidArgumentError

    row: dict[str, Any] = {}
    for item in entity:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"--entity {item!r} is not key=value")
        try:
            import json

            row[key] = json.loads(value)
        except ValueError:
            row[key] = value
    refs: Any = features if "," not in features else features.split(",")
    print_json(_store().get_online_features(refs, [row]))


@app.command("push")
def push(
    view: Annotated[str, typer.Argument(help="The feature view.")],
    path: Annotated[Path, typer.Argument(help="Rows: .json (a list of objects), .csv or .parquet")],
    to: Annotated[
        str, typer.Option("--to", help="online, offline or online_and_offline.")
    ] = "online",
) -> None:
    """Write fresh values of a view now (type-checked; nothing is written if a row is bad).

    \b
    Example:
      shipyard features push driver_stats fresh.json --to online_and_offline
    """
    from shipyard.errors import InvalidArgumentError, NotFoundError

    if not path.is_file():
        raise NotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    rows: Any
    if suffix == ".json":
        import json

        try:
            rows = json.loads(path.read_text())
        except ValueError as exc:
            raise InvalidArgumentError(f"{path} is not JSON: {exc}") from exc
    elif suffix in (".csv", ".parquet"):
        import pandas as pd

        rows = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    else:
        raise InvalidArgumentError(f"{path}: use a .json, .csv or .parquet file")
    written = _store().push(view, rows, to=to)
    typer.echo(f"{view}: {written} row(s) written ({to})")
