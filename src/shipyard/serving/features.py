"""Endpoints whose model version names a FeatureService (the version tag `feature_service`).

Such an endpoint takes rows with only the entity keys and any request-time fields (on-demand
inputs, and model inputs no feature provides); before prediction it fetches the service's
features from the online store, computes its on-demand features with the same code as
`FeatureStore.get_training_frame`, and hands the model exactly the columns it was trained on.

    mv = run.log_model(model, name="churn", input_example=X[:5],
                       tags={"feature_service": "churn"})
    POST /endpoints/churn/predict {"instances": [{"driver_id": 7, "amount": 12.5}]}

A missing entity gets the view's default, or a 404 when the view's default is "error". The
online store is read with a short timeout (`SHIPYARD_FEATURE_TIMEOUT_SECONDS`, 0.05) behind a
circuit breaker: when it is slow or down, the request is answered with the views' defaults (a
503 for views without one) and `shipyard_feature_fallbacks_total` counts it; after
`SHIPYARD_FEATURE_BREAKER_FAILURES` (5) consecutive errors the breaker opens and the store is
not tried again for `SHIPYARD_FEATURE_BREAKER_RESET_SECONDS` (5).

A value older than its view's TTL is served the view's default and counted per row in
`shipyard_feature_expired_total{endpoint, view}`; a view with `on_expired="refuse"` answers
such a request with a 404 naming the entity and the view (counted as well).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from shipyard.errors import NotFoundError, ShipyardError, StoreUnavailableError
from shipyard.flavors.signature import ColumnSpec, Signature

if TYPE_CHECKING:
    import numpy as np

    from shipyard.features.online import OnlineFeatures, OnlinePlan
    from shipyard.features.store import FeatureStore
    from shipyard.flavors import LoadedModel
    from shipyard.registry import Registry
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.stores.online import OnlineStore

TAG = "feature_service"
PLAN_REFRESH_SECONDS = 30.0  # how often an endpoint looks for newer materialized view versions


class CircuitBreaker:
    """Closed until `failures` consecutive errors; then open for `reset_seconds`, after which
    one call is let through (half-open) and its outcome closes or re-opens it."""

    def __init__(self, failures: int = 5, reset_seconds: float = 5.0) -> None:
        self.failures = failures
        self.reset_seconds = reset_seconds
        self._errors = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if time.monotonic() - self._opened_at >= self.reset_seconds:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if time.monotonic() - self._opened_at >= self.reset_seconds:
                self._opened_at = time.monotonic()  # one trial call per reset period
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._errors = 0
            self._opened_at = None

    def failure(self) -> None:
        with self._lock:
            self._errors += 1
            if self._errors >= self.failures:
                self._opened_at = time.monotonic()


class _NothingOnline:
    """An online store that has nothing: lookups through it give every view's default."""

    kind = "none"

    def read_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[None]]:
        return [[None] * len(keys) for _, keys in requests]


class FeatureColumns(dict[str, "np.ndarray"]):
    """One request's model input, with the rows that were served a view's defaults because
    their value was older than the view's TTL: `expired`, view name → row indexes (only the
    views with such a row). The data plane says it in the answer's headers (`expiry_headers`)."""

    __slots__ = ("expired",)

    def __init__(
        self, columns: Mapping[str, np.ndarray], expired: dict[str, list[int]] | None = None
    ) -> None:
        super().__init__(columns)
        self.expired = expired or {}


def expired_rows(fetched: OnlineFeatures) -> dict[str, list[int]]:
    """View name → the indexes of the rows a lookup served its defaults because their value
    had expired."""
    if not fetched.expired_counts:  # nothing expired: the usual case
        return {}
    return {v: [i for i, e in enumerate(f) if e] for v, f in fetched.expired.items() if any(f)}


EXPIRED_HEADER: Final = b"x-shipyard-expired-features"
EXPIRED_ROWS_HEADER: Final = b"x-shipyard-expired-rows"
MAX_LISTED_ROWS: Final = 100  # per view; keeps the header within proxies' limits


def expiry_headers(columns: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
    """The answer's headers for a request whose rows got a view's defaults because their
    value expired (none otherwise):

        X-Shipyard-Expired-Rows: 2                       rows with at least one expired view
        X-Shipyard-Expired-Features: driver_stats=0,3; weather=3

    each view (percent-encoded) with the 0-based indexes of its expired rows in the request;
    past `MAX_LISTED_ROWS` a view's list ends with `+N`, the number of rows not listed."""
    if type(columns) is not FeatureColumns or not columns.expired:
        return []
    from urllib.parse import quote

    parts = []
    for view, indexes in columns.expired.items():
        listed = [str(i) for i in indexes[:MAX_LISTED_ROWS]]
        if len(indexes) > MAX_LISTED_ROWS:
            listed.append(f"+{len(indexes) - MAX_LISTED_ROWS}")
        parts.append(f"{quote(view, safe='-_')}={','.join(listed)}")
    rows = len({i for indexes in columns.expired.values() for i in indexes})
    return [
        (EXPIRED_ROWS_HEADER, str(rows).encode()),
        (EXPIRED_HEADER, "; ".join(parts).encode("ascii")),
    ]


class FeatureFetcher:
    """Turns request columns (entity keys, request fields) into the model's input columns."""

    def __init__(
        self,
        plan: OnlinePlan,
        online: OnlineStore,
        model_signature: Signature,
        *,
        endpoint: str = "",
        fallbacks: Any = None,
        expired: Any = None,
        breaker: CircuitBreaker | None = None,
        refresh: Callable[[], OnlinePlan | None] | None = None,
        refresh_seconds: float = 30.0,
    ) -> None:
        self.plan = plan
        self._refresh = refresh
        self.refresh_seconds = refresh_seconds
        self._next_refresh = time.monotonic() + refresh_seconds
        self.online = online
        self.model_signature = model_signature
        self.endpoint = endpoint
        self.fallbacks = fallbacks
        self.expired = expired
        self.breaker = breaker or CircuitBreaker()
        provided = set(plan.columns)
        self.model_names = model_signature.names
        request: dict[str, str] = {}
        for view in plan.views:
            for key in view.view.join_keys:
                kt = view.view.entity.key_type if len(view.view.join_keys) == 1 else "string"
                request.setdefault(key, kt)
        for name, dtype in plan.request_fields.items():
            request.setdefault(name, dtype)
        for spec in model_signature.inputs:  # model inputs no feature provides come with the row
            if spec.name not in provided:
                request.setdefault(spec.name, spec.dtype)
        takes = model_signature.takes_missing  # a model input sent with the row keeps its rule
        self.request_inputs = tuple(ColumnSpec(n, t, n in takes) for n, t in request.items())

    def current_plan(self) -> OnlinePlan:
        """The plan, switched to newer view versions once they are materialized (checked every
        `refresh_seconds`), as long as the model's features and the request stay the same."""
        if self._refresh is not None and time.monotonic() >= self._next_refresh:
            self._next_refresh = time.monotonic() + self.refresh_seconds
            try:
                newer = self._refresh()
            except ShipyardError:
                newer = None
            if newer is not None and self._compatible(newer):
                self.plan = newer
        return self.plan

    def _compatible(self, plan: OnlinePlan) -> bool:
        request = {c.name for c in self.request_inputs}
        keys = {k for v in plan.views for k in v.view.join_keys}
        provided = set(plan.columns)
        return (keys | set(plan.request_fields)) <= request and all(
            n in provided or n in request for n in self.model_names
        )

    def enrich(self, columns: Mapping[str, np.ndarray]) -> FeatureColumns:
        names = [c.name for c in self.request_inputs]
        values = [columns[n].tolist() for n in names]
        rows = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        fetched = self._fetch(rows)
        out = FeatureColumns(columns, expired_rows(fetched))
        for spec in self.model_signature.inputs:
            if spec.name in fetched:
                out[spec.name] = self.model_signature.coerce_column(
                    spec.name, spec.dtype, fetched[spec.name], origin=" (from the feature store)"
                )
        return out

    def _fetch(self, rows: list[dict[str, Any]]) -> OnlineFeatures:
        from shipyard.features.online import lookup

        plan = self.current_plan()
        if not self.breaker.allow():
            return self._fallback(rows, "circuit_open")
        try:
            fetched = lookup(self.online, plan, rows)
        except StoreUnavailableError:
            self.breaker.failure()
            return self._fallback(rows, "unavailable")
        except NotFoundError as exc:  # an expired value the view refuses is counted too
            if exc.details.get("expired") and self.expired is not None:
                self.expired.labels(self.endpoint, str(exc.details.get("view"))).inc()
            raise
        self.breaker.success()
        if self.expired is not None:
            for view, count in fetched.expired_counts.items():
                self.expired.labels(self.endpoint, view).inc(count)
        return fetched

    def _fallback(self, rows: list[dict[str, Any]], reason: str) -> OnlineFeatures:
        from shipyard.features.online import lookup

        if self.fallbacks is not None:
            self.fallbacks.labels(self.endpoint, reason).inc()
        try:
            return lookup(_NothingOnline(), self.plan, rows)  # type: ignore[arg-type]
        except NotFoundError as exc:  # a view without a default: say the store is down
            message = (
                f"the online feature store is unavailable ({reason.replace('_', ' ')}) and "
                f"view '{exc.details.get('view')}' has no default"
            )
            raise StoreUnavailableError(message, public=message) from None


@dataclasses.dataclass(frozen=True)
class FeatureSignature(Signature):
    """The request's signature (entity keys, request fields); parsing a request also fetches
    its features, so each request gets its own 4xx and batches hold only complete rows."""

    fetcher: Any = dataclasses.field(default=None, compare=False, repr=False)

    def columns_from_records(self, records: Any) -> Any:
        return self.fetcher.enrich(super().columns_from_records(records))

    def columns_from_matrix(self, matrix: Any, *, field: str = "inputs") -> Any:
        return self.fetcher.enrich(super().columns_from_matrix(matrix, field=field))

    def complete(self, columns: Any) -> Any:
        return self.fetcher.enrich(columns)


class FeaturePredictor:
    """The model's predictor, fed only the columns it was trained on (fetching them first when
    a request reached it without them, e.g. V2 per-tensor requests)."""

    def __init__(self, inner: Any, fetcher: FeatureFetcher) -> None:
        self.inner = inner
        self.fetcher = fetcher
        self.backend = inner.backend
        self._names = fetcher.model_names
        both = getattr(inner, "predict_both", None)
        if both is not None:
            self.predict_both = self._predict_both

    def _columns(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not all(n in columns for n in self._names):
            columns = self.fetcher.enrich(columns)
        return {n: columns[n] for n in self._names}

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> Any:
        return self.inner.predict_columns(self._columns(columns))

    def predict_proba_columns(self, columns: Mapping[str, np.ndarray]) -> Any:
        return self.inner.predict_proba_columns(self._columns(columns))

    def _predict_both(self, columns: Mapping[str, np.ndarray], proba: bool) -> Any:
        return self.inner.predict_both(self._columns(columns), proba)


def fallback_counter(metrics: ServingMetrics | None) -> Any:
    return _counter(
        metrics,
        "shipyard_feature_fallbacks",
        "Requests answered with feature defaults because the online store failed.",
        ("endpoint", "reason"),
    )


def expired_counter(metrics: ServingMetrics | None) -> Any:
    return _counter(
        metrics,
        "shipyard_feature_expired",
        "Entity rows whose online feature value was older than the view's TTL (served the "
        "default, or refused when the view says on_expired='refuse').",
        ("endpoint", "view"),
    )


def _counter(metrics: ServingMetrics | None, name: str, doc: str, labels: tuple[str, ...]) -> Any:
    return metrics.counter(name, doc, labels) if metrics is not None else None


def materialized_plan(store: FeatureStore, service: str) -> OnlinePlan | None:
    """The service's plan on the newest view versions, or None while one of them has never
    been materialized (nothing online yet: keep reading the version before)."""
    from shipyard.features.online import online_store_identity

    newer = store.online_plan(service)
    materialized = store.stores.metadata.features.materialized_until
    where = online_store_identity(store.online)
    if any(materialized(v.view.name, v.version, where) is None for v in newer.views):
        return None
    return newer


class OnlineStores:
    """The online stores one endpoint table reads, one per location: reloading a model reuses
    its connections. Owned by the table (no process-wide cache)."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str | None], OnlineStore] = {}
        self._lock = threading.Lock()

    def get(self, settings: Any) -> OnlineStore:
        from shipyard.stores.online import open_online_store

        key = (str(settings.home), settings.redis_url)
        with self._lock:
            store = self._open.get(key)
            if store is None:
                store = self._open[key] = open_online_store(
                    settings, timeout=settings.feature_timeout_seconds
                )
        return store


def attach_features(
    registry: Registry,
    uri: str,
    model: LoadedModel,
    *,
    endpoint: str = "",
    metrics: ServingMetrics | None = None,
    online_stores: OnlineStores | None = None,
) -> LoadedModel:
    """`model` as loaded, or, when its version names a feature service, a copy that takes
    entity keys and fetches its features."""
    try:
        record = registry.resolve(uri)
    except ShipyardError:
        return model
    service = (getattr(record, "tags", None) or {}).get(TAG)
    if not service:
        return model
    from shipyard.features import FeatureStore

    store = FeatureStore(stores=registry.stores)
    plan = store.online_plan(service)
    online = (online_stores or OnlineStores()).get(store.settings)

    def refresh() -> OnlinePlan | None:
        return materialized_plan(store, service)

    fetcher = FeatureFetcher(
        plan,
        online,
        model.signature,
        endpoint=endpoint,
        fallbacks=fallback_counter(metrics),
        expired=expired_counter(metrics),
        breaker=CircuitBreaker(
            store.settings.feature_breaker_failures, store.settings.feature_breaker_reset_seconds
        ),
        refresh=refresh,
        refresh_seconds=PLAN_REFRESH_SECONDS,
    )
    signature = FeatureSignature(fetcher.request_inputs, "columns", fetcher)
    manifest = {**model.manifest, "feature_service": service, "input_example": None}
    return dataclasses.replace(
        model,
        predictor=FeaturePredictor(model.predictor, fetcher),
        signature=signature,
        manifest=manifest,
    )
