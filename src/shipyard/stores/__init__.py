"""The only code that talks to databases and files.

`MetadataStore(url)` groups the SQL stores of one database; `open_artifact_store(location)`
picks the artifact adapter. Constructors do no I/O; the database opens (and migrates) on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shipyard.stores.alerts import AlertStore
from shipyard.stores.artifacts import ArtifactStore, LocalArtifactStore, open_artifact_store
from shipyard.stores.audit import AuditStore, current_actor
from shipyard.stores.database import Database
from shipyard.stores.endpoints import EndpointStore
from shipyard.stores.experiments import ExperimentStore
from shipyard.stores.gates import GateStore
from shipyard.stores.keys import ApiKeyStore
from shipyard.stores.model_edits import ModelEditStore
from shipyard.stores.pipelines import PipelineStore
from shipyard.stores.recovery import RecoveryStore
from shipyard.stores.run_edits import RunEditStore
from shipyard.stores.runs import RunStore

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.stores.features import FeatureRegistryStore
    from shipyard.stores.logged_models import LoggedModelStore
    from shipyard.stores.run_imports import RunImportStore


class MetadataStore:
    """Runs, models, endpoints and the audit log of one metadata database."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self._background: dict[Callable[[MetadataStore], Any], Background] = {}
        self._background_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.db.url

    @cached_property
    def runs(self) -> RunStore:
        return RunStore(self.db)

    @cached_property
    def models(self) -> ModelEditStore:
        return ModelEditStore(self.db)

    @cached_property
    def run_edits(self) -> RunEditStore:
        return RunEditStore(self.db)

    @cached_property
    def run_imports(self) -> RunImportStore:
        from shipyard.stores.run_imports import RunImportStore

        return RunImportStore(self.db)

    @cached_property
    def experiments(self) -> ExperimentStore:
        return ExperimentStore(self.db)

    @cached_property
    def logged_models(self) -> LoggedModelStore:
        from shipyard.stores.logged_models import LoggedModelStore

        return LoggedModelStore(self.db)

    @cached_property
    def endpoints(self) -> EndpointStore:
        return EndpointStore(self.db)

    @cached_property
    def alerts(self) -> AlertStore:
        return AlertStore(self.db)

    @cached_property
    def gates(self) -> GateStore:
        return GateStore(self.db)

    @cached_property
    def pipelines(self) -> PipelineStore:
        return PipelineStore(self.db)

    @cached_property
    def keys(self) -> ApiKeyStore:
        return ApiKeyStore(self.db)

    @cached_property
    def recovery(self) -> RecoveryStore:
        return RecoveryStore(self.db)

    @cached_property
    def audit(self) -> AuditStore:
        return AuditStore(self.db)

    @cached_property
    def features(self) -> FeatureRegistryStore:
        from shipyard.stores.features import FeatureRegistryStore

        return FeatureRegistryStore(self.db)

    def background(self, make: Callable[[MetadataStore], _B]) -> _B:
        """The one `make(self)` this store owns: background work of a capability on this
        database (the registry's ONNX conversions), made on first use, closed with the store."""
        with self._background_lock:
            work = self._background.get(make)
            if work is None:
                work = self._background[make] = make(self)
        return work  # type: ignore[return-value]  # keyed by its maker: it made this one

    def close(self, *, cancel_pending: bool = False) -> None:
        """Close the background work this store owns (it finishes what is queued, or with
        `cancel_pending` only what is running), then dispose pooled connections."""
        with self._background_lock:
            owned, self._background = list(self._background.values()), {}
        for work in owned:
            work.close(cancel_pending=cancel_pending)
        self.db.dispose()


class Background(Protocol):
    """Work a capability runs in the background on a store, which the store shuts down."""

    def close(self, *, cancel_pending: bool = False) -> None: ...


_B = TypeVar("_B", bound=Background)


__all__ = [
    "ArtifactStore",
    "LocalArtifactStore",
    "MetadataStore",
    "Stores",
    "close_all",
    "open_artifact_store",
    "open_stores",
]


class Stores:
    """The stores one shipyard client uses, plus who is acting (for the audit log)."""

    def __init__(self, metadata: MetadataStore, artifacts: LocalArtifactStore, actor: str) -> None:
        self.metadata = metadata
        self.artifacts = artifacts
        self._actor = actor

    @property
    def actor(self) -> str:
        """The configured user (SHIPYARD_USER or the OS user), unless an HTTP edge handles a
        request in this context: then its caller (`audit.acting_as`)."""
        return current_actor(self._actor)


_OPEN: dict[tuple[str, str], MetadataStore] = {}
_OPEN_LOCK = threading.Lock()


def open_stores(settings: Settings | None = None) -> Stores:
    """The stores for `settings` (default: from the environment). Metadata stores are shared
    per database URL within a process, so connection pools are not rebuilt on every call."""
    from shipyard.config import get_settings

    settings = settings or get_settings()
    key = (settings.resolved_db_url, settings.resolved_artifacts)
    with _OPEN_LOCK:
        metadata = _OPEN.get(key)
        if metadata is None:
            metadata = _OPEN[key] = MetadataStore(settings.resolved_db_url)
    return Stores(metadata, open_artifact_store(settings.resolved_artifacts), settings.actor)


def close_all(*, cancel_pending: bool = False) -> None:
    """Close every open metadata store: its background work, then its pooled connections
    (tests, and before fork). `cancel_pending`: queued background work is given back, not done."""
    with _OPEN_LOCK:
        for store in _OPEN.values():
            store.close(cancel_pending=cancel_pending)
        _OPEN.clear()
