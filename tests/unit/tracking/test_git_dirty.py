"""The dirty flag of a run's commit: untracked code the run executes and uncommitted changes
anywhere in the repository make it dirty (a real git repository in a temp folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.tracking.environment import code_version


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "lib.py").write_text("X = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


def test_an_untracked_script_is_dirty(repo: Path) -> None:
    script = repo / "train.py"
    script.write_text("print('hi')\n")
    code = code_version(script)
    assert code.commit is not None and code.dirty is True


def test_a_committed_script_in_a_clean_repo_is_clean_and_other_untracked_files_do_not_count(
    repo: Path,
) -> None:
    (repo / "notes.txt").write_text("scratch\n")  # not executed: does not make the run dirty
    code = code_version(repo / "src" / "lib.py")
    assert code.commit is not None and code.dirty is False


def test_a_change_elsewhere_in_the_repo_is_dirty(repo: Path) -> None:
    (repo / "src" / "lib.py").write_text("X = 2\n")
    sub = repo / "jobs"
    sub.mkdir()
    (sub / "run.py").write_text("")
    _git(repo, "add", "jobs/run.py")
    _git(repo, "commit", "-q", "-m", "job")
    assert code_version(sub / "run.py").dirty is True


def test_a_run_started_from_an_untracked_script_records_dirty(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = repo / "train.py"
    script.write_text(
        "import shipyard as sy\nwith sy.start_run(experiment='git') as run:\n    print(run.id)\n"
    )
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    out = subprocess.run(
        [sys.executable, str(script)], cwd=repo, capture_output=True, text=True, check=True
    )
    from shipyard.config import Settings
    from shipyard.stores import open_stores

    record = open_stores(Settings(home=home)).metadata.runs.get_run(out.stdout.strip())
    assert record.git_commit is not None and record.git_dirty is True
