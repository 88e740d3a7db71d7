"""`shipyard`: the entry point. A click group that imports each command group only when it is
invoked, so `shipyard --help` stays fast; errors print one line and exit with code 2."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# name -> (module, attribute, one-line help). The help is here so `--help` imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "quickstart": (
        "shipyard.cli.quickstart",
        "quickstart",
        "Train, track, register and serve two models end to end.",
    ),
    "server": ("shipyard.cli.serve", "server", "Run the control plane API and every endpoint."),
    "ui": ("shipyard.cli.serve", "ui", "Browse runs, models and deployments in the web UI."),
    "serve": (
        "shipyard.cli.serve",
        "serve",
        "Serve one model: shipyard serve models:/churn@champion",
    ),
    "experiments": (
        "shipyard.cli.experiments",
        "app",
        "List, show, rename and delete experiments.",
    ),
    "runs": ("shipyard.cli.runs", "app", "List, show, search and compare runs; metric history."),
    "models": ("shipyard.cli.models", "app", "Registered models, versions, aliases and audit."),
    "deploy": (
        "shipyard.cli.deploy",
        "app",
        "Endpoints and rollouts: canary, A/B, shadow, blue-green.",
    ),
    "pipeline": (
        "shipyard.cli.pipeline",
        "app",
        "Run cached, tracked pipelines (local or Ray); list runs; trace lineage.",
    ),
    "data": ("shipyard.cli.data", "app", "Validate data against a contract (expectation suite)."),
    "gate": ("shipyard.cli.gate", "app", "Quality gates: configure, check and show reports."),
    "batch": ("shipyard.cli.batch", "app", "Score files of any size with a registered model."),
    "keys": ("shipyard.cli.keys", "app", "Create, list and revoke API keys."),
    "monitor": (
        "shipyard.cli.monitor",
        "app",
        "Drift, quality, accuracy and alerts of live traffic.",
    ),
    "features": ("shipyard.cli.features", "app", "Feature store: apply, materialize, look up."),
    "import": (
        "shipyard.cli.imports",
        "app",
        "Copy runs and models from MLflow: shipyard import mlflow --from URI",
    ),
    "export": ("shipyard.cli.export", "app", "Generated configuration (Prometheus rules)."),
    "admin": (
        "shipyard.cli.admin",
        "app",
        "Operate an installation: doctor (repair what a crash left behind).",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, _ = entry
        obj = getattr(importlib.import_module(module), attr)
        if isinstance(obj, click.Command):
            return obj
        import typer.main

        # Typer ships its own copy of click; its commands work inside a click group.
        command: click.Command = typer.main.get_command(obj)  # type: ignore[assignment]
        command.name = cmd_name
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="shipyard", prog_name="shipyard")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """shipyard: track, register and serve machine-learning models.

    \b
    Example:
      shipyard quickstart              # train, register and serve two models
      shipyard runs list --experiment churn
      shipyard serve models:/churn@champion --port 8080
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def _exception_kind(exc: BaseException) -> str | None:
    """Classify click exceptions by name: Typer ships its own copy of click, whose classes are
    not click's, so isinstance on one of them misses the other."""
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in ("click", "typer") and cls.__name__ in (
            "Exit",
            "Abort",
            "ClickException",
        ):
            return cls.__name__
    return None


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI: shipyard errors become one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    try:
        return cli.main(args=args, prog_name="shipyard", standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        from shipyard.errors import ShipyardError

        kind = _exception_kind(exc)
        if kind == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if kind == "Abort":
            click.echo("aborted", err=True)
            sys.exit(130)
        if debug:
            raise
        if kind == "ClickException":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        if isinstance(exc, ShipyardError):
            first, *rest = exc.message.splitlines() or [""]
            click.echo(f"error: {first}", err=True)
            for line in rest:  # a filter error's caret pointer
                click.echo(line, err=True)
            sys.exit(2)
        click.echo(
            f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
