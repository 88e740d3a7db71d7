"""A PythonModel's code folder is uploaded file by file: a symlink in it to a file outside
(a checkout's link to a credentials file) is refused, not uploaded as code (red team 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.test_python_model import python, write_project


def _log(home: Path, project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "log.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_symlink_out_of_the_code_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = hunter2\n")
    project = write_project(tmp_path / "project", bonus=0)
    (project / "mypkg" / "notes.txt").symlink_to(secret)
    out = _log(tmp_path / "home", project)
    assert out.returncode != 0
    assert "notes.txt is a symlink to" in out.stderr and "outside" in out.stderr
    stored = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert not any(b"hunter2" in p.read_bytes() for p in stored)


def test_a_symlink_inside_the_code_folder_is_code(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", bonus=0)
    (project / "mypkg" / "alias.py").symlink_to(project / "mypkg" / "weights.py")
    assert python(tmp_path / "home", project, "log.py").stdout.split()[-1] == "1"
