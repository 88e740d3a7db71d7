"""Every file of the web UI is one the wheel ships: each matches a package-data pattern of
pyproject.toml (a new kind of file would otherwise work from a checkout and 404 when
installed)."""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

from shipyard.ui import STATIC

ROOT = Path(__file__).resolve().parents[3]


def test_every_ui_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["shipyard"]
    package = STATIC.parents[1]  # src/shipyard
    files = [p.relative_to(package).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert len(files) > 20
    unshipped = [f for f in files if not any(_glob(f, pat) for pat in patterns)]
    assert unshipped == []


def _glob(path: str, pattern: str) -> bool:
    """As setuptools reads a package-data glob: `*` within one folder, not across."""
    file, pat = PurePosixPath(path), PurePosixPath(pattern)
    return len(file.parts) == len(pat.parts) and file.match(pattern)
