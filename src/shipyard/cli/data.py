"""`shipyard data`: check data against a contract."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import new_app, print_json, table

app = new_app("""Data contracts: expectation suites checked with pandera.

\b
Example:
  shipyard data validate data/new.parquet --suite contracts/churn.yaml
""")


@app.callback()
def data() -> None:
    """Data checks (a group)."""


@app.command("validate")
def validate(
    path: Annotated[str, typer.Argument(help="A Parquet or CSV file (or a Parquet folder).")],
    suite: Annotated[str, typer.Option("--suite", "-s", help="The suite, a YAML file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a file against a suite: every failed expectation with counts and examples.
    Exit 0 when no blocking (severity error) expectation failed, 1 otherwise.

    \b
    Example:
      shipyard data validate data/new.parquet --suite contracts/churn.yaml --json
    """
    from shipyard.monitoring.sources import read_table
    from shipyard.pipelines.contracts import Suite

    contract = Suite.from_yaml(suite)
    result = contract.validate(read_table(path))
    if as_json:
        print_json(result.to_dict())
    else:
        if result.failures:
            table(
                f"{result.suite}: {len(result.failures)} failed expectation(s)",
                ["severity", "expectation", "failing", "examples"],
                [
                    [
                        f.severity,
                        f.expectation,
                        f"{f.count:,}",
                        ", ".join(str(e["value"]) for e in f.examples),
                    ]
                    for f in result.failures
                ],
            )
        verdict = "passed" if result.passed else "FAILED"
        typer.echo(
            f"{result.suite} {verdict}: {result.rows:,} rows, {result.expectations} "
            f"expectations, {len(result.blocking)} blocking failure(s), "
            f"{len(result.failures) - len(result.blocking)} warning(s)"
        )
    if not result.passed:
        raise typer.Exit(1)
