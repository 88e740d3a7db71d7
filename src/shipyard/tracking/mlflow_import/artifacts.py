"""Reading the files of an MLflow artifact URI: through a tracking server's artifact proxy
(`mlflow-artifacts:/…`, `/api/2.0/mlflow-artifacts/artifacts`), or from a local folder (a
`file://` URI or a path, or the server's `--artifacts-destination` folder given with
`--artifacts-from`). Other stores (s3://, gs://…) are read through a server that proxies them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast
from urllib.parse import quote, unquote, urlparse

from shipyard.errors import NotFoundError, StoreUnavailableError

if TYPE_CHECKING:
    import httpx

_PROXY = "/api/2.0/mlflow-artifacts/artifacts"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactFile:
    path: str  # relative to the URI listed
    size: int | None


class ArtifactReader(Protocol):
    def list(self, uri: str) -> list[ArtifactFile]: ...

    def open(self, uri: str, path: str) -> AbstractContextManager[BinaryIO]: ...


class LocalArtifacts:
    """Files under a local folder; `root` is where `mlflow-artifacts:/` paths live."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root

    def folder(self, uri: str) -> Path | None:
        parsed = urlparse(uri)
        if parsed.scheme == "mlflow-artifacts":
            return self.root / parsed.path.lstrip("/") if self.root else None
        if parsed.scheme == "file":
            return Path(unquote(parsed.path))
        if not parsed.scheme and uri.startswith("/"):
            return Path(uri)
        return None

    def list(self, uri: str) -> list[ArtifactFile]:
        folder = self.folder(uri)
        if folder is None or not folder.is_dir():
            return []
        return [
            ArtifactFile(p.relative_to(folder).as_posix(), p.stat().st_size)
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        ]

    @contextmanager
    def open(self, uri: str, path: str) -> Iterator[BinaryIO]:
        folder = self.folder(uri)
        file = folder / path if folder else None
        if file is None or not file.is_file():
            raise NotFoundError(f"artifact '{path}' is missing from {uri}")
        with open(file, "rb") as fh:
            yield fh


class ProxiedArtifacts:
    """`mlflow-artifacts:/` URIs through a tracking server's artifact proxy."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def list(self, uri: str) -> list[ArtifactFile]:
        import httpx

        try:
            return list(self._walk(_proxy_path(uri), ""))
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(f"cannot list {uri}: {exc}") from exc

    def _walk(self, root: str, below: str) -> Iterator[ArtifactFile]:
        where = f"{root}/{below}".rstrip("/")
        answer = self.client.get(_PROXY, params={"path": where})
        if answer.status_code == 404:
            return
        answer.raise_for_status()
        for item in answer.json().get("files", []):
            # the proxy answers paths relative to the folder listed
            name = item["path"].rsplit("/", 1)[-1]
            rel = f"{below}/{name}".lstrip("/")
            if item.get("is_dir"):
                yield from self._walk(root, rel)
            else:
                yield ArtifactFile(rel, item.get("file_size"))

    @contextmanager
    def open(self, uri: str, path: str) -> Iterator[BinaryIO]:
        import httpx

        url = f"{_PROXY}/{quote(_proxy_path(uri) + '/' + path)}"
        try:
            with self.client.stream("GET", url) as answer:
                if answer.status_code == 404:
                    raise NotFoundError(f"artifact '{path}' is missing from {uri}")
                answer.raise_for_status()
                yield cast(BinaryIO, _StreamReader(answer.iter_bytes(_CHUNK)))
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(f"cannot read '{path}' of {uri}: {exc}") from exc


def safe_path(path: str) -> str:
    """A relative artifact path as another server gave it, refused if it climbs out."""
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise NotFoundError(f"artifact path {path!r} is not a relative path")
    return Path(path).as_posix()


def _proxy_path(uri: str) -> str:
    return urlparse(uri).path.strip("/")


class _StreamReader:
    """The file-like `read` the artifact store takes, over an HTTP body's chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


class Artifacts:
    """The reader for each URI: local paths from disk, `mlflow-artifacts:/` from the local
    folder or the server given."""

    def __init__(self, local: LocalArtifacts, proxied: ProxiedArtifacts | None) -> None:
        self.local = local
        self.proxied = proxied

    def reader(self, uri: str) -> ArtifactReader | None:
        if self.local.folder(uri) is not None:
            return self.local
        if urlparse(uri).scheme == "mlflow-artifacts" and self.proxied is not None:
            return self.proxied
        return None

    def why_not(self, uri: str) -> str:
        scheme = urlparse(uri).scheme or "path"
        if scheme == "mlflow-artifacts":
            return "artifacts are on an MLflow server: pass --artifacts-from http://<server>"
        if scheme == "runs":  # MLflow itself has no files there (a logged model holds them)
            return f"its source {uri} names no files the server hands out"
        return (
            f"artifacts in {scheme}:// are read through an MLflow server that proxies them: "
            "pass --artifacts-from http://<server>"
        )

    def download(self, uri: str, dest: Path) -> list[ArtifactFile]:
        """Copy every file under `uri` into `dest`; NotFoundError when there is none."""
        reader = self.reader(uri)
        if reader is None:
            raise StoreUnavailableError(self.why_not(uri))
        files = reader.list(uri)
        if not files:
            raise NotFoundError(f"no files at {uri}")
        for item in files:
            target = dest / safe_path(item.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with reader.open(uri, item.path) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        return files
