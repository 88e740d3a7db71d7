"""Writing a render: all of it or nothing, and a diff against what the folder held.

A render is a mapping of relative paths to text. `write` compares it with the folder (the
files a previous render wrote are listed in `.shipyard-render.json`), writes every changed
file to a temporary name and renames it into place, removes files the previous render wrote
and this one does not, and returns a unified diff of what changed. A folder holding files no
render wrote is never touched by them: a render only overwrites its own files.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shipyard.errors import ConflictError, InvalidArgumentError

INDEX = ".shipyard-render.json"


@dataclass(frozen=True)
class Written:
    """What a write did: the files of the render, those that changed, and the diff."""

    out: Path
    files: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    diff: str


def check_paths(files: Mapping[str, str | bytes]) -> None:
    """Every path relative, inside the folder, without '..'."""
    for name in files:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or not p.parts or name == INDEX:
            raise InvalidArgumentError(f"a render may not write '{name}'", field="path")


def diff(out: Path, files: Mapping[str, str | bytes]) -> str:
    """The unified diff from the folder's files to the render (binary files by digest)."""
    chunks: list[str] = []
    previous = _index(out)
    for name in sorted(set(files) | set(previous)):
        old = _read(out / name) if name in previous or (out / name).exists() else None
        new = files.get(name)
        if _bytes(old) == _bytes(new):  # text rendered as bytes reads back as text
            continue
        chunks.append(_one_diff(name, old, new))
    return "".join(chunks)


def write(out: Path, files: Mapping[str, str | bytes], *, what: str) -> Written:
    """Write the render into `out`, file by file through a temporary name."""
    check_paths(files)
    previous = _index(out)
    text = diff(out, files)
    foreign = [n for n in sorted(files) if n not in previous and (out / n).exists()]
    if foreign:
        raise ConflictError(
            f"{out} already holds {foreign[0]}, which no render wrote; render into an empty "
            "folder or remove it",
            field="out",
        )
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name in sorted(files):
        data = files[name]
        blob = data.encode() if isinstance(data, str) else data
        target = out / name
        if target.exists() and target.read_bytes() == blob:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(blob)
        if name.endswith(".sh") or name.endswith("/predict"):
            tmp.chmod(0o755)
        os.replace(tmp, target)
        changed.append(name)
    removed = [n for n in sorted(previous) if n not in files]
    for name in removed:
        (out / name).unlink(missing_ok=True)
    index = {
        "what": what,
        "files": {n: _digest(files[n]) for n in sorted(files)},
    }
    tmp = out / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out / INDEX)
    return Written(out, tuple(sorted(files)), tuple(changed), tuple(removed), text)


def _index(out: Path) -> dict[str, str]:
    try:
        doc = json.loads((out / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _read(path: Path) -> str | bytes | None:
    try:
        blob = path.read_bytes()
    except OSError:
        return None
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
