"""How a run artifact is answered over HTTP, so that its bytes never run as this origin's code.

Artifacts are whatever a training script wrote: an HTML report may hold `<script>`, an SVG an
`onload`, a YAML file `!!js/function`. Every answer therefore carries `nosniff` and a
Content-Security-Policy that sandboxes the document (no scripts, an opaque origin, nothing
loaded from anywhere). On top of that:

- raster images keep their type; `inline` shows them, otherwise they download;
- HTML and SVG keep their type only inside that sandbox;
- anything else that reads as UTF-8 text (YAML, JSON, CSV, logs…) is `text/plain`;
- the rest is `application/octet-stream` and always a download.

`preview` answers the first `PREVIEW_BYTES` only (the `x-artifact-truncated` header says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from starlette.responses import Response

    from shipyard.stores.records import ArtifactRecord

PREVIEW_BYTES: Final = 1 << 20
SANDBOX: Final = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
IMAGES: Final = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".avif": "image/avif",
}
SANDBOXED: Final = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SNIFF = 8192


def media_type(path: str, head: bytes) -> tuple[str, bool]:
    """(the Content-Type to answer with, whether it may be shown inline) for an artifact named
    `path` whose first bytes are `head`."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGES:
        return IMAGES[suffix], True
    if suffix in SANDBOXED:
        return SANDBOXED[suffix], True
    if _is_text(head):
        return "text/plain; charset=utf-8", True
    return "application/octet-stream", False


def _is_text(head: bytes) -> bool:
    sample = head[:_SNIFF]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the sample's end is still text
        return exc.start >= len(sample) - 3 and len(sample) == _SNIFF
    return True


def artifact_response(
    record: ArtifactRecord, file: Path, *, inline: bool, preview: bool
) -> Response:
    """The answer for a run artifact stored at `file` (already verified against its digest)."""
    from starlette.responses import FileResponse, Response

    with open(file, "rb") as fh:
        head = fh.read(PREVIEW_BYTES if preview else _SNIFF)
    kind, showable = media_type(record.path, head)
    disposition = "inline" if inline and showable else "attachment"
    name = record.path.rsplit("/", 1)[-1]
    headers = {
        "x-content-type-options": "nosniff",
        "content-security-policy": SANDBOX,
        "content-disposition": f"{disposition}; filename*=UTF-8''{quote(name, safe='')}",
        "cache-control": "private, no-cache",
        "x-artifact-size": str(record.size),
        "x-artifact-digest": record.digest,
    }
    if preview:
        truncated = record.size > len(head)
        headers["x-artifact-truncated"] = "1" if truncated else "0"
        return Response(head, media_type=kind, headers=headers)
    return FileResponse(file, media_type=kind, headers=headers)
