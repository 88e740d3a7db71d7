"""What a model's environment may ask pip for: named packages, version specifiers and
environment markers — never a URL, a path or a pip option.

A requirements file is read by pip, and pip runs code for some lines: a direct URL
(`pkg @ file:///…`, `https://…`, `git+…`) is built from source (its setup.py runs), and an
option line (`--index-url`, `-e`, `-r /etc/passwd`) changes where packages come from or what
is read. `pip_requirements` with a URL is refused when the model is logged; the lock is read
from the store, where anyone who can write it may have put anything, so every line is
checked again each time the file is made (`models env`, `--venv`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, ModelLoadError

if TYPE_CHECKING:
    from packaging.requirements import Requirement

    from shipyard.flavors.environment import Environment

_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,200}[A-Za-z0-9])?")


def declared_requirement(text: str) -> Requirement:
    """A `pip_requirements` entry as a Requirement; InvalidArgumentError for anything else,
    a direct URL included."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidArgumentError(
            f"pip_requirements: {text!r} is not a requirement ({exc})", field="pip_requirements"
        ) from exc
    if req.url:
        raise InvalidArgumentError(
            f"pip_requirements: {text!r} is a direct URL: pip would build it from source, "
            "running its code wherever the model's environment is made; publish the package "
            "to a package index and require it by name and version",
            field="pip_requirements",
        )
    return req


def checked_requirements_txt(env: Environment) -> str:
    """`env.requirements_txt()` with every line checked: a name, version specifiers and
    markers (written back as packaging reads them); ModelLoadError naming the first line that
    is anything else."""
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for line in env.requirements_txt().splitlines():
        if not line.strip() or line.startswith("# "):
            out.append(line)
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            req = None
        if req is None or req.url or not _NAME.fullmatch(req.name) or line.lstrip() != line:
            raise ModelLoadError(
                f"the model's environment asks pip for {line[:80]!r}, which is not a package "
                "requirement (a name, versions, markers); refusing to write it (the stored "
                "lock was changed, or logged by another tool)"
            )
        out.append(str(req))
    return "\n".join(out) + "\n"


def check_environment_doc(doc: Any) -> Mapping[str, Any]:
    """A manifest's `environment`, each field of the type a lock has; ModelLoadError naming
    the field otherwise."""
    if not isinstance(doc, Mapping):
        raise ModelLoadError(
            f"the model's manifest field 'environment' is {type(doc).__name__}, not an object"
        )
    fields: dict[str, Any] = {
        "python": str,
        "packages": dict,
        "framework": list,
        "declared": list,
        "unpinned": list,
        "shipyard": (str, type(None)),
    }
    for key, kind in fields.items():
        if key in doc and not isinstance(doc[key], kind):
            raise ModelLoadError(
                f"the model's manifest field 'environment.{key}' is "
                f"{type(doc[key]).__name__}, not what a lock holds"
            )
    texts = [*doc.get("packages", {}).items(), *doc.get("framework", ())]
    texts += [*doc.get("declared", ()), *doc.get("unpinned", ())]
    for item in texts:
        if not all(isinstance(v, str) for v in (item if isinstance(item, tuple) else (item,))):
            raise ModelLoadError("the model's manifest field 'environment' holds a non-text entry")
    return doc
