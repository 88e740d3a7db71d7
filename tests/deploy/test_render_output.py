"""Writing a render: byte-identical twice, a diff on change, stale files removed, foreign
files and bad paths refused, nothing written when a render fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shipyard.deploy import Deploy, RenderOptions
from shipyard.deploy.output import INDEX, diff, write
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


def test_an_index_naming_files_outside_the_folder_is_refused(tmp_path: Path) -> None:
    """The index is committed with the render: one edited to name `../victim` must neither
    print that file in a --check diff nor delete it (red-team pass)."""
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    victim.write_text("SECRET=1\n")
    write(out, {"a.yaml": "a\n"}, what="t")
    index = json.loads((out / INDEX).read_text())
    index["files"]["../victim.txt"] = "x"
    (out / INDEX).write_text(json.dumps(index))
    for attempt in (lambda: diff(out, {"a.yaml": "a\n"}), lambda: write(out, {}, what="t")):
        with pytest.raises(ConflictError, match="outside"):
            attempt()
    assert victim.read_text() == "SECRET=1\n"


@pytest.mark.parametrize("link", ["pdb.yaml", "templates", ".shipyard-tmp-x"])
def test_a_render_never_reads_or_writes_through_a_symbolic_link(tmp_path: Path, link: str) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("aws_secret_access_key=1\n")
    write(out, {"pdb.yaml": "a\n", "templates/x.yaml": "x\n"}, what="t")
    target = out / link
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(outside if link == "templates" else outside / "secret")
    files = {"pdb.yaml": "b\n", "templates/x.yaml": "y\n"}
    if link.startswith(".shipyard-tmp"):  # a planted temporary name is never opened
        write(out, files, what="t")
    else:
        with pytest.raises(ConflictError, match="symbolic link"):
            write(out, files, what="t")
    assert (outside / "secret").read_text() == "aws_secret_access_key=1\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_a_render_killed_half_way_is_finished_by_the_next(tmp_path: Path) -> None:
    """The index names every file before the first is written: the files a killed render
    left are the next render's own, and its temporary files are cleaned up."""
    out = tmp_path / "out"
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "import shipyard.deploy.output as o\n"
        "real = o._replace\n"
        "def dying(out, name, blob, *, executable):\n"
        "    if name == 'b.yaml':\n"
        "        (out / '.shipyard-tmp-half').write_bytes(blob[:1])\n"
        "        os.kill(os.getpid(), 9)\n"
        "    real(out, name, blob, executable=executable)\n"
        "o._replace = dying\n"
        f"o.write(Path({str(out)!r}), {{'a.yaml': 'a\\n', 'b.yaml': 'b\\n'}}, what='t')\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], check=False)
    assert killed.returncode == -9 and (out / "a.yaml").exists()
    written = write(out, {"a.yaml": "a\n", "b.yaml": "b\n"}, what="t")
    assert written.changed == ("b.yaml",)
    assert sorted(p.name for p in out.iterdir()) == [INDEX, "a.yaml", "b.yaml"]


def test_a_file_changed_since_the_render_is_not_overwritten(tmp_path: Path) -> None:
    write(tmp_path, {"a.yaml": "replicas: 2\n"}, what="t")
    (tmp_path / "a.yaml").write_text("replicas: 7  # mine\n")
    with pytest.raises(ConflictError, match="changed since it was rendered"):
        write(tmp_path, {"a.yaml": "replicas: 3\n"}, what="t")
    assert (tmp_path / "a.yaml").read_text() == "replicas: 7  # mine\n"


def test_out_naming_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidArgumentError, match="is a file"):
        write(tmp_path / "f", {"a.yaml": "a\n"}, what="t")


@pytest.mark.parametrize(
    "value", ["5m' ; touch /tmp/x ; '", "ghcr.io/a:3\n-e X=1", "${{ secrets.X }}", "{{ .X }}"]
)
def test_a_set_value_that_could_break_out_of_its_place_is_refused(value: str) -> None:
    from shipyard.deploy import parse_settings

    with pytest.raises(InvalidArgumentError, match="the value may hold") as info:
        parse_settings([f"analysis_window={value}"], {"analysis_window": "a window"})
    assert info.value.details["field"] == "set"


def test_an_image_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        RenderOptions(image="ghcr.io/acme/churn:3\n")
    assert info.value.details["field"] == "image"
