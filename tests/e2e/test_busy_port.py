"""A server on a busy port says which port and what to do, in one line, before announcing
anything (#15: it printed "serving … on http://…" and then an OSError traceback)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("command", [["server"], ["serve"]])
def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        if command == ["serve"]:  # a model to serve, so only the port can fail
            run_cli(tmp_path, "quickstart", "--no-serve", timeout=600)
            command = ["serve", "models:/breast-cancer@champion"]
        out = run_cli(tmp_path, *command, "--port", str(port), check=False, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0], lines
    assert "Traceback" not in out.stderr and "serving" not in out.stderr
