"""`shipyard server` and `shipyard serve`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.serving import batching as batching_defaults

if TYPE_CHECKING:
    from shipyard.config import Settings

# `--grpc-port` of both commands
ModelUri = Annotated[
    str | None,
    typer.Argument(
        metavar="MODEL_URI",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, NAME@ALIAS …, or a bundle folder "
        "(the model/ of `shipyard deploy render -t docker`, verified file by file)",
    ),
]
Batching = Annotated[
    bool | None,
    typer.Option(
        "--batching/--no-batching",
        help="Batch concurrent requests (default: on for Python models, off for "
        "onnxruntime, whose inline calls are faster).",
    ),
]
Digest = Annotated[
    str | None,
    typer.Option(
        help="Refuse to serve unless the model's manifest digest is this (sha256:…); "
        "an alias is then pinned to the version it names now."
    ),
]
OnnxDigest = Annotated[
    str | None,
    typer.Option(
        help="Refuse to serve unless the model's ONNX conversion has this digest (sha256:…); "
        "with --digest and without it, a bundle's model.onnx is ignored: nothing pins it."
    ),
]
GrpcPort = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=65535,
        help="Also serve the V2 gRPC protocol on this port (0 picks a free one); "
        "needs shipyard[grpc].",
    ),
]

server = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
serve = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
ui = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def secure_settings(settings: Settings, host: str, insecure: bool) -> Settings:
    """Auth is required off loopback unless --insecure says otherwise."""
    import ipaddress

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or insecure or settings.auth_required:
        return settings
    typer.echo(
        f"binding {host}: API keys or JWTs are required (--insecure to serve openly)", err=True
    )
    return settings.model_copy(update={"auth_required": True})


@server.command()
def server_command(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8080,
    refresh: Annotated[
        float, typer.Option(min=0.1, help="Seconds between endpoint refreshes.")
    ] = 2.0,
    trusted: Annotated[
        bool, typer.Option(help="Allow models that run their own code (pickle, Python models).")
    ] = False,
    ignore_env: Annotated[
        bool,
        typer.Option(
            "--ignore-env",
            help="Load models saved with another major version of their framework.",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    insecure: Annotated[
        bool, typer.Option(help="Serve without auth on a non-loopback address.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes sharing the port.")] = 1,
    drain: Annotated[
        float, typer.Option(min=0, help="Seconds to stay up, not ready, after SIGTERM.")
    ] = 0.0,
    grpc_port: GrpcPort = None,
) -> None:
    """Run the control plane API (/api, OpenAPI at /docs) and serve every endpoint.

    \b
    Example:
      shipyard server --port 8080 --workers 2
      shipyard server --port 8080 --grpc-port 8081   # and V2 gRPC for every endpoint
      curl -s localhost:8080/api/models
    """
    from shipyard.config import get_settings
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import serve_forever

    settings = secure_settings(get_settings(), host, insecure)
    grpc = _grpc_listener(host, grpc_port, workers, port)
    serve_forever(
        lambda: grpc(
            create_server_app(
                settings, refresh_seconds=refresh, trusted=trusted, ignore_env=ignore_env
            )
        ),
        host,
        port,
        log_level=log_level,
        workers=workers,
        drain_seconds=drain,
        on_listening=lambda bound: typer.echo(
            f"shipyard server on http://{host}:{bound}  (web UI: /ui/, API docs: /docs)", err=True
        ),
    )


@ui.command()
def ui_command(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8080,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the UI in the default browser.")
    ] = False,
    insecure: Annotated[
        bool, typer.Option(help="Serve without auth on a non-loopback address.")
    ] = False,
) -> None:
    """Browse the local store in the web UI: experiments, runs, compare, models, deployments
    and monitoring (the same server as `shipyard server`, serving no endpoint).

    \b
    Example:
      shipyard ui                  # then open http://127.0.0.1:8080/ui/
      shipyard ui --port 0 --open  # a free port, opened in the default browser
    """
    import webbrowser

    from shipyard.config import get_settings
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import serve_forever

    settings = secure_settings(get_settings(), host, insecure)

    def listening(bound: int) -> None:
        url = f"http://{host}:{bound}/ui/"
        from sqlalchemy.engine import make_url

        store = make_url(settings.resolved_db_url).render_as_string(hide_password=True)
        typer.echo(f"shipyard UI on {url}  (store: {store})", err=True)
        if open_browser:
            webbrowser.open(url)

    serve_forever(
        lambda: create_server_app(settings, endpoints=[]),
        host,
        port,
        log_level="warning",
        on_listening=listening,
    )


@serve.command()
def serve_command(
    model_uri: ModelUri = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="Serve this stored endpoint and follow its rollout policy instead."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8080,
    name: Annotated[
        str | None, typer.Option(help="Endpoint name (default: the model name).")
    ] = None,
    trusted: Annotated[
        bool, typer.Option(help="Allow models that run their own code (pickle, Python models).")
    ] = False,
    ignore_env: Annotated[
        bool,
        typer.Option(
            "--ignore-env",
            help="Load models saved with another major version of their framework.",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    insecure: Annotated[
        bool, typer.Option(help="Serve without auth on a non-loopback address.")
    ] = False,
    max_batch_size: Annotated[
        int, typer.Option(min=1, help="Rows per model call.")
    ] = batching_defaults.MAX_BATCH_ROWS,
    max_wait_ms: Annotated[
        float, typer.Option(min=0, help="Longest queueing of a request.")
    ] = batching_defaults.MAX_WAIT_MS,
    batching: Batching = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes sharing the port.")] = 1,
    drain: Annotated[
        float, typer.Option(min=0, help="Seconds to stay up, not ready, after SIGTERM.")
    ] = 0.0,
    refresh: Annotated[
        float, typer.Option(min=0.1, help="With --endpoint: seconds between policy refreshes.")
    ] = 2.0,
    grpc_port: GrpcPort = None,
    digest: Digest = None,
    onnx_digest: OnnxDigest = None,
) -> None:
    """Serve one model over HTTP (V2 inference protocol and /endpoints/NAME/predict), or one
    stored endpoint as a replica that follows its canary / A/B / shadow / blue-green policy.

    \b
    Examples:
      shipyard serve models:/churn@champion --port 8080
      shipyard serve --endpoint churn --host 0.0.0.0 --workers 2   # a replica behind a Service
      shipyard serve models:/sentiment/2 --trusted   # a Python model: it runs its own code
      shipyard serve models:/churn@champion --grpc-port 8081   # and V2 gRPC (KServe's proto)
      shipyard serve /opt/model --name churn   # a rendered bundle, without the stores
      shipyard serve models:/churn/3 --digest sha256:…   # refused unless it is that manifest
      curl -s localhost:8080/endpoints/churn/predict -d '{"instances": [{...}]}'
    """
    from shipyard.config import get_settings
    from shipyard.errors import InvalidArgumentError

    settings = secure_settings(get_settings(), host, insecure)
    if (model_uri is None) == (endpoint is None):
        raise InvalidArgumentError("give a MODEL_URI or --endpoint NAME (one of the two)")
    listen = _Listen(host, port, log_level, workers, drain, trusted, ignore_env, grpc_port)
    if endpoint is not None:
        if digest is not None or onnx_digest is not None:
            raise InvalidArgumentError("--digest/--onnx-digest pin a MODEL_URI, not an --endpoint")
        _serve_endpoint(settings, endpoint, listen, refresh=refresh)
        return
    assert model_uri is not None
    config: dict[str, object] = {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms}
    if batching is not None:
        config["batching"] = batching
    pins = (digest, onnx_digest)
    _serve_model(settings, model_uri, listen, name=name, config=config, pins=pins)


@dataclass(frozen=True)
class _Listen:
    """Where and how `serve` listens: the options both of its modes share."""

    host: str
    port: int
    log_level: str
    workers: int
    drain: float
    trusted: bool
    ignore_env: bool
    grpc_port: int | None = None

    def serve(self, app_factory: Callable[[], Any], what: str) -> None:
        """Serve `what` (for the announcement, made once the port is bound)."""
        from shipyard.serving.http import serve_forever

        grpc = _grpc_listener(self.host, self.grpc_port, self.workers, self.port)
        serve_forever(
            lambda: grpc(app_factory()),
            self.host,
            self.port,
            log_level=self.log_level,
            workers=self.workers,
            drain_seconds=self.drain,
            on_listening=lambda bound: typer.echo(
                f"serving {what} on http://{self.host}:{bound} ({self.workers} worker(s))",
                err=True,
            ),
        )


def _grpc_listener(
    host: str, port: int | None, workers: int, http_port: int
) -> Callable[[Any], Any]:
    """What adds the V2 gRPC port (when one is asked for) to each worker's app."""
    if port is None:
        return lambda app: app
    from shipyard.errors import InvalidArgumentError
    from shipyard.serving.grpc_v2 import attach_grpc, require_grpc

    require_grpc()
    if port == 0 and workers > 1:
        raise InvalidArgumentError(
            "--grpc-port 0 with several workers would give each worker another port; "
            "give a port number (the workers share it)",
            field="grpc_port",
        )
    if port and port == http_port:
        raise InvalidArgumentError("--grpc-port must differ from --port", field="grpc_port")
    if port:  # a clear error now rather than a failed start-up in each worker
        from shipyard.serving.transport import bind

        try:
            bind(host, port).close()
        except InvalidArgumentError as exc:
            text = str(exc).replace("--port", "--grpc-port")
            raise InvalidArgumentError(text, field="grpc_port") from exc

    def announce(bound: int) -> None:
        typer.echo(f"V2 gRPC on {host}:{bound}", err=True)

    def add(app: Any) -> Any:
        attach_grpc(app, host, port, shared=workers > 1, announce=announce)
        return app

    return add


def _serve_endpoint(settings: Settings, endpoint: str, listen: _Listen, *, refresh: float) -> None:
    from shipyard.rollout import Deployments
    from shipyard.server.app import create_server_app
    from shipyard.stores import open_stores

    Deployments(open_stores(settings)).get(endpoint)  # a clear error now
    listen.serve(
        lambda: create_server_app(
            settings,
            refresh_seconds=refresh,
            trusted=listen.trusted,
            ignore_env=listen.ignore_env,
            endpoints=[endpoint],
            control_plane=False,
        ),
        f"endpoint {endpoint}",
    )


def _serve_model(
    settings: Settings,
    model_uri: str,
    listen: _Listen,
    *,
    name: str | None,
    config: dict[str, object],
    pins: tuple[str | None, str | None] = (None, None),
) -> None:
    from shipyard.registry import Registry, parse_model_uri
    from shipyard.registry.bundle import is_bundle, served_uri
    from shipyard.serving.app import create_serving_app
    from shipyard.stores import open_stores

    registry = Registry(open_stores(settings))
    uri = served_uri(registry, model_uri, digest=pins[0], onnx_digest=pins[1])  # verified here
    if is_bundle(uri):  # every later load of it checks the same pins again
        registry.bundle_pins[uri] = pins
    else:
        uri = str(parse_model_uri(uri))
        registry.resolve(uri)  # a clear error now rather than a 503 later
        differences = registry.check_environment(uri, ignore_env=listen.ignore_env, warn=False)
        if differences:  # one readable line rather than a Python warning with a source location
            text = "; ".join(str(d) for d in differences)
            typer.echo(f"warning: {uri} was saved in another environment: {text}", err=True)
    _check_loads(registry, uri, listen)
    listen.serve(
        lambda: create_serving_app(
            settings,
            uri,
            endpoint=name,
            trusted=listen.trusted,
            ignore_env=listen.ignore_env,
            config=config,
            pins=pins,
        ),
        uri,
    )


def _check_loads(registry: Any, uri: str, listen: _Listen) -> None:
    """Load and warm the model once before listening: one that can never load (not trusted,
    unreadable, its code failing, its example refused) is an error now — exit 2 — rather
    than a server answering 503. A store that is down is not: the server retries."""
    from shipyard.errors import ModelLoadError, ShipyardError, StoreError
    from shipyard.serving.runtime import load_and_warm

    try:
        load_and_warm(registry, uri, trusted=listen.trusted, ignore_env=listen.ignore_env)
    except StoreError:
        return
    except ShipyardError as exc:  # its message says what to do (--trusted, --ignore-env…)
        raise ModelLoadError(f"{uri} cannot be served: {exc.message}") from exc
    except Exception as exc:  # the model's library or its own code failing in its own way
        raise ModelLoadError(
            f"{uri} cannot be served: loading it failed ({type(exc).__name__}: {exc}); "
            f"`shipyard models env {uri}` prints the environment it was saved in"
        ) from exc
