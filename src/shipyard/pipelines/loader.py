"""Load a pipeline from a Python file (what `shipyard pipeline run FILE` does)."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.pipelines.pipeline import Pipeline, unknown_param


def load_module(path: str | Path) -> ModuleType:
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise InvalidArgumentError(f"{path}: not a Python file", field="path")
    digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
    name = f"shipyard_pipeline_{file.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pickling of the step functions looks it up
    sys.path.insert(0, str(file.resolve().parent))  # the file's own imports
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(file.resolve().parent))
    return module


def find_pipeline(module: ModuleType, name: str | None = None) -> Pipeline:
    found = {v.name: v for v in vars(module).values() if isinstance(v, Pipeline)}
    if not found:
        raise InvalidArgumentError(
            f"{module.__file__} defines no Pipeline; decorate a function with @shipyard.Pipeline"
        )
    if name is not None:
        if name not in found:
            raise NotFoundError.for_name("pipeline", name, found)
        return found[name]
    if len(found) > 1:
        raise InvalidArgumentError(
            f"{module.__file__} defines several pipelines ({', '.join(sorted(found))}); "
            "pick one with --name"
        )
    return next(iter(found.values()))


def parse_params(pipeline: Pipeline, pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs, each value converted to the type of the parameter's default."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidArgumentError(f"--param takes key=value, not {pair!r}", field="param")
        if key not in pipeline.signature.parameters:
            raise unknown_param(pipeline, key)
        default = pipeline.signature.parameters[key].default
        out[key] = _convert(key, text, default)
    return out


def _convert(key: str, text: str, default: Any) -> Any:
    kind = type(default)
    try:
        if default is inspect.Parameter.empty or default is None:
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                return text
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind in (int, float, str):
            return kind(text)
        return orjson.loads(text)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidArgumentError(
            f"--param {key}={text!r}: expected {kind.__name__} like {default!r}", field=key
        ) from exc
