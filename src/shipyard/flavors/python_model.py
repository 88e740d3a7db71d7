"""The Python model flavor ("python_model"): your own class with `load(context)` and
`predict(inputs)`, saved as its *source code* and the files it needs — never as a pickle.

    class Sentiment(shipyard.PythonModel):          # in mypkg/model.py
        def load(self, context):
            self.vocab = json.loads(context.artifacts["vocab"].read_text())
        def predict(self, inputs):
            return inputs["text"].map(score).to_numpy()

    run.log_model(Sentiment(), name="sentiment", input_example=df[:5],
                  code=["mypkg/"], artifacts={"vocab": "vocab.json"})

Saving stores each code file and artifact in the artifact store (content-addressed) and the
class's import path; it refuses a class whose module is not inside the logged code (nor in an
installed distribution), since another process could not import it. Loading unpacks the files
into a private per-load folder, imports the class from there, builds it with no arguments and
calls `load(context)`: that runs the model's own code, so it needs `trusted=True` (CLI
`--trusted`), like pickle.

Two versions of one module name in one process (a canary of v2 beside v1) each get their own
module objects: while a version loads, the modules of its code's top-level names are set
aside and the version imports its own. Modules it imports at load time stay bound to it;
ones first imported inside `predict` resolve against the version loaded last.
"""

from __future__ import annotations

import abc
import ast
import importlib
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, ModelLoadError, UntrustedModelError
from shipyard.flavors.base import Saved

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import numpy as np

    from shipyard.flavors.signature import Signature

_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_SKIPPED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache"}
_IMPORT_LOCK = threading.Lock()


class MissingArtifactError(ModelLoadError, KeyError):
    """`context.artifacts[name]` for a name not logged with the model (a KeyError too, so a
    model's own `except KeyError` still works)."""

    def __str__(self) -> str:
        return self.message


class Artifacts(dict[str, Path]):
    """`context.artifacts`: name → local path; a name not logged says which ones were, and how
    to log it."""

    def __missing__(self, name: str) -> Path:
        logged = ", ".join(map(repr, sorted(self))) or "none"
        raise MissingArtifactError(
            f"artifact {name!r} was not logged with this model (logged artifacts: {logged}); "
            f"log it with log_model(..., artifacts={{{name!r}: 'path/to/file-or-folder'}})"
        )


@dataclass(frozen=True)
class ModelContext:
    """What `PythonModel.load` gets: `artifacts` maps each name given to `log_model(artifacts=…)`
    to its local path (a file or a folder); `code` is the folder the logged code is in."""

    artifacts: dict[str, Path] = field(default_factory=Artifacts)
    code: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.artifacts, Artifacts):
            object.__setattr__(self, "artifacts", Artifacts(self.artifacts))


class PythonModel(abc.ABC):
    """Base of your own model class. shipyard builds it with no arguments, then calls
    `load(context)` once, then `predict(inputs)` per batch: `inputs` is a pandas DataFrame of
    the signature's columns (a 2-D array for a tensor signature); return something
    `numpy.asarray` takes, one answer per row. Define `predict_proba` too to serve
    probabilities."""

    def load(self, context: ModelContext) -> None:  # noqa: B027 - a model may need nothing
        """Read the artifacts (weights, vocabularies…) the model needs."""

    @abc.abstractmethod
    def predict(self, inputs: Any) -> Any:
        """One prediction per row of `inputs`."""


@dataclass
class PythonModelPackage:
    """A Python model with the code and files logged with it (what `save_model` saves)."""

    model: PythonModel
    code: dict[str, Path]  # top-level module or package name → its file or folder
    artifacts: dict[str, Path]
    class_path: str  # "module:QualName"


def is_python_model(model: Any) -> bool:
    return any(
        c.__name__ == "PythonModel" and c.__module__ == __name__ for c in type(model).__mro__
    )


def package(
    model: Any,
    *,
    code: Iterable[str | Path] | None,
    artifacts: Mapping[str, str | Path] | None,
    input_example: Any,
) -> PythonModelPackage:
    """Check that `model` can be rebuilt elsewhere from what is logged with it, and run it once
    on the input example the way a loading process will (a fresh instance, `load`, `predict`)."""
    if not is_python_model(model):
        raise InvalidArgumentError(
            f"code= and artifacts= go with a shipyard.PythonModel; got a "
            f"{type(model).__module__}.{type(model).__qualname__}",
            field="code",
        )
    roots = _code_roots(code or ())
    files = _artifact_paths(artifacts or {})
    cls = type(model)
    _check_importable(cls, roots)
    _check_local_imports(roots)
    packaged = PythonModelPackage(model, roots, files, f"{cls.__module__}:{cls.__qualname__}")
    _smoke_test(cls, ModelContext(dict(files)), input_example)
    return packaged


def _code_roots(code: Iterable[str | Path]) -> dict[str, Path]:
    if isinstance(code, str | Path):
        code = [code]
    roots: dict[str, Path] = {}
    for entry in code:
        path = Path(entry).resolve()
        if path.is_dir():
            name = path.name
        elif path.is_file() and path.suffix == ".py":
            name = path.stem
        elif not path.exists():
            raise InvalidArgumentError(f"code path {str(entry)!r} does not exist", field="code")
        else:
            raise InvalidArgumentError(
                f"code path {str(entry)!r} is not a folder or a .py file", field="code"
            )
        if not name.isidentifier() or name in sys.stdlib_module_names or name == "shipyard":
            raise InvalidArgumentError(
                f"code path {str(entry)!r} would be imported as {name!r}, which is not a "
                "usable module name here (not an identifier, or a standard library or "
                "shipyard module)",
                field="code",
            )
        if name in roots:
            raise InvalidArgumentError(f"two code paths are named {name!r}", field="code")
        roots[name] = path
    return roots


def _artifact_paths(artifacts: Mapping[str, str | Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, where in artifacts.items():
        if not _ARTIFACT_NAME.fullmatch(str(name)):
            raise InvalidArgumentError(
                f"artifact name {name!r} is not valid: letters, digits, '_', '-', '.'",
                field="artifacts",
            )
        path = Path(where).resolve()
        if not path.exists():
            raise InvalidArgumentError(
                f"artifact {name!r}: {str(where)!r} does not exist", field="artifacts"
            )
        out[str(name)] = path
    return out


def _check_importable(cls: type, roots: Mapping[str, Path]) -> None:
    """Refuse a class another process could not import from what is logged."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise InvalidArgumentError(
            f"{where} is defined in a script, a notebook or a function, which another "
            "process cannot import: move it into a module and log it with code=['that_module.py']",
            field="code",
        )
    top = cls.__module__.split(".")[0]
    module_file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if top in roots:
        root = roots[top]
        inside = module_file is not None and (
            Path(module_file).resolve() == root or Path(module_file).resolve().is_relative_to(root)
        )
        if not inside:
            raise InvalidArgumentError(
                f"{where} was imported from {module_file}, not from the logged code {root}",
                field="code",
            )
        return
    from shipyard.flavors.environment import distributions_of

    installed = module_file is not None and {"site-packages", "dist-packages"} & set(
        Path(module_file).parts
    )
    if not distributions_of(top) or not installed:
        raise InvalidArgumentError(
            f"{where} is not in the code logged with it and no installed distribution provides "
            f"{top!r}: a loading process could not import it; log its code with it "
            f"(code=['{top}/'] or code=['{top}.py'])",
            field="code",
        )


def _check_local_imports(roots: Mapping[str, Path]) -> None:
    """Refuse logged code that imports a module of the project's own (a file found here, from
    the working folder or sys.path) that is not logged: a loading process would not have it."""
    import importlib.util

    from shipyard.flavors.environment import distributions_of

    for module in sorted(imported_modules(code_files(roots).values())):
        if module in roots or module in sys.stdlib_module_names or module == "shipyard":
            continue
        if module == "__future__" or distributions_of(module):
            continue
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        where = _local_file(spec)
        if where is not None:
            raise InvalidArgumentError(
                f"the logged code imports {module!r}, which is neither logged with it nor an "
                f"installed package (found at {where}): a loading process could not import it; "
                f"add it to code=[...] (code=['{where.name}{'/' if where.is_dir() else ''}'])",
                field="code",
                module=module,
            )


def _local_file(spec: Any) -> Path | None:
    """The file or folder of a found module that is the project's own, not installed."""
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        path = Path(spec.origin)
        if path.name == "__init__.py":
            path = path.parent
    elif spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations)))
    else:
        return None
    installed = {"site-packages", "dist-packages"} & set(path.parts)
    return None if installed or path.suffix not in ("", ".py") else path


def _smoke_test(cls: type, context: ModelContext, input_example: Any) -> None:
    import numpy as np

    from shipyard.flavors.signature import infer_signature

    signature = infer_signature(input_example)
    try:
        fresh = cls()
    except TypeError as exc:
        raise InvalidArgumentError(
            f"{cls.__qualname__}() fails ({exc}): a Python model is rebuilt with no "
            "arguments, then load(context) reads what it needs from its artifacts",
            field="model",
        ) from exc
    try:
        fresh.load(context)
    except MissingArtifactError as exc:  # load(context) reads what log_model was not given
        raise InvalidArgumentError(exc.message, field="artifacts") from exc
    out = np.asarray(fresh.predict(signature.to_model_input(signature.check_frame(input_example))))
    rows = len(next(iter(signature.check_frame(input_example).values())))
    if out.ndim == 0 or out.shape[0] != rows or out.dtype == object:
        raise InvalidArgumentError(
            f"{cls.__qualname__}.predict on the input example returned {out.shape} "
            f"{out.dtype}; it must return one number or string per row ({rows} rows)",
            field="model",
        )


def code_files(roots: Mapping[str, Path]) -> dict[str, Path]:
    """Every file of the logged code, by its name under `code/` in the manifest."""
    out: dict[str, Path] = {}
    for name, root in roots.items():
        if root.is_file():
            out[f"code/{name}.py"] = root
            continue
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not _SKIPPED_DIRS & set(rel.parts) and path.suffix != ".pyc":
                out[f"code/{name}/{rel.as_posix()}"] = _inside(path, root, "code")
    return out


def imported_modules(files: Iterable[Path]) -> set[str]:
    """The top-level modules the code imports (anywhere in it, lazily or not)."""
    found: set[str] = set()
    for path in files:
        if path.suffix != ".py":
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except SyntaxError as exc:
            raise InvalidArgumentError(f"{path} does not parse: {exc}", field="code") from exc
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


class PythonModelFlavor:
    """A shipyard.PythonModel with its code and artifacts (`log_model(code=…, artifacts=…)`)."""

    name = "python_model"
    converts = False

    def owns(self, model: Any) -> bool:
        return type(model).__name__ == "PythonModelPackage" and type(model).__module__ == __name__

    def takes_missing(self, model: Any) -> bool:
        return False

    def save(self, model: Any, folder: Path, signature: Signature) -> Saved:
        pkg: PythonModelPackage = model
        files = code_files(pkg.code)
        artifacts: dict[str, str] = {}
        for name, path in pkg.artifacts.items():
            for key, file in _artifact_files(name, path).items():
                files[key] = file
            artifacts[name] = path.name
        imports = imported_modules(files.values()) - set(pkg.code)
        cls = type(pkg.model)
        return Saved(
            files,
            {
                "serialization": "code",
                "python_class": f"{cls.__module__}.{cls.__qualname__}",
                "python_model": {
                    "class": pkg.class_path,
                    "code": sorted(pkg.code),
                    "artifacts": artifacts,
                },
                "imports": sorted(imports | {cls.__module__.split(".")[0]} - set(pkg.code)),
                "requirements": {},
                "has_proba": callable(getattr(pkg.model, "predict_proba", None)),
            },
        )

    def load(
        self,
        files: Mapping[str, Path],
        manifest: Mapping[str, Any],
        signature: Signature,
        *,
        trusted: bool,
    ) -> PythonModelPredictor:
        spec = manifest.get("python_model") or {}
        class_path = str(spec.get("class", ""))
        if not trusted:
            raise UntrustedModelError(
                f"this Python model runs its own code ({class_path}) when loaded; pass "
                "trusted=True (CLI: --trusted) only if you trust its source"
            )
        root = unpack(files)
        context = ModelContext(
            {name: root / "artifacts" / name / base for name, base in spec["artifacts"].items()},
            root / "code",
        )
        instance = import_isolated(root / "code", list(spec.get("code", [])), class_path)
        instance.load(context)
        return PythonModelPredictor(instance, signature)

    def to_onnx(
        self, model: Any, signature: Signature, example_columns: Mapping[str, np.ndarray]
    ) -> bytes:
        from shipyard.errors import ConversionError

        raise ConversionError("a Python model is served by its own code")


def _artifact_files(name: str, path: Path) -> dict[str, Path]:
    if path.is_file():
        return {f"artifacts/{name}/{path.name}": path}
    return {
        f"artifacts/{name}/{path.name}/{p.relative_to(path).as_posix()}": _inside(
            p, path, "artifacts"
        )
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _inside(path: Path, root: Path, field: str) -> Path:
    """`path`, refused if it is a symlink to a file outside `root` (a link to a credentials
    file in a checkout would be uploaded with the code)."""
    if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
        raise InvalidArgumentError(
            f"{field}: {path} is a symlink to {path.resolve()}, outside {root}; shipyard does "
            "not upload files from outside the folder (copy the file in, or remove the link)",
            field=field,
        )
    return path


def unpack(files: Mapping[str, Path]) -> Path:
    """Copy the code and artifact files into a new private folder (removed at exit), each
    under its name in the manifest; a name that would land outside the folder is refused."""
    import atexit
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="shipyard-python-model-")).resolve()
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for name, src in files.items():
        if not name.startswith(("code/", "artifacts/")):
            continue
        dest = (root / name).resolve()
        if not dest.is_relative_to(root) or Path(name).is_absolute():
            raise ModelLoadError(f"the manifest names a file outside its folder: {name!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return root


def import_isolated(code_dir: Path, tops: list[str], class_path: str) -> Any:
    """Import `class_path` ("module:QualName") from `code_dir` with its own module objects,
    whatever modules of the same names this process already holds, and build it."""
    module_name, _, qualname = class_path.partition(":")
    if not module_name or not qualname:
        raise ModelLoadError(f"the manifest names no loadable class ({class_path!r})")
    for top in tops:
        if top in sys.stdlib_module_names or top == "shipyard" or not top.isidentifier():
            raise ModelLoadError(f"the logged code's module name {top!r} is not usable")
    mine = set(tops)
    with _IMPORT_LOCK:
        for key in [k for k in sys.modules if k.split(".")[0] in mine]:
            del sys.modules[key]  # another version's: it keeps its own references
        sys.path.insert(0, str(code_dir))
        importlib.invalidate_caches()
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            return obj()
        except Exception as exc:
            raise ModelLoadError(
                f"cannot build the Python model {class_path}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            # later imports of names the code does not hold resolve installed packages first
            sys.path.remove(str(code_dir))
            sys.path.append(str(code_dir))


class PythonModelPredictor:
    """Calls the user's `predict` (and `predict_proba`, when it has one)."""

    backend = "python"

    def __init__(self, model: Any, signature: Signature) -> None:
        self.model = model
        self.signature = signature

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        import numpy as np

        return np.asarray(self.model.predict(self.signature.to_model_input(columns)))

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray | None:
        proba = getattr(self.model, "predict_proba", None)
        if not callable(proba):
            return None
        import numpy as np

        return np.asarray(proba(self.signature.to_model_input(columns)))


PYTHON_MODEL = PythonModelFlavor()
