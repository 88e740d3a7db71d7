"""edge: a self-contained bundle for a device without shipyard: the model's verified ONNX
conversion, its signature, a lock of onnxruntime and numpy alone, and a one-file predictor
(standard library + numpy + onnxruntime) that checks every row against the signature.

    pyproject.toml            pip install ./<out> gives <name>-predict (and the module)
    requirements.txt          onnxruntime==… and numpy==…, nothing else
    README.md                 how to run it
    <package>/predictor.py    CLI (rows in JSON -> predictions) and --serve (POST /predict)
    <package>/model.onnx      the conversion the registry verified against the model
    <package>/signature.json  the columns, their types, which take a missing value

A version without a verified ONNX conversion is refused (field "model_uri"): the device runs
onnxruntime alone.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.deploy.targets.docker import checked_pins
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.deploy.facts import VersionFacts
    from shipyard.deploy.targets import Context

SETTINGS: dict[str, str] = {
    "onnxruntime": "the onnxruntime version the lock pins (default: the model's lock, else "
    "the one that verified the conversion here)",
    "numpy": "the numpy version the lock pins (default: the model's lock, else the one here)",
    "package": "the Python package name of the bundle (default: <model>_edge)",
}
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?(\.post[0-9]+)?$")
_PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
PREDICTOR = Path(__file__).with_name("edge_predictor.py")


def render(context: Context) -> dict[str, str | bytes]:
    version = context.facts.model
    if not version.onnx_ready:
        raise InvalidArgumentError(
            f"{version.uri} has no verified ONNX conversion (its ONNX status is "
            f"'{version.onnx_status}'); the edge bundle runs the model on onnxruntime alone: "
            f"register a version that converts (shipyard models show {version.name} "
            f"{version.version} says why this one did not)",
            field="model_uri",
        )
    settings = context.options
    package = settings.setting("package", _package_name(version.name))
    if not _PACKAGE.match(package):
        raise InvalidArgumentError(
            f"--set package={package}: a Python package name (lower case, digits, _)",
            field="set",
        )
    pins = {
        "numpy": _pin(version, "numpy", settings.setting("numpy", "")),
        "onnxruntime": _pin(version, "onnxruntime", settings.setting("onnxruntime", "")),
    }
    lines = checked_pins(version, pins)  # a lock's value is checked as `models env` checks it
    onnx = context.read_files(version, True)["model.onnx"]
    return {
        "requirements.txt": _requirements(version, lines),
        "pyproject.toml": _pyproject(version, package, lines),
        "README.md": _readme(version, package),
        f"{package}/__init__.py": _init(version),
        f"{package}/predictor.py": PREDICTOR.read_text(encoding="utf-8"),
        f"{package}/model.onnx": onnx,
        f"{package}/signature.json": _signature(version, onnx),
    }


def _package_name(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "model"
    return f"{'m_' if text[0].isdigit() else ''}{text}_edge"


def _pin(version: VersionFacts, dist: str, chosen: str) -> str:
    """The exact version of `dist` the lock pins: --set, the model's lock, else this host's."""
    if chosen:
        if not _VERSION.match(chosen):
            raise InvalidArgumentError(
                f"--set {dist}={chosen}: give an exact version such as 1.20.1", field="set"
            )
        return chosen
    locked = version.packages.get(dist)
    if locked:
        return locked
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        raise InvalidArgumentError(
            f"{dist} is neither in {version.uri}'s lock nor installed here; give its version "
            f"with --set {dist}=X.Y.Z",
            field="set",
        ) from None


def _requirements(version: VersionFacts, pins: list[str]) -> str:
    lines = [f"# the edge bundle of {version.uri}: onnxruntime and numpy, nothing else", *pins]
    return "\n".join(lines) + "\n"


def _pyproject(version: VersionFacts, package: str, pins: list[str]) -> str:
    dist = package.replace("_", "-")
    deps = ", ".join(json.dumps(line) for line in pins)
    return (
        "[build-system]\n"
        'requires = ["setuptools>=69"]\n'
        'build-backend = "setuptools.build_meta"\n'
        "\n"
        "[project]\n"
        f'name = "{dist}"\n'
        f'version = "{version.version}"\n'
        f'description = "{version.uri} on onnxruntime alone (shipyard edge bundle)"\n'
        f'requires-python = ">={version.python}"\n'
        f"dependencies = [{deps}]\n"
        "\n"
        "[project.scripts]\n"
        f'{dist.removesuffix("-edge")}-predict = "{package}.predictor:main"\n'
        "\n"
        "[tool.setuptools]\n"
        f'packages = ["{package}"]\n'
        "\n"
        "[tool.setuptools.package-data]\n"
        f'{package} = ["model.onnx", "signature.json"]\n'
    )


def _init(version: VersionFacts) -> str:
    return (
        f'"""{version.uri} on onnxruntime alone: Predictor().predict(rows)."""\n\n'
        "from .predictor import InputError, Predictor\n\n"
        '__all__ = ["InputError", "Predictor"]\n'
    )


def _signature(version: VersionFacts, onnx: bytes) -> str:
    import hashlib

    signature = dict(version.signature or {})
    doc = {
        "kind": signature.get("kind", "columns"),
        "inputs": signature.get("inputs", []),
        "model": {
            "uri": version.uri,
            "name": version.name,
            "version": version.version,
            "flavor": version.flavor,
            "manifest_digest": f"sha256:{version.digest}",
            "onnx_sha256": f"sha256:{hashlib.sha256(onnx).hexdigest()}",
        },
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def _readme(version: VersionFacts, package: str) -> str:
    command = f"{package.replace('_', '-').removesuffix('-edge')}-predict"
    return f"""# {version.uri} at the edge

The model's ONNX conversion (verified by shipyard against the model itself), its signature
and a predictor that needs only Python, numpy and onnxruntime.

    python -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python {package}/predictor.py rows.json      # prints {{"predictions": [...]}}
    .venv/bin/python {package}/predictor.py --serve --port 8080
    curl -s localhost:8080/predict -d '{{"instances": [{{...}}]}}'

Or install it: `pip install .` gives the `{command}` command and `from {package} import
Predictor`.

Rows are JSON objects of the model's columns (signature.json lists them, with their types
and whether a value may be null); a row that does not fit is refused with an error naming
the row and the column.
"""
