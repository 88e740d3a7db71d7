"""/api/monitoring: each endpoint's live window, as the monitor last evaluated it or over a
window of the caller's choosing; live quality over time; alert rules and their history."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from starlette.responses import Response

from shipyard.server.plane import Plane
from shipyard.server.routes import Routes
from shipyard.serving.app import json_response
from shipyard.serving.auth import visible_endpoints

routes = Routes(tags=["monitoring"])

WINDOW = Query(
    None,
    description="the window to evaluate now, e.g. 15m, 1h, 7d (default: the monitor's own, "
    "as last evaluated)",
    max_length=32,
)


@routes.get("/api/monitoring")
def monitoring_overview(request: Request, plane: Plane) -> Response:
    """Every endpoint's latest evaluation in brief (none before the monitor's first pass) and
    its alert rules with their state; for a caller limited to some endpoints, those."""
    from shipyard.monitoring.alerts import AlertRules

    visible = visible_endpoints(request.scope)
    names = [e.name for e in plane.deployments.list() if visible is None or e.name in visible]
    rules: dict[str, list[dict[str, Any]]] = {}
    for rule in AlertRules(plane.settings, plane.stores).rules():
        rules.setdefault(rule.endpoint, []).append(_rule(rule))
    latest = plane.monitor.latest
    return json_response(
        {
            "window_seconds": plane.settings.monitor_window_seconds,
            "interval_seconds": plane.settings.monitor_interval_seconds,
            "endpoints": [
                {
                    "endpoint": name,
                    "latest": latest[name].summary() if name in latest else None,
                    "alerts": rules.get(name, []),
                    "firing": sum(r["state"] == "firing" for r in rules.get(name, [])),
                }
                for name in names
            ],
        }
    )


@routes.get("/api/monitoring/{name}")
def monitoring(
    name: str,
    plane: Plane,
    evaluate: bool = Query(
        False, description="evaluate now (a look: alert rules act only on the monitor's passes)"
    ),
    window: str | None = WINDOW,
    distributions: bool = Query(
        False, description="add each column's reference and current histograms"
    ),
) -> Response:
    """The latest evaluation of an endpoint's live window (drift, quality, accuracy), or one
    made now over `window` (which acts on no alert rule)."""
    from shipyard.monitoring.sources import parse_window

    plane.deployments.get(name)
    monitor = plane.monitor
    # a GET only looks: it never advances the monitor's alert state (a `read` key must not be
    # able to fire an alert's webhook or command by asking often)
    ev = monitor.inspect(name, None if window is None else parse_window(window), fresh=evaluate)
    return json_response(ev.to_dict(distributions=distributions))


@routes.post("/api/monitoring/{name}/evaluate")
def evaluate_now(name: str, plane: Plane) -> Response:
    """Run the monitor's pass on one endpoint now (admin): its window advances, its gauges
    update and its alert rules act — what the server does every
    SHIPYARD_MONITOR_INTERVAL_SECONDS."""
    plane.deployments.get(name)
    ev = plane.monitor.evaluate_all([name])[0]
    return json_response(ev.to_dict())


@routes.get("/api/monitoring/{name}/accuracy")
def monitoring_accuracy(
    name: str,
    plane: Plane,
    window: str | None = WINDOW,
    buckets: int = Query(24, ge=1, le=500, description="intervals in the window"),
) -> Response:
    """Live quality (accuracy, or MAE for numbers) over time by model version, from the
    labels sent back through feedback."""
    from shipyard.monitoring.sources import parse_window

    plane.deployments.get(name)
    seconds = parse_window(window) if window else plane.settings.monitor_window_seconds
    return json_response(plane.monitor.accuracy_series(name, seconds, buckets))


@routes.get("/api/monitoring/{name}/alerts")
def monitoring_alerts(name: str, plane: Plane, limit: int = Query(100, ge=1, le=10000)) -> Response:
    """An endpoint's alert rules with their state, and their firings and resolutions, newest
    first (a rule's webhook and command are not shown: they may hold secrets)."""
    from shipyard.monitoring.alerts import AlertRules

    plane.deployments.get(name)
    rules = AlertRules(plane.settings, plane.stores)
    return json_response(
        {
            "rules": [_rule(r) for r in rules.rules(name)],
            "events": [e.to_dict() for e in rules.events(name, limit)],
        }
    )


def _rule(rule: Any) -> dict[str, Any]:
    doc: dict[str, Any] = rule.to_dict()
    doc["actions"] = [a for a in ("webhook", "command") if doc.pop(a, None)]
    return doc
