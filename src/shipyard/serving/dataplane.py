"""The data plane: one object that owns the table of endpoints, their metrics, the prediction
and feedback logs and the request limits, and answers a prediction, a V2 inference or late
labels. No HTTP server in it: a request is anything with `headers.get` and `await read(limit)`
(`answers.BodyRequest`), an answer is (status, JSON body, headers). The ASGI routes, the ASGI
fast path and the transport's direct path all call these same methods.

    plane = DataPlane(settings, table, metrics, predlog, feedback_log)
    status, body, headers = await plane.predict("churn", BytesRequest(b'{"instances": [...]}'))
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from shipyard.errors import (
    InvalidArgumentError,
    ModelLoadError,
    NotFoundError,
    RequestTimeoutError,
    ServingError,
    ShipyardError,
    SignatureError,
)
from shipyard.serving import binary, protocol
from shipyard.serving.answers import (
    Answer,
    BodyRequest,
    ClientGone,
    error_answer,
    json_answer,
)
from shipyard.serving.decoding import (
    Parsed,
    Parser,
    decode,
    model_metadata,
    nrows,
    parse_plain,
    parse_v2,
)
from shipyard.serving.features import expiry_headers

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.serving.metrics import ServingMetrics
    from shipyard.serving.predlog import FeedbackLogger, PredictionLogger
    from shipyard.serving.runtime import EndpointTable, ServedModel

log = logging.getLogger("shipyard.serving")

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}\Z")  # echoed in a header: nothing else


class DataPlane:
    """Every endpoint of one server process, answering requests (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        table: EndpointTable,
        metrics: ServingMetrics,
        predlog: PredictionLogger | None = None,
        feedback_log: FeedbackLogger | None = None,
    ) -> None:
        from shipyard.requestids import RequestIds, request_id_key

        self.settings = settings
        self.table = table
        self.metrics = metrics
        self.predlog = predlog
        self.feedback_log = feedback_log
        self.limit = settings.max_body_bytes
        self.max_rows = settings.max_rows
        self.timeout = settings.request_timeout_seconds
        self.ids = RequestIds(request_id_key(settings))
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, table: EndpointTable, metrics: ServingMetrics
    ) -> DataPlane:
        """A data plane with the prediction and feedback logs the settings ask for."""
        return cls(
            settings, table, metrics, make_predlog(settings, metrics), make_feedback_log(settings)
        )

    # -- the hot routes --------------------------------------------------------------------

    async def predict(self, name: str, request: BodyRequest) -> Answer:
        """`{"instances": [{feature: value}, …]}` → predictions, `request_id`, `model_version`."""
        return await self._observed(name, request, parse_plain)

    async def infer(self, name: str, request: BodyRequest, version: str | None = None) -> Answer:
        """V2 inference; with `version`, only when the endpoint serves that version."""
        if version is not None:
            try:
                served = self.table.get(name)
            except ShipyardError as exc:
                return error_answer(exc)
            if served.version != version:
                return error_answer(
                    NotFoundError(
                        f"endpoint '{name}' serves version {served.version or 'none'}, "
                        f"not {version}"
                    )
                )
        return await self._observed(name, request, parse_v2)

    # -- feedback, health, metadata ---------------------------------------------------------

    async def feedback(self, name: str, request: BodyRequest) -> Answer:
        """Late labels (live accuracy) and outcomes (A/B tests) for logged predictions, by
        `request_id` (and `row`)."""
        try:
            self.table.get(name)
            if self.feedback_log is None:
                raise InvalidArgumentError("this server keeps no prediction log, so no feedback")
            items = protocol.parse_feedback(await request.read(self.limit))
            self.ids.check(name, [item.request_id for item in items])
        except ShipyardError as exc:
            return error_answer(exc)
        self.feedback_log.log(name, items, time.time_ns() // 1_000_000)
        return json_answer({"accepted": len(items)}, 202, [])

    def readiness(self) -> Answer:
        table = self.table
        is_ready = table.ready
        doc = {
            "ready": is_ready,
            "draining": table.draining.is_set(),
            "endpoints": {s.endpoint: s.state for s in table.all()},
        }
        errors = {s.endpoint: s.error for s in table.all() if s.error and not s.ready}
        if errors:  # why an endpoint does not serve (a model that cannot load, and how to fix)
            doc["errors"] = errors
        return json_answer(doc, 200 if is_ready else 503, [])

    def model_metadata(self, name: str) -> Answer:
        try:
            served = self.table.get(name)
        except ShipyardError as exc:
            return error_answer(exc)
        return json_answer(model_metadata(name, served), 200, [])

    def model_ready(self, name: str) -> Answer:
        try:
            served = self.table.get(name)
        except ShipyardError as exc:
            return error_answer(exc)
        # open to probes without a key: the state, never the load error (it may name the
        # artifact store's location); the model's metadata, which needs `read`, gives it
        doc: dict[str, object] = {"name": name, "ready": served.ready, "state": served.state}
        return json_answer(doc, 200 if served.ready else 503, [])

    # -- one request, observed ----------------------------------------------------------------

    def _ready_model(self, name: str) -> ServedModel:
        served = self.table.get(name)
        if not served.ready or served.model is None:
            raise ModelLoadError(
                f"endpoint '{name}' is not ready ({served.state}"
                f"{': ' + served.error if served.error else ''})"
            )
        return served

    async def _observed(self, name: str, request: BodyRequest, parse: Parser) -> Answer:
        """Answer one request, counted in the metrics and the prediction log whatever happens."""
        start = time.perf_counter()
        # the prediction's id (the key feedback joins on) is always the server's own; the
        # caller's X-Request-ID is only echoed back, for its logs
        request_id = self.ids.issue(name)
        given_id = request.headers.get("x-request-id")
        echo = given_id if given_id and _REQUEST_ID.match(given_id) else request_id
        table = self.table
        served: ServedModel | None = None
        parsed: Parsed | None = None
        labels = probabilities = None
        status = 200
        gauge = self.metrics.in_flight_for(name if name in table._served else "_unknown")
        gauge.inc()
        try:
            if given_id and echo is not given_id:
                raise InvalidArgumentError(
                    "X-Request-ID must be 1 to 128 printable ASCII characters", field="x-request-id"
                )
            self._ready_model(name)
            doc = protocol.parse_body(
                await request.read(self.limit), binary.header_value(request.headers), self.max_rows
            )
            key = request.headers.get("x-shipyard-key") or protocol.request_key(doc)
            served, shadow = table.route(name, key)
            if not served.ready or served.model is None:  # a candidate still loading
                served = self._ready_model(name)
                shadow = None
            parsed = decode(parse, served, doc)
            rows = nrows(parsed.columns)
            if rows > self.max_rows:
                raise SignatureError(
                    f"{rows} rows in one request; the limit is {self.max_rows}",
                    field="instances",
                    limit=self.max_rows,
                )
            if served.inline:  # answered on this thread: no await in between, nothing to time
                labels, probabilities = await served.infer(parsed.columns, parsed.proba, rows)
            else:
                labels, probabilities = await self._infer_timed(served, parsed, rows)
            out = parsed.render(served, request_id, labels, probabilities)
            if served.variant != "stable" or table.candidate(name) is not None:
                out["variant"] = served.variant
            if shadow is not None:
                self._spawn(self._shadow(name, shadow, doc, parse, request_id))
            return _answer(
                out,
                parsed.binary,
                [
                    (b"x-request-id", echo.encode("latin-1")),
                    (b"x-model-version", served.version.encode("latin-1")),
                    (b"x-model-variant", served.variant.encode("latin-1")),
                    *expiry_headers(parsed.columns),
                ],
            )
        except ShipyardError as exc:
            status = exc.http_status
            reason = exc.details.get("reason") or type(exc).__name__
            self.metrics.reject(name if served is not None else "_unknown", str(reason))
            return error_answer(exc, request_id, echo)
        except ClientGone:  # gone before its body was in: no one to answer, nothing failed
            status = 499
            return error_answer(ServingError("the client closed the connection"), request_id, echo)
        except Exception as exc:  # the model library failed: a 500 that names it, counted
            status = 500
            log.exception("endpoint %s: prediction failed", name)
            return error_answer(
                ServingError(f"the model failed: {type(exc).__name__}: {exc}"), request_id, echo
            )
        finally:
            gauge.dec()
            elapsed = time.perf_counter() - start
            self._observe(name, served, request_id, elapsed, status, parsed, labels, probabilities)

    async def _infer_timed(self, served: ServedModel, parsed: Parsed, rows: int) -> Any:
        """The model's answer within the request timeout (a batched or threaded model)."""
        try:
            async with asyncio.timeout(self.timeout):  # no extra task per request (wait_for)
                return await served.infer(parsed.columns, parsed.proba, rows)
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"the prediction took longer than {self.timeout:g} s"
            ) from exc

    def _observe(
        self,
        name: str,
        served: ServedModel | None,
        request_id: str,
        elapsed: float,
        status: int,
        parsed: Parsed | None,
        labels: Any,
        probabilities: Any,
    ) -> None:
        """One answered request into the metrics and the prediction log."""
        if served is None:
            self.metrics.observe("_unknown", "", "", status, elapsed, 0)
            return
        n = len(labels) if parsed is not None and labels is not None else 0
        self.metrics.observe(name, served.model_name, served.version, status, elapsed, n)
        if self.predlog is not None:
            self._record(
                name, served, request_id, elapsed, status, parsed, labels, probabilities
            )  # fmt: skip

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _shadow(
        self, name: str, shadow: ServedModel, doc: Any, parse: Parser, request_id: str
    ) -> None:
        """The candidate's answer to a request the stable model already answered: logged
        (variant "shadow") for agreement and latency, never returned, never raised."""
        start = time.perf_counter()
        status, parsed, labels = 200, None, None
        try:
            parsed = parse(shadow, doc)
            labels, _ = await asyncio.wait_for(
                shadow.infer(parsed.columns, False, nrows(parsed.columns)), self.timeout
            )
        except Exception as exc:  # the shadow's failure is data, not the caller's problem
            status = exc.http_status if isinstance(exc, ShipyardError) else 500
        elapsed = time.perf_counter() - start
        rows = nrows(parsed.columns) if parsed is not None and labels is not None else 0
        self.metrics.observe(name, shadow.model_name, shadow.version, status, elapsed, rows)
        if self.predlog is not None:
            self._record(name, shadow, request_id, elapsed, status, parsed, labels, None, "shadow")

    def _record(
        self,
        name: str,
        served: ServedModel,
        request_id: str,
        elapsed: float,
        status: int,
        parsed: Parsed | None,
        labels: Any,
        probabilities: Any,
        variant: str | None = None,
    ) -> None:
        """One request into the prediction log (features and outputs only when it succeeded)."""
        assert self.predlog is not None
        ok = parsed is not None and labels is not None
        model = served.model
        self.predlog.record(
            name,
            served.version,
            variant or served.variant,
            request_id,
            time.time_ns() // 1_000_000,
            elapsed * 1000,
            status,
            parsed.columns if ok and parsed is not None else None,
            labels if ok else None,
            probabilities if ok else None,
            model.manifest.get("classes") if model is not None else None,
        )


def _answer(doc: dict[str, Any], raw: frozenset[str], headers: list[tuple[bytes, bytes]]) -> Answer:
    """A prediction's answer: JSON, or with the outputs in `raw` as bytes after it (the
    binary tensor data extension)."""
    if raw:
        return binary.answer(doc, raw, 200, headers)
    return json_answer(doc, 200, headers)


def make_feedback_log(settings: Settings) -> FeedbackLogger | None:
    if not settings.predlog_enabled:
        return None
    from shipyard.serving.predlog import FeedbackLogger
    from shipyard.stores.predictions import PredictionLogStore

    return FeedbackLogger(
        PredictionLogStore(settings.labels_dir),
        PredictionLogStore(settings.outcomes_dir),
        flush_seconds=settings.predlog_flush_seconds,
    )


def make_predlog(settings: Settings, metrics: ServingMetrics) -> PredictionLogger | None:
    """The prediction logger the settings ask for (None when disabled)."""
    if not settings.predlog_enabled:
        return None
    from shipyard.serving.predlog import PredictionLogger
    from shipyard.stores.predictions import PredictionLogStore

    return PredictionLogger(
        PredictionLogStore(settings.predictions_dir),
        capacity_rows=settings.predlog_capacity_rows,
        flush_seconds=settings.predlog_flush_seconds,
        sample_rate=settings.predlog_sample_rate,
        on_drop=lambda endpoint, n: metrics.predlog_dropped.labels(endpoint).inc(n),
        on_write=lambda endpoint, n: metrics.predlog_written.labels(endpoint).inc(n),
    )
