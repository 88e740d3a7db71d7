"""MLflow's tracking REST API on shipyard's stores, so `mlflow` client code logs to shipyard.

    mount_mlflow(app, stores)    # create_server_app does it: /api/2.0/mlflow/…, /ajax-api/…

`app.py` holds the route table and MLflow's error shape; `experiments.py` and `runs.py` the
handlers (calling `tracking`'s Experiments, RunQueries and RemoteRuns); `convert.py` the JSON;
`filters.py` MLflow's search syntax in shipyard's filter language.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.compat.mlflow.app import MlflowApi
    from shipyard.stores import Stores


# where MLflow's artifact proxy streams uploads (the server's body limit is larger there)
ARTIFACT_PREFIXES: Final = ("/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/")


def mount_mlflow(app: FastAPI, stores: Stores, **options: Any) -> MlflowApi:
    """See `compat.mlflow.app.mount_mlflow` (imported when called: the server needs it only
    on the control plane)."""
    from shipyard.compat.mlflow.app import mount_mlflow as mount

    return mount(app, stores, **options)


__all__ = ["ARTIFACT_PREFIXES", "mount_mlflow"]
