"""The environment a saved model needs: a lock of exact package versions, and its check
against the running interpreter.

`log_model` records, in the manifest (`"environment"`) and as a `requirements.txt` in the
artifact store, the exact installed versions of
- the flavor's framework (scikit-learn and skops, onnxruntime…) — its *framework* packages,
- the distributions providing the modules the model's code imports (a Python model's code,
  read with `ast`, so imports inside functions count too),
- what the user declares (`pip_requirements=["requests>=2"]`),
each with the packages it requires, transitively. shipyard itself is left out: it is
installed beside the lock.

Loading compares the lock with what is installed: a different major version (or a missing
package) of a framework package refuses to load unless `ignore_env`; every other difference
is a warning naming the package, the version wanted and the one installed.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError, ModelLoadError
from shipyard.flavors.requirement_checks import (
    check_environment_doc,
    checked_requirements_txt,
    declared_requirement,
)

# installed beside every lock, never pinned by one
_NOT_LOCKED = {"shipyard", "pip", "setuptools", "wheel"}
# distributions that install the same module: a model locked to one loads where the other is
# installed at the same version (xgboost-cpu is xgboost without its CUDA build)
SAME_MODULE: dict[str, tuple[str, ...]] = {
    "xgboost": ("xgboost", "xgboost-cpu"),
    "xgboost-cpu": ("xgboost-cpu", "xgboost"),
}
# how requirements.txt asks for a distribution that has no wheels on some platforms: the
# platform-marker form of pyproject's extras (xgboost-cpu has no macOS wheels)
_PORTABLE: dict[str, tuple[str, ...]] = {
    "xgboost-cpu": (
        "xgboost-cpu=={v}; platform_system == 'Linux' or platform_system == 'Windows'",
        "xgboost=={v}; platform_system != 'Linux' and platform_system != 'Windows'",
    ),
}


class EnvironmentWarning(UserWarning):
    """The running environment differs from the one a model was saved in (not enough to
    refuse it)."""


@dataclass(frozen=True)
class Difference:
    package: str
    wanted: str
    installed: str | None
    level: str  # "missing", "major", "minor", "patch" or "other"
    framework: bool

    @property
    def refuses(self) -> bool:
        return self.framework and self.level in ("missing", "major")

    def __str__(self) -> str:
        kind = "framework, " if self.framework else ""
        return (
            f"{self.package} wanted {self.wanted}, installed {self.installed or 'none'} "
            f"({kind}{self.level})"
        )


@dataclass(frozen=True)
class Environment:
    """A model's lock: `packages` maps each distribution to its exact version."""

    python: str
    packages: dict[str, str]
    framework: tuple[str, ...] = ()
    declared: tuple[str, ...] = ()  # `pip_requirements` as given
    unpinned: tuple[str, ...] = ()  # declared but not installed here: kept as written
    shipyard: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "packages": dict(sorted(self.packages.items())),
            "framework": list(self.framework),
            "declared": list(self.declared),
            "unpinned": list(self.unpinned),
            "shipyard": self.shipyard,
        }

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Environment:
        """The lock of a saved model; for one saved before locks, its framework versions."""
        doc = manifest.get("environment")
        if doc is None:
            old = {k: str(v) for k, v in (manifest.get("requirements") or {}).items() if v}
            return cls(str(manifest.get("python", "")), old, tuple(old))
        doc = check_environment_doc(doc)
        return cls(
            str(doc.get("python", "")),
            {str(k): str(v) for k, v in doc.get("packages", {}).items()},
            tuple(doc.get("framework", ())),
            tuple(doc.get("declared", ())),
            tuple(doc.get("unpinned", ())),
            doc.get("shipyard"),
        )

    def requirements_txt(self) -> str:
        lines = [
            f"# the environment of a shipyard model (saved with Python {self.python}"
            + (f", shipyard {self.shipyard})" if self.shipyard else ")"),
            *(
                line
                for name, version in sorted(self.packages.items())
                for line in _requirement_lines(name, version)
            ),
            *self.unpinned,
        ]
        return "\n".join(lines) + "\n"

    def differences(
        self,
        installed: Callable[[str], str | None] | None = None,
        strict: Iterable[str] | None = None,
    ) -> list[Difference]:
        """How the running environment differs from the lock; `strict` are the framework
        packages (default: the lock's)."""
        installed = installed or installed_version
        framework = {_canon(n) for n in (self.framework if strict is None else strict)}
        out = []
        for name, wanted in sorted(self.packages.items()):
            have = _installed_as(name, installed)
            level = _level(wanted, have)
            if level is not None:
                out.append(Difference(name, wanted, have, level, _canon(name) in framework))
        return out


def _installed_as(name: str, installed: Callable[[str], str | None]) -> str | None:
    """The installed version of `name`, or of a distribution that installs the same module."""
    for dist in SAME_MODULE.get(_canon(name), (name,)):
        have = installed(dist)
        if have is not None:
            return have
    return None


def _requirement_lines(name: str, version: str) -> tuple[str, ...]:
    portable = _PORTABLE.get(_canon(name))
    if portable is None:
        return (f"{name}=={version}",)
    return tuple(line.format(v=version) for line in portable)


def check(
    env: Environment,
    *,
    ignore_env: bool = False,
    strict: Iterable[str] | None = None,
    installed: Callable[[str], str | None] | None = None,
    what: str = "this model",
    warn: bool = True,
) -> list[Difference]:
    """Raise ModelLoadError on a framework's major difference (unless `ignore_env`); warn
    (EnvironmentWarning, if `warn`) of every difference. Returns the differences."""
    found = env.differences(installed, strict)
    refused = [d for d in found if d.refuses]
    if refused and not ignore_env:
        raise ModelLoadError(
            f"{what} needs another version of its framework: "
            + "; ".join(str(d) for d in refused)
            + ". Load it with ignore_env=True (CLI: --ignore-env) to try anyway, or make its "
            "environment: shipyard models env MODEL_URI --venv DIR"
        )
    if found and warn:
        warnings.warn(
            f"{what} was saved in another environment: " + "; ".join(str(d) for d in found),
            EnvironmentWarning,
            stacklevel=3,
        )
    return found


def lock(
    framework: Mapping[str, str | None],
    modules: Iterable[str] = (),
    declared: Iterable[str] = (),
) -> Environment:
    """The lock for a model whose flavor needs `framework`, whose code imports `modules`
    (top-level names) and whose user declared `declared` (pip requirement strings)."""
    roots = {name for name, version in framework.items() if version}
    for module in modules:
        if module not in sys.stdlib_module_names and module != "__future__":
            roots.update(distributions_of(module))
    declared = list(declared)
    unpinned = []
    for text in declared:
        req = declared_requirement(text)  # no URL, no pip option
        have = installed_version(req.name)
        if have is None:
            unpinned.append(text)
        elif req.specifier and not req.specifier.contains(have, prereleases=True):
            raise InvalidArgumentError(
                f"pip_requirements: {text!r} is not what is installed here ({req.name} {have}); "
                "the model would be locked to a version it was not saved with",
                field="pip_requirements",
            )
        else:
            roots.add(req.name)
    packages = _closure(roots)
    return Environment(
        python=".".join(map(str, sys.version_info[:3])),
        packages=packages,
        framework=tuple(sorted(n for n in framework if n in packages)),
        declared=tuple(declared),
        unpinned=tuple(unpinned),
        shipyard=installed_version("shipyard"),
    )


def _closure(roots: Iterable[str]) -> dict[str, str]:
    """Each installed distribution in `roots` and the ones it requires, with their versions."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = _canon(todo.pop())
        if name in seen or name in _NOT_LOCKED:
            continue
        seen.add(name)
        found = _installed(name)
        if found is not None:
            out[found[0]] = found[1]
            todo.extend(found[2])
    return out


@cache
def _installed(name: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(name, version, the names it requires here) of an installed distribution. Cached for
    the process: locking runs on every log_model, and reading metadata scans sys.path."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return None
    needs = []
    for text in dist.requires or ():
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            needs.append(req.name)
    return str(dist.metadata["Name"]), dist.version, tuple(needs)


def _level(wanted: str, have: str | None) -> str | None:
    """How far `have` is from `wanted`: None when equal."""
    from packaging.version import InvalidVersion, Version

    if have is None:
        return "missing"
    if have == wanted:
        return None
    try:
        a, b = Version(wanted), Version(have)
    except InvalidVersion:
        return "other"
    if a == b:
        return None
    ra, rb = (*a.release, 0, 0), (*b.release, 0, 0)
    for i, level in enumerate(("major", "minor", "patch")):
        if ra[i] != rb[i]:
            return level
    return "other"  # pre-, post- or local release of the same version


def installed_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def distributions_of(module: str) -> list[str]:
    """The installed distributions that provide top-level module `module`."""
    return list(_module_map().get(module, []))


@cache
def _module_map() -> Mapping[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _canon(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


# -- a virtualenv that can serve the model -------------------------------------------------------


@dataclass
class VenvPlan:
    """The commands that make `folder` a virtualenv with the lock and shipyard installed."""

    folder: Path
    requirements: Path
    commands: list[list[str]] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.folder / ("Scripts" if sys.platform == "win32" else "bin") / "python"


def plan_venv(env: Environment, folder: Path, *, allow_source: bool = False) -> VenvPlan:
    """The model's packages are installed from wheels only (`--only-binary=:all:`: a wheel
    runs no code when installed, a source build runs its setup), unless `allow_source`;
    shipyard itself is installed after them, as this one was."""
    folder = folder.resolve()
    plan = VenvPlan(folder, folder / "model-requirements.txt")
    pip = [str(plan.python), "-m", "pip", "install"]
    binary = [] if allow_source else ["--only-binary=:all:"]
    plan.commands = [
        [sys.executable, "-m", "venv", str(folder)],
        [*pip, *binary, "-r", str(plan.requirements)],
        [*pip, shipyard_spec()],
    ]
    return plan


def create_venv(
    env: Environment, folder: Path, *, dry_run: bool = False, allow_source: bool = False
) -> VenvPlan:
    """Make `folder` a virtualenv that can serve the model (`dry_run`: only say how)."""
    import subprocess

    requirements = checked_requirements_txt(env)  # every line a requirement, or refused
    plan = plan_venv(env, folder, allow_source=allow_source)
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"--venv: {folder} exists and is not a folder", field="venv")
    if dry_run:
        return plan
    if folder.exists() and any(folder.iterdir()):
        raise InvalidArgumentError(f"{folder} exists and is not empty", field="venv")
    made = subprocess.run(plan.commands[0], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        why = (made.stderr.strip().splitlines() or [f"exit {made.returncode}"])[-1]
        raise InvalidArgumentError(
            f"--venv: could not create a virtualenv in {folder}: {why}", field="venv"
        )
    plan.requirements.write_text(requirements)
    for command in plan.commands[1:]:
        try:
            subprocess.run(command, check=True)
        except subprocess.CalledProcessError as exc:
            hint = "" if allow_source else " (wheels only: --allow-source-builds to build sdists)"
            raise InvalidArgumentError(
                f"pip could not install the model's environment into {folder} (exit "
                f"{exc.returncode}){hint}; its output is above"
            ) from exc
    return plan


def shipyard_spec() -> str:
    """How pip installs this shipyard: from the folder it was installed from (PEP 610's
    direct_url.json), else from the package index at this version."""
    import json
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("shipyard")
    except PackageNotFoundError:
        return "shipyard"
    raw = dist.read_text("direct_url.json")
    url = json.loads(raw).get("url", "") if raw else ""
    if url.startswith("file://"):
        return url.removeprefix("file://")
    return f"shipyard=={dist.version}"
