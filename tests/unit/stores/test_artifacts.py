from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from shipyard.errors import IntegrityError, InvalidArgumentError, NotFoundError
from shipyard.stores.artifacts import LocalArtifactStore, open_artifact_store


def test_put_is_content_addressed(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest, size = store.put_bytes(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert size == 5
    assert store.put_bytes(b"hello") == (digest, 5)  # stored once
    assert store.get_bytes(digest) == b"hello"
    assert list((tmp_path / "tmp").iterdir()) == []  # no temporary file left behind


def test_put_file_and_verified_path(tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(3_000_000))
    store = LocalArtifactStore(tmp_path / "store")
    digest, size = store.put_file(src)
    assert size == 3_000_000
    assert store.local_path(digest).read_bytes() == src.read_bytes()


def test_corruption_is_detected_on_read(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest, _ = store.put_bytes(b"weights")
    path = store._path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="corrupted"):
        store.get_bytes(digest)
    with pytest.raises(IntegrityError, match="corrupted"):
        store.local_path(digest)


def test_missing_and_malformed_digests(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    with pytest.raises(NotFoundError):
        store.get_bytes("0" * 64)
    with pytest.raises(InvalidArgumentError, match="not a sha256"):
        store.get_bytes("../../etc/passwd")


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    class Boom:
        def __init__(self) -> None:
            self.calls = 0

        def read(self, _n: int) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk on fire")
            return b"x" * 10

    store = LocalArtifactStore(tmp_path)
    with pytest.raises(OSError, match="disk on fire"):
        store.put_stream(Boom())  # type: ignore[arg-type]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "sha256").exists()


def test_scheme_selection(tmp_path: Path) -> None:
    assert open_artifact_store(f"file://{tmp_path}").root == tmp_path
    with pytest.raises(InvalidArgumentError, match="not supported yet"):
        open_artifact_store("gopher://x")


def test_a_verified_file_is_not_hashed_again_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.stores import artifacts as module

    store = module.LocalArtifactStore(tmp_path)
    digest, _ = store.put_bytes(b"x" * 1000)
    hashed: list[Path] = []
    real = module.file_digest
    monkeypatch.setattr(module, "file_digest", lambda p: hashed.append(p) or real(p))
    for _ in range(5):
        store.local_path(digest)
    assert len(hashed) == 1
    path = store.local_path(digest)
    path.chmod(0o644)
    path.write_bytes(b"y" * 1000)  # same size, new bytes: its mtime moved
    with pytest.raises(IntegrityError):
        store.local_path(digest)
    assert len(hashed) == 2
