"""Writing a render: byte-identical twice, a diff on change, stale files removed, foreign
files and bad paths refused, nothing written when a render fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard.deploy import Deploy, RenderOptions
from shipyard.deploy.output import INDEX, write
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError


def test_a_second_write_of_the_same_files_changes_nothing(tmp_path: Path) -> None:
    files = {"a.yaml": "kind: A\n", "sub/b.txt": "b\n"}
    first = write(tmp_path, files, what="t")
    assert first.changed == ("a.yaml", "sub/b.txt")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    second = write(tmp_path, files, what="t")
    assert second.changed == () and second.diff == ""
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_text_rendered_as_bytes_is_unchanged_when_written_again(tmp_path: Path) -> None:
    files = {"bundle.json": b'{"a": 1}\n', "model.onnx": bytes(range(256))}
    write(tmp_path, files, what="t")
    again = write(tmp_path, files, what="t")
    assert (again.changed, again.diff) == ((), "")


def test_a_changed_render_shows_a_diff_and_drops_files_it_no_longer_writes(
    tmp_path: Path,
) -> None:
    write(tmp_path, {"a.yaml": "replicas: 2\n", "old.txt": "x\n"}, what="t")
    written = write(tmp_path, {"a.yaml": "replicas: 3\n"}, what="t")
    assert "-replicas: 2\n+replicas: 3\n" in written.diff
    assert "--- a/old.txt" in written.diff
    assert written.removed == ("old.txt",) and not (tmp_path / "old.txt").exists()


def test_a_file_no_render_wrote_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("mine\n")
    with pytest.raises(ConflictError, match="no render wrote"):
        write(tmp_path, {"Dockerfile": "FROM x\n"}, what="t")
    assert (tmp_path / "Dockerfile").read_text() == "mine\n"
    assert not (tmp_path / INDEX).exists()


@pytest.mark.parametrize("name", ["../escape", "/abs", INDEX, "a/../../b"])
def test_a_path_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgumentError):
        write(tmp_path / "out", {name: "x"}, what="t")
    assert not (tmp_path / "out").exists()


def test_an_alias_that_points_nowhere_writes_nothing(
    churn: Any, stores: Any, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError):
        Deploy(stores).render("docker", model_uri="models:/churn@nowhere")
    with pytest.raises(InvalidArgumentError, match="unknown target 'nomad'"):
        Deploy(stores).render("nomad", model_uri="models:/churn@champion")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("image", "Not An Image"),
        ("cpu", "lots"),
        ("memory", "1 GB"),
        ("namespace", "Bad_NS"),
        ("port", 0),
    ],
)
def test_a_bad_option_names_its_field(option: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        RenderOptions(**{option: value})
    assert info.value.details["field"] == option


def test_an_alias_is_pinned_to_the_version_it_points_at(churn: Any, stores: Any) -> None:
    facts = Deploy(stores).facts(model_uri="models:/churn@challenger")
    assert (facts.model.version, facts.model.alias, facts.model.uri) == (
        2,
        "challenger",
        "models:/churn/2",
    )
    assert facts.model.onnx_ready
    assert "scikit-learn" in facts.model.packages
