"""Every command's --help reads as written: no click marker shown literally, an example."""

from __future__ import annotations

import importlib

import pytest
import typer.main

from shipyard.cli.main import COMMANDS, main


def _commands() -> list[list[str]]:
    out: list[list[str]] = []
    for name, (module, attribute, _) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        if isinstance(command, typer.Typer):
            command = typer.main.get_command(command)
        out.append([name])
        out += [[name, sub] for sub in getattr(command, "commands", {})]
    return out


@pytest.mark.parametrize("argv", _commands(), ids=" ".join)
def test_help_shows_no_literal_click_marker(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`\\b` written as two characters was printed as is (pipeline, data, gate, batch,
    monitor); click's marker is the backspace character."""
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "Usage: shipyard" in out, out
    assert "\\b" not in out and "\b" not in out, out


def test_json_output_is_valid_json_when_a_metric_is_nan(capsys: pytest.CaptureFixture[str]) -> None:
    """`shipyard monitor accuracy --json` printed a bare NaN (#15)."""
    import json

    from shipyard.cli._common import print_json

    print_json({"mae": float("nan"), "rows": [1.5, float("inf")], "n": 3})
    assert json.loads(capsys.readouterr().out) == {"mae": None, "rows": [1.5, None], "n": 3}
