"""Writing a render: all of it or nothing, and a diff against what the folder held.

A render is a mapping of relative paths to text. `write` compares it with the folder (the
files a previous render wrote are listed in `.shipyard-render`), writes every changed
file to a temporary name and renames it into place, removes files the previous render wrote
and this one does not, and returns a unified diff of what changed. A folder holding files no
render wrote is never touched by them: a render only overwrites its own files.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shipyard.errors import ConflictError, InvalidArgumentError

# no .json/.yaml name: `kubectl apply -f DIR` reads every such file in the folder
INDEX = ".shipyard-render"
_TEMP_PREFIX = ".shipyard-tmp-"


@dataclass(frozen=True)
class Written:
    """What a write did: the files of the render, those that changed, and the diff."""

    out: Path
    files: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    diff: str


def check_paths(files: Iterable[str]) -> None:
    """Every path relative, inside the folder, without '..'."""
    for name in files:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or not p.parts or name == INDEX or "\\" in name:
            raise InvalidArgumentError(f"a render may not write '{name}'", field="path")


def diff(out: Path, files: Mapping[str, str | bytes]) -> str:
    """The unified diff from the folder's files to the render (binary files by digest)."""
    chunks: list[str] = []
    previous = _index(out)
    for name in sorted(set(files) | set(previous)):
        old = _read(out, name)
        new = files.get(name)
        if _bytes(old) == _bytes(new):  # text rendered as bytes reads back as text
            continue
        chunks.append(_one_diff(name, old, new))
    return "".join(chunks)


def write(out: Path, files: Mapping[str, str | bytes], *, what: str) -> Written:
    """Write the render into `out`, file by file through a temporary name. The index names
    every file this render may leave behind before the first is written, so a render killed
    half-way leaves files the next render knows as its own."""
    check_paths(files)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--out {out} is a file, not a folder", field="out")
    previous = _index(out)
    text = diff(out, files)
    _check_ownership(out, files, previous)
    out.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(out)
    _write_index(out, what, {**previous, **{n: "" for n in files if n not in previous}})
    changed = []
    for name in sorted(files):
        data = files[name]
        blob = data.encode() if isinstance(data, str) else data
        if _bytes(_read(out, name)) == blob:
            continue
        _replace(out, name, blob, executable=name.endswith(".sh") or name.endswith("/predict"))
        changed.append(name)
    removed = [n for n in sorted(previous) if n not in files]
    for name in removed:
        _safe(out, name).unlink(missing_ok=True)
    _write_index(out, what, {n: _digest(files[n]) for n in sorted(files)})
    return Written(out, tuple(sorted(files)), tuple(changed), tuple(removed), text)


def _check_ownership(
    out: Path, files: Mapping[str, str | bytes], previous: Mapping[str, str]
) -> None:
    """A file no render wrote is never overwritten, nor one changed since the last render."""
    for name in sorted(files):
        current = _read(out, name)
        if current is None:
            continue
        if name not in previous:
            raise ConflictError(
                f"{out} already holds {name}, which no render wrote; render into an empty "
                "folder or remove it",
                field="out",
            )
        recorded = previous[name]
        if recorded and _digest(current) != recorded:
            raise ConflictError(
                f"{out / name} was changed since it was rendered; keep your change elsewhere "
                "(a values file, an overlay) and delete the file, then render again",
                field="out",
            )


def _safe(out: Path, name: str) -> Path:
    """`out/name`, refused when any part of it below `out` is a symbolic link: a render never
    reads or writes through a link (one in a checked-out repository may point anywhere)."""
    path = out
    for part in PurePosixPath(name).parts:
        path = path / part
        if path.is_symlink():
            raise ConflictError(
                f"{path} is a symbolic link; a render neither reads nor writes through one",
                field="out",
            )
    return path


def _replace(out: Path, name: str, blob: bytes, *, executable: bool) -> None:
    target = _safe(out, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    _safe(out, name)  # a folder made a moment ago is no link either
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX)  # O_EXCL: a new file
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o755 if executable else 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean_temporaries(out: Path) -> None:
    """Temporary files a killed render left (never through a link)."""
    for root, dirs, names in os.walk(out):  # os.walk does not follow links by default
        for n in names:
            if n.startswith(_TEMP_PREFIX):
                Path(root, n).unlink(missing_ok=True)
        dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]


def _write_index(out: Path, what: str, files: Mapping[str, str]) -> None:
    _safe(out, INDEX)
    doc = {"what": what, "files": dict(sorted(files.items()))}
    _replace(
        out, INDEX, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(), executable=False
    )


def _index(out: Path) -> dict[str, str]:
    """The files the last render wrote (name -> digest; "" while a render was writing)."""
    try:
        doc = json.loads(_safe(out, INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict):
        return {}
    names = {str(k): str(v) for k, v in files.items()}
    try:
        check_paths(names)
    except InvalidArgumentError:
        raise ConflictError(
            f"{out / INDEX} names a file outside {out}; it was edited by hand: delete it and "
            "render into an empty folder",
            field="out",
        ) from None
    return names


def _read(out: Path, name: str) -> str | bytes | None:
    path = _safe(out, name)
    if not path.is_file():
        return None
    blob = path.read_bytes()
    try:
        return blob.decode()
    except UnicodeDecodeError:
        return blob


def _bytes(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def _digest(data: str | bytes) -> str:
    blob = data.encode() if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _one_diff(name: str, old: str | bytes | None, new: str | bytes | None) -> str:
    if isinstance(old, bytes) or isinstance(new, bytes):
        a = _digest(old) if old is not None else "(none)"
        b = _digest(new) if new is not None else "(none)"
        return f"Binary {name}: {a} -> {b}\n"
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        (new or "").splitlines(keepends=True),
        fromfile=f"a/{name}" if old is not None else "/dev/null",
        tofile=f"b/{name}" if new is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
