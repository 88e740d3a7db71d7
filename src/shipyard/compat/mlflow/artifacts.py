"""MLflow's artifact proxy (`mlflow-artifacts`): uploads, downloads, listings and deletes of
run and logged-model files, streamed through the server into shipyard's artifact store.

    /api/2.0/mlflow-artifacts/artifacts/<exp>/<run_id>/artifacts/<path>          a run's file
    /api/2.0/mlflow-artifacts/artifacts/<exp>/models/<model_id>/artifacts/<path> a logged model's
    /api/2.0/mlflow-artifacts/artifacts/registry/<name>/<version>/<path>         a version's (read)

These are the paths the URIs this server hands out resolve to (a run's `artifact_uri`, a
logged model's `artifact_location`, a version's download URI). An upload is hashed and written
as it arrives (at most `UPLOAD_BUFFER` bytes held), recorded only once whole; a download
streams the verified file. Every answer is a download (`nosniff`, a sandboxing CSP): an
artifact never runs as this origin's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from shipyard.compat.mlflow import ARTIFACT_PREFIXES
from shipyard.compat.mlflow.app import error_code, error_response
from shipyard.errors import InvalidArgumentError, ShipyardError

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.requests import Request
    from starlette.responses import Response

    from shipyard.stores import Stores
    from shipyard.tracking.logged_models import ArtifactRecord

PREFIXES: Final = tuple(p.rstrip("/") for p in ARTIFACT_PREFIXES)
UPLOAD_BUFFER: Final = 1 << 20
_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


@dataclass(frozen=True)
class Place:
    """Whose file a proxy path names: ("run", run_id), ("model", model_id) or
    ("version", "name/version"), and the path under it ("" for its root)."""

    kind: str
    owner: str
    path: str


def place_of(path: str) -> Place:
    """Parse a proxy path (InvalidArgumentError for one this server never hands out)."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) >= 3 and parts[0] == "registry":
        return Place("version", f"{parts[1]}/{parts[2]}", "/".join(parts[3:]))
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        return Place("model", parts[2], "/".join(parts[4:]))
    if len(parts) >= 3 and parts[2] == "artifacts":
        return Place("run", parts[1], "/".join(parts[3:]))
    raise InvalidArgumentError(
        f"'{path[:200]}' is not an artifact path of this server: it answers "
        "<experiment>/<run_id>/artifacts/…, <experiment>/models/<model_id>/artifacts/… and "
        "registry/<name>/<version>/…",
        field="path",
    )


class ArtifactProxy:
    def __init__(self, stores: Stores) -> None:
        from shipyard.registry.mlflow_export import VersionFiles
        from shipyard.tracking import RemoteRuns
        from shipyard.tracking.logged_models import LoggedModels

        self.runs = RemoteRuns(stores)
        self.models = LoggedModels(stores)
        self.versions = VersionFiles(stores)

    # -- what each owner holds -------------------------------------------------------------------

    def records(self, place: Place) -> list[ArtifactRecord]:
        if place.kind == "run":
            return list(self.runs.artifacts(place.owner))
        if place.kind == "model":
            return self.models.files(place.owner)
        return self.versions.files(place.owner)

    def file(self, place: Place) -> tuple[ArtifactRecord, Path]:
        if place.kind == "run":
            return self.runs.artifact_file(place.owner, place.path)
        if place.kind == "model":
            return self.models.file(place.owner, place.path)
        return self.versions.file(place.owner, place.path)

    def listing(self, place: Place) -> dict[str, Any]:
        from shipyard.tracking.logged_models import clean_path, under

        prefix = clean_path(place.path, allow_empty=True)
        files = []
        for name, record in under(self.records(place), prefix):
            entry: dict[str, Any] = {"path": name.rsplit("/", 1)[-1], "is_dir": record is None}
            if record is not None:
                entry["file_size"] = record.size
            files.append(entry)
        return {"files": files} if files else {}

    def delete(self, place: Place) -> dict[str, Any]:
        if place.kind == "run":
            self.runs.delete_artifacts(place.owner, place.path)
        elif place.kind == "model":
            self.models.delete_files(place.owner, place.path)
        else:
            raise InvalidArgumentError("a registered version's files cannot be deleted")
        return {}

    def opener(self, place: Place) -> Any:
        """The upload context for `place` (a writer when entered)."""
        if place.kind == "run":
            return self.runs.upload(place.owner, place.path)
        if place.kind == "model":
            return self.models.upload(place.owner, place.path)
        raise InvalidArgumentError("a registered version's files cannot be written")

    # -- HTTP ------------------------------------------------------------------------------------

    async def answer(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from shipyard.serving.asgi import json_response

        path = request.path_params.get("path", "")
        try:
            if not path:  # the listing route: ?path=<dir>
                if request.method not in ("GET", "HEAD"):
                    return _not_found(request)
                place = place_of(request.query_params.get("path", ""))
                return json_response(await run_in_threadpool(self.listing, place))
            place = place_of(path)
            if request.method in ("GET", "HEAD"):
                return await self._download(place)
            if request.method == "PUT":
                await self._upload(place, request)
                return json_response({})
            if request.method == "DELETE":
                return json_response(await run_in_threadpool(self.delete, place))
            return _not_found(request)
        except ShipyardError as exc:
            status, code = error_code(exc)
            return error_response(status, code, exc.message)

    async def _download(self, place: Place) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import FileResponse

        record, local = await run_in_threadpool(self.file, place)
        name = record.path.rsplit("/", 1)[-1]
        return FileResponse(
            local,
            media_type="application/octet-stream",
            headers=_HEADERS,
            filename=name,
            content_disposition_type="attachment",
        )

    async def _upload(self, place: Place, request: Request) -> None:
        """Write the body as it arrives; record it when whole (nothing if the client stops)."""
        import sys

        from starlette.concurrency import run_in_threadpool

        context = self.opener(place)
        writer = await run_in_threadpool(context.__enter__)
        try:
            buffer = bytearray()
            async for chunk in request.stream():
                buffer += chunk
                if len(buffer) >= UPLOAD_BUFFER:
                    await run_in_threadpool(writer.write, bytes(buffer))
                    buffer.clear()
            if buffer:
                await run_in_threadpool(writer.write, bytes(buffer))
        except BaseException:
            await run_in_threadpool(context.__exit__, *sys.exc_info())
            raise
        await run_in_threadpool(context.__exit__, None, None, None)


def _not_found(request: Request) -> Response:
    return error_response(
        404,
        "ENDPOINT_NOT_FOUND",
        f"No API endpoint for {request.method} {request.url.path} on this server",
    )


def mount_artifacts(app: Any, stores: Stores) -> ArtifactProxy:
    proxy = ArtifactProxy(stores)
    methods = ["GET", "HEAD", "PUT", "DELETE", "POST"]
    for prefix in PREFIXES:
        app.add_route(prefix + "/artifacts", proxy.answer, methods=methods, include_in_schema=False)
        app.add_route(
            prefix + "/artifacts/{path:path}",
            proxy.answer,
            methods=methods,
            include_in_schema=False,
        )
        app.add_route(prefix + "/{path:path}", _unknown, methods=methods, include_in_schema=False)
    return proxy


async def _unknown(request: Request) -> Response:
    """Multipart uploads and presigned URLs: this server does neither (server-info says so)."""
    return _not_found(request)
