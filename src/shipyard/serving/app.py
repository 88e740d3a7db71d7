"""The app of `shipyard serve`: one model, served as one endpoint named after its registered
model.

    app = create_serving_app(settings, model_uri="models:/churn@champion")

The layers it puts together: `serving.dataplane` (the endpoints and their answers, no HTTP),
`serving.lifecycle` (start, stop, drain), `serving.asgi` (routes and the fast path), `serving.auth`.
`shipyard server` builds the same layers around every stored endpoint (`server.app`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.serving.answers import body_too_large, check_declared_length, error_answer
from shipyard.serving.asgi import (
    DataPlaneFastPath,
    ServingApp,
    answer_response,
    asgi_entry,
    error_response,
    install_error_handlers,
    json_response,
)
from shipyard.serving.lifecycle import freeze_heap

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.config import Settings

# names other modules imported from here before the data plane was split in layers
__all__ = [
    "DataPlaneFastPath",
    "ServingApp",
    "answer_response",
    "asgi_entry",
    "body_too_large",
    "check_declared_length",
    "create_serving_app",
    "error_answer",
    "error_response",
    "freeze_heap",
    "install_error_handlers",
    "json_response",
]


def create_serving_app(
    settings: Settings,
    model_uri: str,
    *,
    endpoint: str | None = None,
    trusted: bool = False,
    config: dict[str, Any] | None = None,
    ignore_env: bool = False,
    pins: tuple[str | None, str | None] = (None, None),
) -> FastAPI:
    """The app of `shipyard serve`: one model, named after its registered model."""
    from shipyard.registry import Registry, parse_model_uri
    from shipyard.registry.bundle import bundle_info, is_bundle
    from shipyard.serving.asgi import mount_data_plane
    from shipyard.serving.auth import install_auth
    from shipyard.serving.dataplane import DataPlane
    from shipyard.serving.docs import endpoint_links, index_links, install_home
    from shipyard.serving.lifecycle import Lifecycle
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.serving.runtime import EndpointTable
    from shipyard.stores import open_stores

    registry = Registry(open_stores(settings))
    if is_bundle(model_uri):  # loaded as `shipyard serve --digest/--onnx-digest` pinned it
        registry.bundle_pins[model_uri] = pins
    metrics = ServingMetrics()
    table = EndpointTable(registry, metrics, trusted=trusted, ignore_env=ignore_env)
    if endpoint:
        name = endpoint
    elif is_bundle(model_uri):  # a bundle folder: named after the model it holds
        name = bundle_info(Path(model_uri)).name
    else:
        ref = parse_model_uri(model_uri)
        name = ref.name or registry.resolve(ref).name
    plane = DataPlane.from_settings(settings, table, metrics)

    def load() -> None:
        """Load before serving (several workers: none may accept a request unready)."""
        table.load(name, model_uri, 0, config)

    lifecycle = Lifecycle(plane, registry.stores, settings, preload=load)
    lifecycle.loops.append(lifecycle.load_in_background())
    app = ServingApp(
        title=f"shipyard serve {name}",
        lifespan=lifecycle.lifespan,
        description=f"Serving {model_uri} as endpoint '{name}'.",
    )
    mount_data_plane(app, plane, lifecycle)
    install_home(app, "/docs", index_links(endpoints=endpoint_links([name])))
    lifecycle.limiter = install_auth(
        app, settings, registry.stores, required=settings.auth_required
    )
    metrics.registry.register(lifecycle.limiter)  # its Redis errors and degraded state
    return app
