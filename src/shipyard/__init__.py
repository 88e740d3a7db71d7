"""shipyard: track, register, gate, serve, roll out and monitor ML models.

    import shipyard as sy
    with sy.start_run(experiment="churn", params={"C": 1.0}) as run:
        run.log_metrics({"auc": 0.93}, step=3)
        mv = run.log_model(model, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", mv.version)
    model = sy.load_model("models:/churn@champion")

Names resolve lazily: `import shipyard` loads no database driver, no pandas, no model library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it. A test checks this against __all__.
_LAZY: dict[str, str] = {
    "start_run": "shipyard.tracking",
    "search_runs": "shipyard.tracking",
    "get_run": "shipyard.tracking",
    "get_metric_history": "shipyard.tracking",
    "Run": "shipyard.tracking",
    "set_alias": "shipyard.registry",
    "load_model": "shipyard.registry",
    "Registry": "shipyard.registry",
    "PythonModel": "shipyard.flavors.python_model",
    "ModelContext": "shipyard.flavors.python_model",
    "TorchClassifier": "shipyard.flavors.pytorch",
    "FeatureStore": "shipyard.features",
    "step": "shipyard.pipelines",
    "Pipeline": "shipyard.pipelines",
    "pipeline": "shipyard.pipelines",
    "current_step": "shipyard.pipelines",
    "Settings": "shipyard.config",
    "ShipyardError": "shipyard.errors",
    "NotFoundError": "shipyard.errors",
    "InvalidArgumentError": "shipyard.errors",
}

__all__ = [
    "FeatureStore",
    "InvalidArgumentError",
    "ModelContext",
    "NotFoundError",
    "Pipeline",
    "PythonModel",
    "Registry",
    "Run",
    "Settings",
    "ShipyardError",
    "TorchClassifier",
    "__version__",
    "current_step",
    "get_metric_history",
    "get_run",
    "load_model",
    "pipeline",
    "search_runs",
    "set_alias",
    "start_run",
    "step",
]

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.errors import InvalidArgumentError, NotFoundError, ShipyardError
    from shipyard.features import FeatureStore
    from shipyard.flavors.python_model import ModelContext, PythonModel
    from shipyard.flavors.pytorch import TorchClassifier
    from shipyard.registry import Registry, load_model, set_alias
    from shipyard.tracking import Run, get_metric_history, get_run, search_runs, start_run


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
