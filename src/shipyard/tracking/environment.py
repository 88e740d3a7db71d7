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


@lru_cache(maxsize=8)
def _git(cwd: str) -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return commit.stdout.strip() or None, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


def code_version(path: str | Path | None = None) -> CodeVersion:
    """The script (or `path`) that runs, and the git commit and dirty flag of its folder."""
    source = Path(path).resolve() if path else _source_path()
    cwd = str(source.parent) if source else os.getcwd()
    commit, dirty = _git(cwd)
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
