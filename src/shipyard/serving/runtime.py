"""Endpoints in memory: which model version each one serves, loading, warm-up and swaps.

A swap (new endpoint generation or an alias that moved) loads and warms the new version next
to the old one, then replaces one dict entry: requests in flight keep the object they started
with, new requests get the new one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shipyard.errors import ModelLoadError, NotFoundError, ShipyardError
from shipyard.policy import Traffic
from shipyard.serving import batching as batching_
from shipyard.serving.batching import Batcher
from shipyard.serving.routing import choose

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import numpy as np

    from shipyard.flavors import LoadedModel
    from shipyard.registry import Registry
    from shipyard.serving.metrics import ServingMetrics

log = logging.getLogger("shipyard.serving")


@dataclass
class ServedModel:
    endpoint: str
    uri: str
    generation: int = 0
    model: LoadedModel | None = None
    state: str = "loading"  # loading | ready | failed
    error: str | None = None
    loaded_at: float = field(default_factory=time.time)
    config: dict[str, Any] = field(default_factory=dict)
    memory_bytes: int | None = None
    target_version: int | None = None
    variant: str = "stable"
    metrics: ServingMetrics | None = None
    _batcher: Batcher | None = field(default=None, repr=False)
    # the module that reads this model's request bodies (`parse_predict`, `parse_v2`):
    # protocol (columns) or tensor_requests (a tensor signature), chosen once, here
    wire: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.wire is None:
            self.wire = _wire(self.model)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    # model, state and config never change on an instance (a new one replaces it): what they
    # imply is worked out once, not on each of the several reads per request

    @cached_property
    def traffic(self) -> Traffic:
        """The endpoint's traffic policy, as far as routing needs it."""
        return Traffic.of(self.config)

    @cached_property
    def model_name(self) -> str:
        return self.model.name or self.endpoint if self.model else self.endpoint

    @cached_property
    def version(self) -> str:
        return str(self.model.version) if self.model and self.model.version else ""

    def _require(self) -> LoadedModel:
        if self.model is None or not self.ready:
            raise ModelLoadError(
                f"endpoint '{self.endpoint}' is not ready ({self.state}"
                f"{': ' + self.error if self.error else ''})"
            )
        return self.model

    def predict(
        self, columns: Mapping[str, np.ndarray], proba: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict synchronously, on the calling thread."""
        return predict_both(self._require(), columns, proba)

    def run_batch(self, payloads: list[tuple[Mapping[str, np.ndarray], bool]]) -> list[Any]:
        """Predict several requests in one model call; split the outputs back per request."""
        import numpy as np

        model = self._require()
        if len(payloads) == 1:
            return [predict_both(model, *payloads[0])]
        names = list(payloads[0][0])
        if all(getattr(cols, "matrix", None) is not None for cols, _ in payloads):
            from shipyard.flavors.signature import MatrixColumns

            stacked = np.vstack([cols.matrix for cols, _ in payloads])  # type: ignore[attr-defined]
            merged: Mapping[str, np.ndarray] = MatrixColumns(
                stacked, {n: i for i, n in enumerate(names)}
            )
        else:
            try:
                merged = {n: np.concatenate([cols[n] for cols, _ in payloads]) for n in names}
            except ValueError:  # tensors whose variable dimensions differ: a call each
                return [predict_both(model, *payload) for payload in payloads]
        want_proba = any(p for _, p in payloads)
        labels, proba = predict_both(model, merged, want_proba)
        out: list[Any] = []
        start = 0
        for cols, wanted in payloads:
            n = len(cols[names[0]])
            out.append(
                (
                    labels[start : start + n],
                    proba[start : start + n] if wanted and proba is not None else None,
                )
            )
            start += n
        return out

    @cached_property
    def inline(self) -> bool:
        """`infer` answers on the calling thread without awaiting anything (onnxruntime, no
        batching): nothing can time out in between, so callers need not arm a timeout."""
        model = self.model
        return (
            model is not None and model.backend == "onnxruntime" and not self.config.get("batching")
        )

    async def infer(
        self, columns: Mapping[str, np.ndarray], proba: bool, rows: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict through the endpoint's batcher (or directly when batching is off)."""
        model = self._require()
        if self.inline:
            # onnxruntime answers in microseconds: inline calls beat a thread hop and a batch
            # (benchmarks/serving/README.md); Python models release the loop and batch
            return predict_both(model, columns, proba)
        batching = self.config.get("batching")
        if batching is not None and not batching:  # off: a Python model runs on a thread
            return await asyncio.to_thread(predict_both, model, columns, proba)
        if self._batcher is None:
            self._batcher = Batcher(
                self.run_batch,
                max_batch_rows=int(self.config.get("max_batch_size", batching_.MAX_BATCH_ROWS)),
                max_wait_ms=float(self.config.get("max_wait_ms", batching_.MAX_WAIT_MS)),
                max_queue_rows=int(self.config.get("max_queue_rows", batching_.MAX_QUEUE_ROWS)),
                slots=int(self.config.get("slots", 1)),
                on_batch=self._on_batch,
            )
        result: tuple[np.ndarray, np.ndarray | None] = await self._batcher.submit(
            (columns, proba), rows
        )
        return result

    def _on_batch(self, requests: int, rows: int, waits: list[float], seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_batch(
                self.endpoint, self.model_name, self.version, rows, waits, seconds
            )

    def describe(self) -> dict[str, Any]:
        m = self.model
        return {
            "endpoint": self.endpoint,
            "model_uri": self.uri,
            "state": self.state,
            "error": self.error,
            "model": m.name if m else None,
            "version": m.version if m else None,
            "backend": m.backend if m else None,
            "flavor": m.flavor if m else None,
            "memory_bytes": self.memory_bytes,
            "batching": {
                k: self.config[k]
                for k in ("batching", "max_batch_size", "max_wait_ms", "max_queue_rows")
                if k in self.config
            },
        }


def _wire(model: LoadedModel | None) -> Any:
    if model is not None and model.signature.kind == "tensors":
        from shipyard.serving import tensor_requests

        return tensor_requests
    from shipyard.serving import protocol

    return protocol


def predict_both(
    model: LoadedModel, columns: Mapping[str, np.ndarray], proba: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    predictor = model.predictor
    both = getattr(predictor, "predict_both", None)
    if both is not None:
        result: tuple[np.ndarray, np.ndarray | None] = both(columns, proba)
        return result
    labels = predictor.predict_columns(columns)
    return labels, predictor.predict_proba_columns(columns) if proba else None


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def load_and_warm(
    registry: Registry, uri: str, *, trusted: bool = False, ignore_env: bool = False
) -> LoadedModel:
    """Load a model and run its stored input example through it, so the first real request
    does not pay for lazy initialisation."""
    model = registry.load(uri, trusted=trusted, ignore_env=ignore_env)
    example = model.manifest.get("input_example")
    if example:
        columns = model.signature.example_columns(example)
        for _ in range(3):
            labels = model.predictor.predict_columns(columns)
            proba = model.predictor.predict_proba_columns(columns) if model.has_proba else None
        # what the answers hold, for the V2 metadata (it must say what infer answers)
        model.manifest["output_dtypes"] = {
            "predict": str(getattr(labels, "dtype", "")),
            "predict_proba": str(getattr(proba, "dtype", "")),
        }
        if model.signature.kind == "tensors":  # the shape infer answers, batch first
            model.manifest["output_shape"] = [-1, *getattr(labels, "shape", (0,))[1:]]
    return model


class EndpointTable:
    """The endpoints this process serves. Thread-safe; reads take no lock."""

    def __init__(
        self,
        registry: Registry,
        metrics: ServingMetrics,
        *,
        trusted: bool = False,
        ignore_env: bool = False,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.trusted = trusted
        self.ignore_env = ignore_env
        self._served: dict[str, ServedModel] = {}
        self._candidates: dict[str, ServedModel] = {}  # rollouts: at most one per endpoint
        # stored endpoints whose first load has not finished: 503 "loading", not 404
        self._expected: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self.initial_load_done = threading.Event()
        self.draining = threading.Event()  # set on SIGTERM: readiness turns 503
        from shipyard.serving.features import OnlineStores

        self.online_stores = OnlineStores()  # feature lookups of the models it loads

    def names(self) -> list[str]:
        return sorted(self._served)

    def all(self) -> list[ServedModel]:
        return [self._served[n] for n in sorted(self._served)]

    def get(self, name: str) -> ServedModel:
        served = self._served.get(name)
        if served is None:
            if name in self._expected:
                raise ModelLoadError(
                    f"endpoint '{name}' is loading its model; retry in a moment", field="name"
                )
            raise NotFoundError.for_name("endpoint", name, self._served)
        return served

    def expect(self, names: Iterable[str]) -> None:
        """The endpoints the metadata store holds, loaded or not yet."""
        self._expected = frozenset(names)

    @property
    def ready(self) -> bool:
        """Ready once the first load pass is over and, if there are endpoints, one serves."""
        if self.draining.is_set():
            return False
        served = list(self._served.values())
        return self.initial_load_done.is_set() and (not served or any(s.ready for s in served))

    def candidate(self, name: str) -> ServedModel | None:
        return self._candidates.get(name)

    def route(self, name: str, key: str | None) -> tuple[ServedModel, ServedModel | None]:
        """The model that answers a request to `name`, and a shadow to also call (or None),
        under the endpoint's traffic policy."""
        stable = self.get(name)
        candidate = self._candidates.get(name)
        if candidate is None or not candidate.ready:
            return stable, None
        return choose(name, stable, candidate, key)

    def reconfigure(self, endpoint: str, generation: int, config: dict[str, Any]) -> None:
        """New policy or weights for an endpoint whose models stay as they are."""
        import dataclasses

        with self._lock:
            for slot in (self._served, self._candidates):
                current = slot.get(endpoint)
                if current is not None:
                    slot[endpoint] = dataclasses.replace(
                        current,
                        generation=generation,
                        config=dict(config),
                        _batcher=current._batcher,
                    )

    def load(
        self,
        endpoint: str,
        uri: str,
        generation: int = 0,
        config: dict[str, Any] | None = None,
        *,
        variant: str = "stable",
    ) -> ServedModel:
        """Load (or reload) one endpoint's stable model (or its rollout candidate). On failure
        that slot is marked failed and the previous model, if any, keeps serving."""
        slots = self._served if variant == "stable" else self._candidates
        with self._lock:
            current = slots.get(endpoint)
            if current is None:
                current = slots[endpoint] = ServedModel(endpoint, uri, generation, variant=variant)
            reuse = self._reusable(endpoint, uri, variant)
        if reuse is not None:  # e.g. a promoted blue-green candidate: already loaded and warm
            return self._install(reuse, endpoint, uri, generation, config, variant)
        before = _rss_bytes()
        target = self.wanted_version(ServedModel(endpoint, uri))
        try:
            model = load_and_warm(
                self.registry, uri, trusted=self.trusted, ignore_env=self.ignore_env
            )
            from shipyard.serving.features import attach_features

            model = attach_features(
                self.registry,
                uri,
                model,
                endpoint=endpoint,
                metrics=self.metrics,
                online_stores=self.online_stores,
            )
        except ShipyardError as exc:
            return self._failed(endpoint, uri, generation, exc.message, target, variant)
        except Exception as exc:  # a model library failing in its own way
            log.exception("loading %s for endpoint %s failed", uri, endpoint)
            return self._failed(
                endpoint, uri, generation, f"{type(exc).__name__}: {exc}", target, variant
            )
        if (config or {}).get("require_approval") and not self._loaded_approved(model):
            # the alias moved between the approval check and the load: keep what serves now
            log.warning(
                "endpoint %s: %s resolved to unapproved version %s; not served",
                endpoint,
                uri,
                model.version,
            )
            return current
        after = _rss_bytes()
        served = ServedModel(
            endpoint,
            uri,
            generation,
            model,
            "ready",
            config=dict(config or {}),
            metrics=self.metrics,
            memory_bytes=max(after - before, 0) if before and after else None,
            target_version=model.version,
            variant=variant,
        )
        self._swap(served, slots)
        log.info(
            "endpoint %s serves %s version %s (%s, %s)",
            endpoint,
            served.model_name,
            served.version,
            model.backend,
            variant,
        )
        return served

    def _loaded_approved(self, model: LoadedModel) -> bool:
        """Whether the version just loaded (not what its alias says now) is approved."""
        if model.name is None or model.version is None:
            return False
        return self.approved(f"models:/{model.name}/{model.version}")

    def _reusable(self, endpoint: str, uri: str, variant: str) -> ServedModel | None:
        """A loaded model of the other slot that is exactly what `uri` wants now."""
        other = (self._candidates if variant == "stable" else self._served).get(endpoint)
        if other is None or not other.ready or other.model is None:
            return None
        try:
            wanted = self.registry.resolve(uri)
        except ShipyardError:
            return None
        same = (other.model.name, other.model.version) == (wanted.name, wanted.version)
        return other if same else None

    def _install(
        self,
        source: ServedModel,
        endpoint: str,
        uri: str,
        generation: int,
        config: dict[str, Any] | None,
        variant: str,
    ) -> ServedModel:
        import dataclasses

        served = dataclasses.replace(
            source,
            uri=uri,
            generation=generation,
            config=dict(config or {}),
            variant=variant,
            _batcher=None,
        )
        self._swap(served, self._served if variant == "stable" else self._candidates)
        return served

    def _swap(self, served: ServedModel, slots: dict[str, ServedModel]) -> None:
        endpoint = served.endpoint
        with self._lock:
            old = slots.get(endpoint)
            slots[endpoint] = served
        if old is not None and old.model is not None and old.version != served.version:
            self.metrics.set_ready(endpoint, old.model_name, old.version, False)
        self.metrics.set_ready(endpoint, served.model_name, served.version, True)

    def remove_candidate(self, endpoint: str) -> None:
        with self._lock:
            old = self._candidates.pop(endpoint, None)
        stable = self._served.get(endpoint)
        if (
            old is not None
            and old.model is not None
            and (stable is None or stable.version != old.version)
        ):
            self.metrics.forget(endpoint, old.model_name, old.version)

    def _failed(
        self,
        endpoint: str,
        uri: str,
        generation: int,
        message: str,
        target: int | None,
        variant: str = "stable",
    ) -> ServedModel:
        log.error("endpoint %s: cannot load %s: %s", endpoint, uri, message)
        slots = self._served if variant == "stable" else self._candidates
        with self._lock:
            current = slots.get(endpoint)
            if current is not None and current.ready and current.uri == uri:
                return current  # keep serving the version that works
            failed = ServedModel(
                endpoint,
                uri,
                generation,
                None,
                "failed",
                message,
                target_version=target,
                variant=variant,
            )
            slots[endpoint] = failed
            return failed

    def remove(self, endpoint: str) -> None:
        self.remove_candidate(endpoint)
        with self._lock:
            old = self._served.pop(endpoint, None)
        if old is not None and old.model is not None:
            self.metrics.forget(endpoint, old.model_name, old.version)

    def wanted_version(self, served: ServedModel) -> int | None:
        try:
            return self.registry.resolve(served.uri).version
        except ShipyardError:
            return None

    def approved(self, uri: str) -> bool:
        try:
            return self.registry.resolve(uri).approval == "approved"
        except ShipyardError:
            return False

    def fast_path_appeared(self, served: ServedModel) -> bool:
        """The served version got its ONNX conversion after it was loaded natively."""
        if served.model is None or served.model.backend == "onnxruntime":
            return False
        try:
            return self.registry.resolve(served.uri).onnx_status == "ok"
        except ShipyardError:
            return False


def sync_endpoints(
    table: EndpointTable, records: list[tuple[str, str, int, dict[str, Any]]]
) -> list[str]:
    """Bring `table` in line with the stored endpoints `(name, model_uri, generation, config)`:
    load new ones, reload changed ones (another model URI, or an alias that moved), apply new
    policies and weights without reloading anything, load or drop rollout candidates
    (`config["candidate_uri"]`), drop removed endpoints. A failed load is retried only when what
    it points at changes. Returns what changed, for the log."""
    changes: list[str] = []
    wanted = {name: (uri, gen, config) for name, uri, gen, config in records}
    table.expect(
        n
        for n, (uri, _, config) in wanted.items()
        if not config.get("require_approval") or table.approved(uri)
    )
    for name in table.names():
        if name not in wanted:
            table.remove(name)
            changes.append(f"removed {name}")
    for name, (uri, gen, config) in wanted.items():
        current = table._served.get(name)
        if config.get("require_approval") and not table.approved(uri):
            # an endpoint that requires approval never starts serving an unapproved version
            changes.append(f"{name}: {uri} awaits approval; not loaded")
            changes += _sync_candidate(table, name, gen, config)
            continue
        if current is None or current.uri != uri:
            table.load(name, uri, gen, config)
            changes.append(f"loaded {name}")
        else:
            want = table.wanted_version(current)
            if want is not None and want != current.target_version:
                table.load(name, uri, gen, config)
                changes.append(f"{name}: version {current.target_version} -> {want}")
            elif table.fast_path_appeared(current):
                table.load(name, uri, gen, config)
                changes.append(f"{name}: version {want} now served by onnxruntime")
            elif current.generation != gen:
                table.reconfigure(name, gen, config)
                changes.append(f"{name}: policy {config.get('policy', 'single')}")
        changes += _sync_candidate(table, name, gen, config)
    return changes


def _sync_candidate(table: EndpointTable, name: str, gen: int, config: dict[str, Any]) -> list[str]:
    want_uri = config.get("candidate_uri")
    current = table._candidates.get(name)
    if not want_uri:
        if current is not None:
            table.remove_candidate(name)
            return [f"{name}: candidate removed"]
        return []
    if current is None or current.uri != want_uri:
        table.load(name, want_uri, gen, config, variant="candidate")
        return [f"{name}: candidate {want_uri} loaded"]
    if current.generation != gen:
        table.reconfigure(name, gen, config)
    return []
