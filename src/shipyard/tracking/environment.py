"""What made a run: code version (git commit, dirty flag) and environment (Python, packages).

Both are read once per process: git and package metadata do not change under a running
program often enough to pay for them on every run."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class CodeVersion:
    commit: str | None
    dirty: bool | None
    source: str | None


def _source_path() -> Path | None:
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    return Path(file).resolve() if file else None


def _run_git(cwd: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
    )


@lru_cache(maxsize=8)
def _git(cwd: str, executed: tuple[str, ...] = ()) -> tuple[str | None, bool | None]:
    """The commit of `cwd`'s repository and whether the code that runs differs from it: a
    change to a tracked file anywhere in the repository, or an `executed` file inside the
    repository that git does not track (a new script is code the commit does not hold).
    Other untracked files (data, notes) do not count."""
    try:
        commit = _run_git(cwd, "rev-parse", "HEAD")
        if commit.returncode != 0:
            return None, None
        status = _run_git(cwd, "status", "--porcelain", "--untracked-files=no")
        if status.returncode != 0:
            return commit.stdout.strip() or None, None
        dirty = bool(status.stdout.strip())
        if not dirty and executed:
            dirty = _untracked_in_repo(cwd, executed)
        return commit.stdout.strip() or None, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


def _untracked_in_repo(cwd: str, files: tuple[str, ...]) -> bool:
    """True when one of `files` lies inside `cwd`'s repository but is not tracked by git
    (untracked or ignored)."""
    top = _run_git(cwd, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return False
    root = Path(top.stdout.strip()).resolve()
    inside = [f for f in files if Path(f).is_relative_to(root)]
    if not inside:
        return False
    tracked = _run_git(str(root), "ls-files", "--full-name", "-z", "--", *inside)
    known = {str((root / name).resolve()) for name in tracked.stdout.split("\0") if name}
    return any(str(Path(f).resolve()) not in known for f in inside)


def code_version(path: str | Path | None = None) -> CodeVersion:
    """The script (or `path`) that runs, and the git commit and dirty flag of its folder.
    The running script (`__main__`) counts as executed code too, when it lies in the same
    repository."""
    source = Path(path).resolve() if path else _source_path()
    cwd = str(source.parent) if source else os.getcwd()
    executed = {str(p) for p in (source, _source_path()) if p is not None and p.is_file()}
    commit, dirty = _git(cwd, tuple(sorted(executed)))
    return CodeVersion(commit, dirty, str(source) if source else None)


@lru_cache(maxsize=1)
def environment_json() -> bytes:
    """Python version, platform and installed distributions, as canonical JSON bytes (so equal
    environments get equal digests and are stored once)."""
    from importlib.metadata import distributions

    packages: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": dict(sorted(packages.items())),
    }
    return json.dumps(env, sort_keys=True).encode()
