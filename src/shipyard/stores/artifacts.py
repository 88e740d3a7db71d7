"""Content-addressed artifact storage (sha256). Written to a temp name, then renamed; reads
verify the digest, so a corrupted or tampered file is never handed out."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from shipyard.errors import IntegrityError, InvalidArgumentError, NotFoundError

_CHUNK = 1 << 20
# how long a hashed file whose size, mtime and inode did not change counts as verified
VERIFIED_SECONDS = 60.0
_TMP_PREFIX = ".put-"  # a write in progress, under root/tmp until it is renamed into place
MAX_PATH = 1024  # an artifact's path under its run or model


class ArtifactStore(Protocol):
    def put_file(self, src: Path) -> tuple[str, int]: ...
    def put_bytes(self, data: bytes) -> tuple[str, int]: ...
    def get_bytes(self, digest: str) -> bytes: ...
    def local_path(self, digest: str) -> Path: ...
    def exists(self, digest: str) -> bool: ...


def _check_digest(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidArgumentError(f"'{digest}' is not a sha256 hex digest")
    return digest


def stale_temp_files(folder: Path, pattern: str, grace_seconds: float) -> list[Path]:
    """Temporary files under `folder` matching `pattern` untouched for `grace_seconds`: what a
    killed writer left behind. Younger ones may belong to a write in progress and are kept."""
    import time

    if not folder.is_dir():
        return []
    cutoff = time.time() - grace_seconds
    found = []
    for path in sorted(folder.glob(pattern)):
        try:
            if path.is_file() and path.lstat().st_mtime <= cutoff:
                found.append(path)
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            continue
    return found


def clean_path(path: str, *, allow_empty: bool = False) -> str:
    """A relative artifact path with "/" separators; "..", absolute paths, backslashes and
    control characters are refused (an artifact never names a place outside its owner)."""
    text = path.strip("/")
    if not text:
        if allow_empty:
            return ""
        raise InvalidArgumentError("the artifact path is empty", field="path")
    parts = PurePosixPath(text).parts
    bad = (
        len(text) > MAX_PATH
        or "\\" in text
        or any(ord(ch) < 32 for ch in text)
        or any(p in ("..", ".") for p in parts)
        or "//" in text
    )
    if bad:
        raise InvalidArgumentError(
            f"invalid artifact path {path[:200]!r}: use a relative path of at most {MAX_PATH} "
            "characters without '..' or '\\'",
            field="path",
        )
    return "/".join(parts)


def file_digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class LocalArtifactStore:
    """Artifacts under `root/sha256/ab/abcdef…`. The constructor does no I/O."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        # digest -> (stat identity, when) of files hashed lately: a preview asked for forty
        # times at once hashes a 200 MB file once, not forty times
        self._verified: dict[str, tuple[tuple[int, int, int], float]] = {}
        self._verifying: dict[str, threading.Lock] = {}

    def _path(self, digest: str) -> Path:
        digest = _check_digest(digest)
        return self.root / "sha256" / digest[:2] / digest

    def _tmp_dir(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def _commit(self, tmp_name: str, digest: str) -> None:
        dest = self._path(digest)
        if dest.exists():
            os.unlink(tmp_name)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp_name, 0o444)
        os.replace(tmp_name, dest)  # atomic: readers see the whole file or none

    def stale_temp_files(self, grace_seconds: float) -> list[Path]:
        """Half-written artifacts of killed processes (see `put_stream`)."""
        return stale_temp_files(self.root / "tmp", f"{_TMP_PREFIX}*", grace_seconds)

    def writer(self) -> ArtifactWriter:
        """A file written chunk by chunk (an upload as it arrives), stored when committed."""
        return ArtifactWriter(self)

    def put_stream(self, src: BinaryIO) -> tuple[str, int]:
        with self.writer() as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
            return out.commit()

    def put_file(self, src: Path) -> tuple[str, int]:
        if not Path(src).is_file():
            raise NotFoundError(f"no such file: {src}")
        with open(src, "rb") as fh:
            return self.put_stream(fh)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        import io

        digest = hashlib.sha256(data).hexdigest()
        if self._path(digest).exists():  # content-addressed: already stored, nothing to write
            return digest, len(data)
        return self.put_stream(io.BytesIO(data))

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def local_path(self, digest: str) -> Path:
        """The path of a verified artifact. Raises IntegrityError if the bytes changed. A
        file hashed in the last VERIFIED_SECONDS whose size, mtime and inode are unchanged is
        not hashed again."""
        path = self._path(digest)
        if not path.exists():
            raise NotFoundError(f"artifact sha256:{digest} is missing from {self.root}")
        with self._verifying.setdefault(digest, threading.Lock()):
            if self._still_verified(digest, path):
                return path
            self._verify(digest, path)
        return path

    def _still_verified(self, digest: str, path: Path) -> bool:
        seen = self._verified.get(digest)
        if seen is None or time.monotonic() - seen[1] > VERIFIED_SECONDS:
            return False
        st = path.stat()
        return seen[0] == (st.st_size, st.st_mtime_ns, st.st_ino)

    def _verify(self, digest: str, path: Path) -> None:
        st = path.stat()
        actual = file_digest(path)
        if actual != digest:
            raise IntegrityError(
                f"artifact sha256:{digest} is corrupted (its content hashes to {actual[:12]}…); "
                "restore it from a backup or register the model again"
            )
        if len(self._verified) > 4096:
            self._verified.clear()
        self._verified[digest] = ((st.st_size, st.st_mtime_ns, st.st_ino), time.monotonic())

    def get_bytes(self, digest: str) -> bytes:
        path = self._path(digest)
        if not path.exists():
            raise NotFoundError(f"artifact sha256:{digest} is missing from {self.root}")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"artifact sha256:{digest} is corrupted (its content hashes to {actual[:12]}…); "
                "restore it from a backup or register the model again"
            )
        return data

    def copy_to(self, digest: str, dest: Path) -> Path:
        shutil.copyfile(self.local_path(digest), dest)
        return dest


class ArtifactWriter:
    """Hashes and writes chunks to a temporary file; `commit` renames it into place by its
    digest. Leaving the `with` block without a commit removes the temporary file."""

    def __init__(self, store: LocalArtifactStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        fd, self._tmp = tempfile.mkstemp(dir=store._tmp_dir(), prefix=_TMP_PREFIX)
        self._out: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        if self._out is None:
            raise ValueError("this artifact is already committed")
        self._hash.update(chunk)
        self._out.write(chunk)
        self.size += len(chunk)

    def commit(self) -> tuple[str, int]:
        if self._out is None:
            raise ValueError("this artifact is already committed")
        out, self._out = self._out, None
        out.flush()
        os.fsync(out.fileno())
        out.close()
        digest = self._hash.hexdigest()
        self._store._commit(self._tmp, digest)
        return digest, self.size

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def open_artifact_store(location: str) -> LocalArtifactStore:
    """Pick the adapter by URI scheme. Only local folders (`/path` or `file:///path`) for now."""
    if location.startswith("file://"):
        return LocalArtifactStore(location[len("file://") :])
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise InvalidArgumentError(
            f"artifact store scheme '{scheme}://' is not supported yet; use a local folder"
        )
    return LocalArtifactStore(location)
