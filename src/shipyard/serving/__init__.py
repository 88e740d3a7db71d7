"""The data plane: protocol parsing, endpoints in memory, the ASGI app, Prometheus metrics.

`shipyard.serving.app.create_serving_app` builds the app of `shipyard serve`;
`shipyard.serving.http.BackgroundServer` runs any app on a loopback port.
"""
