"""`shipyard export`: configuration for the tools around shipyard."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import new_app

app = new_app("""Generate configuration for the tools around shipyard.

\b
Example:
  shipyard export prometheus-rules --out rules.yml && promtool check rules rules.yml
""")


@app.callback()
def export() -> None:
    """Generated assets (a group: more exports join it)."""


@app.command("prometheus-rules")
def prometheus_rules(
    out: Annotated[str | None, typer.Option(help="Write here instead of stdout.")] = None,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between monitoring passes (for 'for:').")
    ] = None,
) -> None:
    """Every alert rule as a Prometheus alerting rule on shipyard's /metrics.

    \b
    Example:
      shipyard export prometheus-rules --out rules.yml
    """
    from pathlib import Path

    from shipyard.config import get_settings
    from shipyard.monitoring.alerts import AlertRules
    from shipyard.monitoring.promrules import rules_yaml
    from shipyard.stores import open_stores

    settings = get_settings()
    rules = AlertRules(settings, open_stores(settings)).rules()
    text = rules_yaml(rules, interval or settings.monitor_interval_seconds)
    if out is None:
        typer.echo(text, nl=False)
    else:
        Path(out).write_text(text)
        typer.echo(f"wrote {out}", err=True)
