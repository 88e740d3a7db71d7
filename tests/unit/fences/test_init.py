"""Every fence passes its check on the installed dependencies, and only fences/ names a
dependency's private attribute in src/."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

import shipyard
from shipyard.fences import check_all

SRC = Path(shipyard.__file__).parent


def test_every_fence_passes_on_the_installed_versions(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert check_all() == {
            "prometheus_client": True,
            "onnxruntime": True,
            "redis": True,
            "scikit-learn": True,
        }
    assert caplog.records == []


@pytest.mark.parametrize("name", ["_sess", "_sum", "_buckets", "_score_func", "make_connection"])
def test_private_names_appear_only_in_fences(name: str) -> None:
    pattern = re.compile(rf"(?<!self)\.{name}\b|[\"']{name}\b")  # not shipyard's own
    users = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if pattern.search(p.read_text()) and p.parent.name != "fences"
    )
    assert users == []


def test_a_start_up_check_imports_no_dependency_the_process_has_not() -> None:
    """A server checks the fences of what its models imported; importing scikit-learn or
    redis only to check them would cost every server their memory."""
    import subprocess
    import sys

    code = (
        "import sys; from shipyard import fences; "
        "done = fences.check_all(only_imported=True); "
        "print(sorted(done), 'sklearn' in sys.modules, 'redis' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("]")[1].split() == ["False", "False"], out.stdout
    assert "scikit-learn" not in out.stdout.split("]")[0]
