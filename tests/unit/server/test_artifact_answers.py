"""The type and disposition a run artifact is answered with: images and text may show inline,
HTML and SVG only under the sandboxing policy, everything else downloads as bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.server.artifact_answers import PREVIEW_BYTES, artifact_response, media_type
from shipyard.stores.records import ArtifactRecord


@pytest.mark.parametrize(
    ("path", "head", "expected"),
    [
        ("plot.PNG", b"\x89PNG", ("image/png", True)),
        ("report.html", b"<script>", ("text/html; charset=utf-8", True)),
        ("icon.svg", b"<svg onload=x>", ("image/svg+xml", True)),
        ("conf.yaml", b"a: !!js/function f", ("text/plain; charset=utf-8", True)),
        ("data.json", b'{"a": 1}', ("text/plain; charset=utf-8", True)),
        ("MLmodel", "名前: ü\n".encode(), ("text/plain; charset=utf-8", True)),
        ("model.pkl", b"\x80\x04\x95\x00", ("application/octet-stream", False)),
        ("notes.txt", b"a\x00b", ("application/octet-stream", False)),
    ],
)
def test_media_types(path: str, head: bytes, expected: tuple[str, bool]) -> None:
    assert media_type(path, head) == expected


def test_a_utf8_character_cut_by_the_sample_is_still_text() -> None:
    head = ("x" * 8190 + "é").encode()[:8192]  # é's two bytes cut after the first
    assert len(head) == 8192 and media_type("log", head)[1] is True


def test_every_answer_is_sandboxed_and_a_preview_is_cut(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"<html>" + b"x" * PREVIEW_BYTES)
    record = ArtifactRecord("out/page one.html", "0" * 64, big.stat().st_size)
    answer = artifact_response(record, big, inline=True, preview=True)
    assert answer.headers["content-security-policy"].startswith("sandbox;")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-disposition"] == "inline; filename*=UTF-8''page%20one.html"
    assert answer.headers["x-artifact-truncated"] == "1"
    assert len(answer.body) == PREVIEW_BYTES
    download = artifact_response(record, big, inline=False, preview=False)
    assert download.headers["content-disposition"].startswith("attachment;")
