"""Helpers shared by the command groups: settings, output as tables or JSON."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import typer


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


def ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_json(doc: Any) -> None:
    """Valid JSON on stdout: a number that could not be computed (NaN, infinity) is null,
    never a bare `NaN` that JSON parsers refuse."""
    sys.stdout.write(json.dumps(_finite(doc), indent=2, default=str, allow_nan=False) + "\n")


def _finite(doc: Any) -> Any:
    import math

    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_finite(v) for v in doc]
    return doc


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    Console(width=None if sys.stdout.isatty() else 200).print(t)


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def confirm(question: str, yes: bool) -> None:
    """Go on with --yes, or after a yes at a terminal; without a terminal, an error that says
    to add --yes (a script never hangs on a prompt)."""
    from shipyard.errors import InvalidArgumentError

    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidArgumentError(f"{question.rstrip('?')}: add --yes to confirm")
    if not typer.confirm(question, default=False):
        raise typer.Abort()
