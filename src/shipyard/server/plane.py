"""The control plane's collaborators, built once per server and handed to every /api route
through one typed FastAPI dependency (no string-keyed `app.state` lookups).

    plane = ControlPlane(settings, stores, registry, table, monitor)
    bind(app, plane)                       # what mount_api does
    def get_run(run_id: str, plane: Plane) -> Response: ...
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.access import ApiKeys
    from shipyard.config import Settings
    from shipyard.features import FeatureStore
    from shipyard.monitoring.live import LiveMonitor
    from shipyard.registry import Registry
    from shipyard.rollout import Deployments
    from shipyard.serving.livestats import TrafficStats
    from shipyard.serving.runtime import EndpointTable
    from shipyard.stores import Stores
    from shipyard.tracking import Experiments, RunQueries


class ControlPlane:
    """What the /api routes act on: the capabilities over one set of stores, the live monitor
    and the table of served endpoints."""

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        registry: Registry,
        table: EndpointTable,
        monitor: LiveMonitor,
    ) -> None:
        from shipyard.access import ApiKeys
        from shipyard.rollout import Deployments
        from shipyard.tracking import Experiments, RunQueries

        self.settings = settings
        self.stores = stores
        self.registry = registry
        self.table = table
        self.monitor = monitor
        self.runs: RunQueries = RunQueries(stores)
        self.experiments: Experiments = Experiments(stores)
        self.deployments: Deployments = Deployments(stores)
        self.keys: ApiKeys = ApiKeys(stores)

    @cached_property
    def features(self) -> FeatureStore:
        """Built on first use: most servers never see a feature request."""
        from shipyard.features import FeatureStore

        return FeatureStore(self.settings, stores=self.stores)

    @cached_property
    def traffic(self) -> TrafficStats:
        """Live traffic by version from this server's own serving metrics."""
        from shipyard.serving.livestats import TrafficStats

        return TrafficStats(self.table.metrics)


async def control_plane() -> ControlPlane:
    """The dependency every /api route takes; `bind` points it at one server's plane (async,
    so resolving it costs no thread hop)."""
    raise RuntimeError("no control plane bound to this app: call shipyard.server.api.mount_api")


def bind(app: FastAPI, plane: ControlPlane) -> None:
    """Make `plane` what the routes of `app` receive."""

    async def provide() -> ControlPlane:
        return plane

    app.dependency_overrides[control_plane] = provide


Plane = Annotated[ControlPlane, Depends(control_plane)]
