"""`shipyard models`: registered models, versions, aliases and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli._common import confirm, new_app, print_json, table, ts

app = new_app("""Registered models, versions, aliases and their audit log.

\b
Examples:
  shipyard models list
  shipyard models show churn
  shipyard models alias churn champion 2 --reason "better AUC on March data"
  shipyard models audit churn
  shipyard models tag churn team=growth --version 3
  shipyard models describe churn "Monthly churn, gradient boosting"
  shipyard models delete churn --version 1 --yes
  shipyard models env models:/churn/3 > requirements.txt
  shipyard models optimize models:/churn/3 --quantize dynamic
  shipyard models import churn-stack/model --alias served
""")


@app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered models with their latest version and aliases.

    \b
    Example:
      shipyard models list --json
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    models = Registry(open_stores()).list_models()
    if as_json:
        print_json([m.to_dict() for m in models])
        return
    table(
        f"{len(models)} model(s)",
        ["name", "latest", "aliases", "updated"],
        [
            [
                m.name,
                m.latest_version,
                ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items())),
                ts(m.updated_at),
            ]
            for m in models
        ],
    )


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a model's versions: flavor, signature, source run, aliases.

    \b
    Example:
      shipyard models show churn
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    reg = Registry(open_stores())
    model = reg.get_model(name)
    versions = reg.list_versions(name)
    if as_json:
        print_json({**model.to_dict(), "versions": [v.to_dict() for v in versions]})
        return
    if model.description:
        typer.echo(f"description: {model.description}")
    if model.tags:
        typer.echo(f"tags: {_tags(model.tags)}")
    table(
        f"{name}: {len(versions)} version(s)",
        ["version", "aliases", "flavor", "onnx", "inputs", "run", "created", "by", "tags", "about"],
        [
            [
                v.version,
                ", ".join(v.aliases),
                v.flavor,
                v.onnx_status,
                len((v.signature or {}).get("inputs", [])),
                (v.run_id or "")[:8],
                ts(v.created_at),
                v.created_by,
                _tags(v.tags),
                v.description,
            ]
            for v in versions
        ],
    )
    _optimized(versions)


def _tags(tags: dict[str, str]) -> str:
    shown = {k: v for k, v in tags.items() if k != "optimize_report"}  # said below the table
    return ", ".join(f"{k}={_short(v)}" for k, v in sorted(shown.items()))


def _optimized(versions: list[Any]) -> None:
    """One line per optimized version: parent, technique, deltas, latency and size."""
    import json

    from shipyard.optimize import summary

    for v in versions:
        report = v.tags.get("optimize_report")
        if report:
            doc = json.loads(report)
            typer.echo(
                f"version {v.version}: {doc['technique']} of version "
                f"{v.tags.get('optimize_parent')} — {summary(doc)}"
            )


@app.command("alias")
def alias(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion")],
    version: Annotated[int | None, typer.Argument(help="Version to point at.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (audit log).")] = None,
    override_gates: Annotated[
        str | None,
        typer.Option("--override-gates", help="Set it despite failed quality gates: the reason."),
    ] = None,
) -> None:
    """Set, move or delete an alias. Every change is audited. A model with quality gates
    accepts only versions that passed them (`shipyard gate check`).

    \b
    Examples:
      shipyard models alias churn champion 3 --reason "wins on AUC"
      shipyard models alias churn challenger --delete
    """
    from shipyard.errors import InvalidArgumentError
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    reg = Registry(open_stores())
    if delete:
        reg.delete_alias(name, alias_name, reason=reason)
        typer.echo(f"deleted alias {name}@{alias_name}")
        return
    if version is None:
        raise InvalidArgumentError("give the VERSION to point the alias at (or --delete)")
    reg.set_alias(name, alias_name, version, reason=reason, override_gates=override_gates)
    typer.echo(f"{name}@{alias_name} -> version {version}")


@app.command("import")
def import_bundle(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="A bundle folder (model/).")],
    digest: Annotated[
        str | None, typer.Option("--digest", help="Refuse it unless its manifest has this.")
    ] = None,
    onnx_digest: Annotated[
        str | None,
        typer.Option(
            "--onnx-digest",
            help="Refuse it unless its ONNX conversion has this; with --digest and without "
            "it, the bundle's conversion is not imported.",
        ),
    ] = None,
    alias_name: Annotated[
        str | None, typer.Option("--alias", help="Point this alias at the imported version.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register the version a bundle folder holds (the model/ of a docker or compose
    render), every file checked against its digest first. Running it again changes nothing.

    \b
    Example:
      shipyard models import churn-stack/model --digest sha256:3f… --alias served
    """
    from shipyard.registry import Registry
    from shipyard.registry.bundle_import import import_bundle as import_folder
    from shipyard.stores import open_stores

    reg = Registry(open_stores())
    mv, created = import_folder(reg, folder, digest=digest, onnx_digest=onnx_digest)
    if alias_name and reg.get_model(mv.name).aliases.get(alias_name) != mv.version:
        reg.set_alias(mv.name, alias_name, mv.version, reason=f"imported from {folder}")
    if as_json:
        print_json({**mv.to_dict(), "created": created, "alias": alias_name})
        return
    what = "registered as" if created else "already registered as"
    named = f" ({mv.name}@{alias_name})" if alias_name else ""
    typer.echo(f"{mv.name}: {what} version {mv.version}{named}, sha256:{mv.artifact_digest}")


@app.command("audit")
def audit(
    name: Annotated[str | None, typer.Argument(help="Model name (default: every event).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the audit log: who changed what, when and why (newest first).

    \b
    Example:
      shipyard models audit churn --limit 20
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    events = Registry(open_stores()).audit(name, limit)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    table(
        f"audit{' of ' + name if name else ''}",
        ["when", "who", "action", "subject", "change", "why"],
        [
            [ts(e.ts), e.actor, e.action, e.subject, _change(e.before, e.after), e.reason or ""]
            for e in events
        ],
    )


def _short(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    text = str(value)
    return text[:12] + "…" if len(text) > 40 else text


def _change(before: object, after: object) -> str:
    if before is None:
        return _short(after) if after else ""
    return f"{_short(before)} → {_short(after)}"


@app.command("approve")
def approve(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="The pending version.")],
    reviewer: Annotated[str, typer.Option(help="Who reviewed it.")],
    comment: Annotated[str, typer.Option(help="What the review found.")] = "",
) -> None:
    """Approve a pending version (endpoints with --require-approval serve only these).

    \b
    Example:
      shipyard models approve churn 4 --reviewer alice --comment "fairness gate ok"
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    mv = Registry(open_stores()).approve(name, version, reviewer=reviewer, comment=comment)
    typer.echo(f"{name} version {mv.version}: approved by {reviewer}")


@app.command("reject")
def reject(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="The pending version.")],
    reviewer: Annotated[str, typer.Option(help="Who reviewed it.")],
    comment: Annotated[str, typer.Option(help="Why it is rejected.")] = "",
) -> None:
    """Reject a pending version.

    \b
    Example:
      shipyard models reject churn 4 --reviewer alice --comment "AUC dropped on March data"
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    mv = Registry(open_stores()).reject(name, version, reviewer=reviewer, comment=comment)
    typer.echo(f"{name} version {mv.version}: rejected by {reviewer}")


@app.command("tag")
def tag(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    pairs: Annotated[
        list[str] | None, typer.Argument(metavar="KEY=VALUE...", help="Tags to set.")
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Tag this version, not the model.")
    ] = None,
    delete_tags: Annotated[
        list[str] | None, typer.Option("--delete-tag", "-d", help="Remove this tag (repeat).")
    ] = None,
) -> None:
    """Set or remove tags of a model or of one version (shown by `models show`). Audited.

    \b
    Examples:
      shipyard models tag churn team=growth owner=alice
      shipyard models tag churn --version 3 dataset=march
      shipyard models tag churn --delete-tag owner
    """
    from shipyard.errors import InvalidArgumentError
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    parsed = []
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"'{pair}' is not KEY=VALUE", field="tags")
        parsed.append((key, value))
    if not parsed and not delete_tags:
        raise InvalidArgumentError("give KEY=VALUE tags to set or --delete-tag KEY")
    reg = Registry(open_stores())
    for key, value in parsed:
        if version is None:
            reg.set_model_tag(name, key, value)
        else:
            reg.set_version_tag(name, version, key, value)
    for key in delete_tags or []:
        reg.delete_tag(name, key, version)
    subject = name if version is None else f"{name} version {version}"
    typer.echo(f"{subject}: set {len(parsed)} tag(s), removed {len(delete_tags or [])}")


@app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    text: Annotated[str, typer.Argument(help="The description ('' clears it).")],
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Describe this version, not the model.")
    ] = None,
) -> None:
    """Set the description of a model or of one version (shown by `models show`). Audited.

    \b
    Examples:
      shipyard models describe churn "Monthly churn; owner: growth team"
      shipyard models describe churn --version 3 "trained on March data"
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    Registry(open_stores()).set_description(name, text, version)
    typer.echo(f"described {name}{'' if version is None else f' version {version}'}")


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Delete only this version.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (audit log).")] = None,
) -> None:
    """Delete a model with all its versions, or one version. Refused while an alias or an
    endpoint (serving it, or as stable or candidate of a rollout) uses it: move or delete
    those first. Audited; version numbers are never given out again; artifact files stay.

    \b
    Examples:
      shipyard models delete churn --version 2 --yes
      shipyard models delete churn-old --yes --reason "replaced by churn"
    """
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    reg = Registry(open_stores())
    if version is None:
        count = len(reg.list_versions(name))
        confirm(f"delete model {name} and its {count} version(s)?", yes)
    else:
        reg.get_version(name, version)
        confirm(f"delete model {name} version {version}?", yes)
    gone = reg.delete(name, version, reason=reason)
    typer.echo(
        f"deleted {name} version {version}"
        if version is not None
        else f"deleted model {name} and {gone} version(s)"
    )


@app.command("env")
def env(
    model_uri: Annotated[str, typer.Argument(help="models:/NAME/VERSION, NAME@ALIAS …")],
    venv: Annotated[
        Path | None,
        typer.Option(help="Create a virtualenv here with the model's packages and shipyard."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --venv: print the commands, run nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the lock and how this environment differs.")
    ] = False,
    allow_source_builds: Annotated[
        bool,
        typer.Option(
            "--allow-source-builds",
            help="With --venv: let pip build packages from source (runs their setup code); "
            "by default it installs wheels only (--only-binary=:all:).",
        ),
    ] = False,
) -> None:
    """Print the exact package versions a model version was saved with, as a pip
    requirements file, or create a virtualenv that can serve it. `load_model` and `serve`
    compare the same lock with the running environment: another major version of the
    model's framework refuses to load (--ignore-env), other differences are warnings.
    Every line is checked to be a package requirement (no URL, no pip option), and --venv
    installs the model's packages from wheels only, which run no code when installed.

    \b
    Examples:
      shipyard models env models:/churn/3 > requirements.txt
      shipyard models env churn@champion --json
      shipyard models env models:/churn/3 --venv ./churn-env
      ./churn-env/bin/shipyard serve models:/churn/3
    """
    from shipyard.errors import InvalidArgumentError
    from shipyard.flavors.requirement_checks import checked_requirements_txt
    from shipyard.registry import Registry
    from shipyard.stores import open_stores

    lock = Registry(open_stores()).environment(model_uri)
    if dry_run and venv is None:
        raise InvalidArgumentError("--dry-run goes with --venv DIR")
    if venv is not None:
        from shipyard.flavors.environment import create_venv

        plan = create_venv(lock, venv, dry_run=dry_run, allow_source=allow_source_builds)
        if dry_run:
            typer.echo(f"# write {plan.requirements}:")
            typer.echo(checked_requirements_txt(lock), nl=False)
            for command in plan.commands:
                typer.echo(" ".join(command))
            return
        typer.echo(
            f"created {plan.folder}; serve with: {plan.folder}/bin/shipyard serve {model_uri}"
        )
        return
    if as_json:
        print_json({**lock.to_dict(), "differences": [vars(d) for d in lock.differences()]})
        return
    typer.echo(checked_requirements_txt(lock), nl=False)


@app.command("optimize")
def optimize(
    uri: Annotated[str, typer.Argument(help="The version to optimize: models:/NAME/VERSION.")],
    quantize: Annotated[
        str | None,
        typer.Option(help="INT8 quantization of its ONNX model: dynamic or static."),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Fewer trees (XGBoost, LightGBM) or neurons (PyTorch MLP)."),
    ] = False,
    distill: Annotated[
        bool, typer.Option("--distill", help="A small scikit-learn student.")
    ] = False,
    data: Annotated[
        str | None,
        typer.Option(help="Held-out rows with the label (Parquet/CSV); default: the run's."),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The label column of the data.")] = None,
    train_data: Annotated[
        str | None,
        typer.Option(help="--distill, --prune of PyTorch: training rows; default: the run's."),
    ] = None,
    calibration: Annotated[
        str | None, typer.Option(help="--quantize static: rows; default: the run's train rows.")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="--prune: metric loss allowed vs the original (absolute).")
    ] = 0.005,
    amount: Annotated[
        float | None,
        typer.Option(
            help="--prune of PyTorch: share of hidden neurons removed (0-1); default: the "
            "largest of 0.875/0.75/0.5/0.25 within --tolerance."
        ),
    ] = None,
    finetune: Annotated[
        bool, typer.Option(help="--prune of PyTorch: fine-tune on the original's outputs.")
    ] = True,
    student: Annotated[str, typer.Option(help="--distill: hgb or mlp.")] = "hgb",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Optimize a version into a NEW version (the old one is never changed), measured on
    held-out data: metric delta, p50 latency per row and size, old vs new; recorded with the
    new version and audited. A model with quality gates has them checked on it: exit 1 when
    they fail (the version exists but cannot get an alias).

    Held-out, training and calibration rows default to the datasets the version's run logged
    with keep_rows=True (roles test/validation and train). --prune keeps the smallest number
    of trees whose held-out ROC AUC (accuracy for several classes, R² for a regressor) is
    within --tolerance of all trees'; on a PyTorch MLP it removes the hidden neurons with the
    smallest weights (--amount, else the largest share within --tolerance), then fine-tunes.

    \b
    Examples:
      shipyard models optimize models:/churn/3 --quantize dynamic
      shipyard models optimize models:/churn/3 --quantize static --calibration train.parquet
      shipyard models optimize models:/churn/3 --prune --tolerance 0.002 --json
      shipyard models optimize models:/torch-churn/2 --prune --amount 0.5 --no-finetune
      shipyard models optimize models:/churn/3 --distill --student mlp \\
          --data holdout.parquet --target churned --train-data train.parquet
    """
    from shipyard.optimize import Optimizer, Options
    from shipyard.stores import open_stores

    technique = _technique(quantize, prune, distill)
    options = Options(data, target, train_data, calibration, tolerance, student, amount, finetune)
    result = _run_optimize(Optimizer(open_stores()), uri, technique, options, as_json)
    if not as_json:
        _show_optimized(result, technique, uri)
    if result.passed_gates is False:
        raise typer.Exit(1)


def _show_optimized(result: Any, technique: str, uri: str) -> None:
    """The new version in a few lines; a warning when it lost accuracy and no gate stopped it."""
    from shipyard.optimize import summary, worse

    mv = result.version
    typer.echo(f"{mv.name} version {mv.version}: {technique} of {uri}")
    typer.echo(f"  {summary(result.report)}")
    typer.echo(f"  held-out: {result.report['held_out']['source']}")
    lost = worse(result.report)
    if lost and result.gates is None:
        typer.echo(
            f"warning: version {mv.version} is worse than its parent ({', '.join(lost)}) and "
            "the model has no quality gate to stop it; check it before giving it an alias",
            err=True,
        )
    if result.gates is not None:
        typer.echo(f"  quality gates: {'passed' if result.passed_gates else 'FAILED'}")


def _run_optimize(optimizer: Any, uri: str, technique: str, options: Any, as_json: bool) -> Any:
    """Run the optimization: JSON printed as it is, or the steps shown on stderr."""
    if as_json:
        result = optimizer.optimize(uri, technique, options)
        print_json(result.to_dict())
        return result
    from rich.console import Console

    with Console(stderr=True).status("optimizing") as status:
        return optimizer.optimize(uri, technique, options, progress=lambda s: status.update(s))


def _technique(quantize: str | None, prune: bool, distill: bool) -> str:
    from shipyard.errors import InvalidArgumentError

    chosen = [t for t, on in (("quantize", quantize), ("prune", prune), ("distill", distill)) if on]
    if len(chosen) != 1:
        raise InvalidArgumentError(
            "choose one technique: --quantize dynamic|static, --prune or --distill"
        )
    if quantize is not None and quantize not in ("dynamic", "static"):
        raise InvalidArgumentError(f"--quantize takes dynamic or static, not {quantize!r}")
    return f"quantize-{quantize}" if quantize else chosen[0]
