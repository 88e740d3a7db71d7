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
