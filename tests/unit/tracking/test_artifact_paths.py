"""A run artifact is asked for by the path the run lists; anything that could climb out of it,
or mean another file on another system, is refused naming `path` before any lookup."""

from __future__ import annotations

import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.tracking.queries import check_artifact_path


@pytest.mark.parametrize(
    "path", ["model.pkl", "plots/loss.png", "datasets/train/x.parquet", "a..b/c..", ".hidden"]
)
def test_plain_relative_paths_pass(path: str) -> None:
    assert check_artifact_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "..",
        "../x",
        "a/../../x",
        "a/..",
        "./x",
        "a//b",
        "a/",
        "/etc/passwd",
        "C:/windows",
        "c:x",
        "..\\x",
        "a\\b",
        "x\x00.txt",
        "x\n.txt",
    ],
)
def test_paths_that_climb_or_are_absolute_or_odd_are_refused_naming_path(path: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        check_artifact_path(path)
    assert refused.value.to_dict()["field"] == "path"
