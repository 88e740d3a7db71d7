"""docker: a multi-stage Dockerfile that serves exactly one model version, and its build
context (.dockerignore, the locked requirements, and with `--model-source bake` the model's
bundle).

    Dockerfile        builder: a virtualenv with the model's lock and shipyard; runtime: that
                      virtualenv on a slim Python pinned by digest, a non-root user, a
                      HEALTHCHECK on readiness, ENTRYPOINT shipyard, CMD serve
    .dockerignore     everything but what the Dockerfile copies
    requirements.txt  the version's recorded lock (distribution==version), nothing else: a
                      scikit-learn model's image carries no torch, ray or tracking extras
    model/            (bake) the version's files as a bundle (`registry.bundle`), checked
                      against their digests when the server starts

With `--model-source pull` the image holds no model: the server fetches the pinned
`models:/NAME/VERSION` from SHIPYARD_DB_URL/SHIPYARD_ARTIFACTS at start and refuses to serve
unless its manifest has the digest recorded here (`shipyard serve --digest`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from shipyard.deploy.targets import BUNDLE_DIR
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.deploy.facts import VersionFacts
    from shipyard.deploy.targets import Context

SETTINGS: dict[str, str] = {
    "base_image": "the Python base of both stages, pinned by digest "
    "(default: python:<the model's Python>-slim@sha256:… known to this shipyard)",
    "shipyard_requirement": "how the image gets shipyard: a wheel in the build context "
    "(default wheels/shipyard-<version>-py3-none-any.whl) or a requirement such as "
    "shipyard==0.1.0 from the index pip is given",
    "extras": "shipyard extras beside the model, comma-separated: postgres, redis, s3, grpc "
    "(default: none when baked, postgres when pulled)",
}

# python:<minor>-slim, each pinned by the digest of its multi-arch index as public Dockerfiles
# pin it (docker.io/library/python; no registry is reachable from where this was written):
#   3.11: python:3.11.16-slim-trixie, maziyarpanahi/openmed Dockerfile at 0e5ae13de3d8
#   3.12: python:3.12.14-slim-trixie, VOCSAP/kerdoos Dockerfile at 08a79b3df1be
#   3.13: python:3.13.14-slim-trixie, CISOToolbox/surface Dockerfile at 389eeb47a630
# Refresh: docker buildx imagetools inspect python:3.12-slim (the "Digest:" line).
BASE_IMAGES: dict[str, str] = {
    "3.11": "python:3.11-slim@sha256:"
    "be1575ed968de893bd54f4c56315ff7c4736ce522c1bca08fd521731aafc0d76",
    "3.12": "python:3.12-slim@sha256:"
    "78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea",
    "3.13": "python:3.13-slim@sha256:"
    "6771159cd4fa5d9bba1258caf0b82e6b73458c694d178ad97c5e925c2d0e1a91",
}
# the extras a serving image may add: the stores it reads and the protocols it speaks
SERVING_EXTRAS = ("postgres", "redis", "s3", "grpc")
_PINNED = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_WHEEL = re.compile(r"^[A-Za-z0-9_.\-/]+\.whl$")
_REQUIREMENT = re.compile(r"^shipyard\s*(==|~=|>=)\s*[0-9][A-Za-z0-9.+!-]*$")
UID = 10001
VENV = "/opt/venv"


def render(context: Context) -> dict[str, str | bytes]:
    version = context.facts.model
    options = context.options
    base = _base_image(version.python, options.setting("base_image", ""))
    extras = _extras(
        options.setting("extras", "" if options.model_source == "bake" else "postgres")
    )
    wheel, requirement = _shipyard(context, extras)
    files: dict[str, str | bytes] = {
        "requirements.txt": requirements_txt(version),
        ".dockerignore": _dockerignore(bake=options.model_source == "bake", wheel=wheel),
        "Dockerfile": _dockerfile(context, base, wheel, requirement, extras),
    }
    if options.model_source == "bake":
        files.update(bundle_files(context, version))
    return files


def requirements_txt(version: VersionFacts) -> str:
    """The version's lock, one exact pin a line: what it was saved with, nothing more."""
    pins = checked_pins(version, version.packages)
    header = [
        f"# {version.uri}: the packages its {version.flavor} model was saved with (its lock).",
        "# shipyard is installed beside them by the Dockerfile, never pinned here.",
    ]
    return "\n".join(header + pins) + "\n"


def checked_pins(version: VersionFacts, packages: Mapping[str, str]) -> list[str]:
    """The requirement lines of `packages` (name -> exact version), each checked as
    `shipyard models env` checks a lock: a stored lock whose value is anything but a
    requirement (`2.4.6\n--extra-index-url …`) is refused, so nothing is written."""
    from shipyard.errors import ModelLoadError
    from shipyard.flavors.environment import Environment
    from shipyard.flavors.requirement_checks import checked_requirements_txt

    for name, value in sorted(packages.items()):  # one at a time: the error names it
        try:
            checked_requirements_txt(Environment(python=version.python, packages={name: value}))
        except ModelLoadError as exc:
            raise InvalidArgumentError(
                f"{version.uri}'s recorded lock pins {name[:80]!r} to {value[:80]!r}, which is "
                f"not a version: {exc.message}; register the model again from a clean "
                "environment",
                field="model_uri",
            ) from exc
    text = checked_requirements_txt(Environment(python=version.python, packages=dict(packages)))
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def bundle_files(context: Context, version: VersionFacts) -> dict[str, str | bytes]:
    """The version's files as a bundle under model/, each verified against its digest."""
    from shipyard.registry.bundle import pack

    files = dict(context.read_files(version, False))
    if version.onnx_digest:  # a conversion made after registering: served by onnxruntime
        files.update(context.read_files(version, True))
    packed = pack(
        name=version.name,
        version=version.version,
        digest=version.digest,
        onnx_digest=version.onnx_digest,
        files=files,
    )
    return {f"model/{path}": _text_or_bytes(data) for path, data in packed.items()}


def _text_or_bytes(data: bytes) -> str | bytes:
    """Text files as text (what the writer's diff reads back from the folder), same bytes."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def _base_image(python: str, chosen: str) -> str:
    if chosen:
        if not _PINNED.match(chosen):
            raise InvalidArgumentError(
                f"--set base_image={chosen}: pin it by digest, e.g. "
                f"python:{python}-slim@sha256:<64 hex digits> (docker buildx imagetools "
                f"inspect python:{python}-slim prints it)",
                field="set",
            )
        return chosen
    if python not in BASE_IMAGES:
        raise InvalidArgumentError(
            f"this model was saved with Python {python}, for which shipyard knows no pinned "
            f"slim image (it knows {', '.join(BASE_IMAGES)}); give one with --set "
            f"base_image=python:{python}-slim@sha256:<digest>",
            field="set",
        )
    return BASE_IMAGES[python]


def _extras(text: str) -> list[str]:
    extras = sorted({e.strip() for e in text.split(",") if e.strip()})
    unknown = [e for e in extras if e not in SERVING_EXTRAS]
    if unknown:
        raise InvalidArgumentError(
            f"--set extras: '{unknown[0]}' is not a serving extra (they are "
            f"{', '.join(SERVING_EXTRAS)}); the model's own framework comes from its lock",
            field="set",
        )
    return extras


def _shipyard(context: Context, extras: list[str]) -> tuple[str | None, str]:
    """(the wheel to copy into the image or None, the pip argument that installs shipyard)."""
    default = f"wheels/shipyard-{context.facts.shipyard_version or '0.1.0'}-py3-none-any.whl"
    chosen = context.options.setting("shipyard_requirement", default).strip()
    suffix = f"[{','.join(extras)}]" if extras else ""
    if _WHEEL.match(chosen) and not chosen.startswith("/") and ".." not in chosen.split("/"):
        return chosen, f"/build/{chosen}{suffix}"
    if _REQUIREMENT.match(chosen):
        op = re.search(r"==|~=|>=", chosen)
        assert op is not None
        return None, f"shipyard{suffix}{chosen[op.start() :].replace(' ', '')}"
    raise InvalidArgumentError(
        f"--set shipyard_requirement={chosen}: give a wheel path inside the build context "
        "(wheels/shipyard-0.1.0-py3-none-any.whl) or a requirement like shipyard==0.1.0",
        field="set",
    )


def _dockerignore(*, bake: bool, wheel: str | None) -> str:
    lines = [
        "# Only what the Dockerfile copies goes to the builder.",
        "*",
        "!requirements.txt",
    ]
    if bake:
        lines.append("!model")
    if wheel:
        lines.append(f"!{wheel}")
    return "\n".join(lines) + "\n"


def _dockerfile(
    context: Context, base: str, wheel: str | None, requirement: str, extras: list[str]
) -> str:
    lines = [
        *_header(context, wheel, requirement, extras),
        *_builder(base, wheel, requirement),
        *_runtime(context, base),
    ]
    return "\n".join(lines) + "\n"


def _header(context: Context, wheel: str | None, requirement: str, extras: list[str]) -> list[str]:
    """The comments that say what the image is, how to build it and why it is so."""
    version = context.facts.model
    bake = context.options.model_source == "bake"
    port, tag = context.options.port, context.image()
    alias = f" (alias {version.alias} when rendered)" if version.alias else ""
    run = f"#   docker run -p {port}:{port} {tag}"
    if not bake:
        run += " -e SHIPYARD_DB_URL=… -e SHIPYARD_ARTIFACTS=…"
    folder = wheel.rsplit("/", 1)[0] if wheel and "/" in wheel else "."
    if wheel:
        source = [
            f"# shipyard comes from the wheel {wheel}, copied into the build",
            "# context (no index needs to know shipyard); --set shipyard_requirement=",
            "# shipyard==X installs it from your index instead.",
        ]
    else:
        source = [
            f"# shipyard comes from the index pip is given ({requirement}); --set",
            "# shipyard_requirement=wheels/<wheel> copies a wheel instead.",
        ]
    if bake:
        model = [
            "# runtime: that virtualenv on the same slim base, as a non-root user, with the",
            f"# model's bundle in {BUNDLE_DIR}, every file checked against its digest when the",
            "# server starts.",
        ]
    else:
        model = [
            "# runtime: that virtualenv on the same slim base, as a non-root user; the server",
            "# pulls the pinned version from SHIPYARD_DB_URL/SHIPYARD_ARTIFACTS at start and",
            "# refuses it unless its manifest has the digest above.",
        ]
    return [
        "# syntax=docker/dockerfile:1",
        "#",
        f"# The serving image of {version.uri}{alias}, a {version.flavor} model",
        f"# with manifest digest sha256:{version.digest}.",
        f"# Rendered by shipyard {context.facts.shipyard_version}. Build from this folder:",
        "#",
        *([f"#   pip wheel --no-deps -w {folder} <shipyard's source folder>"] if wheel else []),
        f"#   docker build -t {tag} .",
        run,
        "#",
        "# builder: a virtualenv with the model's lock (requirements.txt: the exact versions",
        "# of its framework and what that needs) and shipyard, installed in one resolve so",
        "# the lock decides every version they share.",
        *source,
        *model,
        f"# Extras: {', '.join(extras) or 'none'} (--set extras=). No torch, ray or tracking",
        "# server extras unless the model's lock names them.",
        "#",
        "# The base is python:<the model's Python>-slim pinned by the digest of its multi-arch",
        "# index (shipyard/deploy/targets/docker.py says where each digest was found);",
        "# --set base_image=IMAGE@sha256:… replaces it.",
        "",
    ]


def _builder(base: str, wheel: str | None, requirement: str) -> list[str]:
    return [
        f"FROM {base} AS builder",
        "",
        "ENV PIP_DISABLE_PIP_VERSION_CHECK=1",
        "",
        f"RUN python -m venv {VENV}",
        "",
        "WORKDIR /build",
        "COPY requirements.txt ./",
        *([f"COPY {wheel} ./{wheel}"] if wheel else []),
        f'RUN {VENV}/bin/pip install --no-cache-dir -r requirements.txt "{requirement}"',
        "",
        "",
    ]


def _runtime(context: Context, base: str) -> list[str]:
    version = context.facts.model
    port = context.options.port
    args = context.serve_args()  # with --digest: the baked bundle is checked at start too
    ready = f"http://127.0.0.1:{port}{context.ready_path}"
    probe = ["python", "-c", f"import urllib.request; urllib.request.urlopen('{ready}', timeout=4)"]
    bake = context.options.model_source == "bake"
    return [
        f"FROM {base} AS runtime",
        "",
        f'LABEL org.opencontainers.image.title="{context.facts.app}" \\',
        f'      org.opencontainers.image.version="{version.version}" \\',
        f'      org.opencontainers.image.description="shipyard serving {version.uri}" \\',
        f'      dev.shipyard.model.uri="{version.uri}" \\',
        f'      dev.shipyard.model.digest="sha256:{version.digest}"',
        "",
        f"ENV PATH={VENV}/bin:$PATH \\",
        "    PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    SHIPYARD_HOME=/home/shipyard/.shipyard",
        "",
        f"RUN groupadd --system --gid {UID} shipyard \\",
        f"    && useradd --system --uid {UID} --gid {UID} --create-home "
        "--home-dir /home/shipyard \\",
        "       --shell /usr/sbin/nologin shipyard",
        "",
        f"COPY --from=builder {VENV} {VENV}",
        *([f"COPY model/ {BUNDLE_DIR}/"] if bake else []),
        "",
        f"USER {UID}:{UID}",
        "WORKDIR /home/shipyard",
        "",
        f"EXPOSE {port}",
        "",
        "# No curl in slim images: the standard library asks the model's V2 ready route (open",
        "# like the health routes), which answers 200 once the model is loaded and warmed up",
        "# and 503 while it loads or drains.",
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\",
        f"    CMD {json.dumps(probe)}",
        "",
        'ENTRYPOINT ["shipyard"]',
        f"CMD {json.dumps(args)}",
    ]
