"""The data plane: serving models over HTTP, in layers (each imports only those below it).

    transport   runner.py (run uvicorn: foreground, workers, background thread),
                transport.py (socket, connection limits, one write per answer),
                uvicorn_fence.py (shipyard's protocol; the only use of uvicorn's private names)
    ASGI app    app.py (`create_serving_app`, the app of `shipyard serve`), asgi.py (routes
                calling the DataPlane, the fast path, error handlers), routes.py (the route
                table and scopes), auth.py, ratelimit.py, openapi.py, lifecycle.py (start/stop)
    data plane  dataplane.py (`DataPlane`: endpoints, metrics, prediction log, limits; no HTTP),
                decoding.py, answers.py, protocol.py (request and answer bodies), predlog.py,
                metrics.py, features.py, requestids
    runtime     runtime.py (loaded models, the endpoint table), batching.py, routing.py

`shipyard.serving.app.create_serving_app` builds the app of `shipyard serve`;
`shipyard.serving.runner.BackgroundServer` (also `serving.http`) runs any app on a loopback port.
"""
