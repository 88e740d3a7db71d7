"""A request body turned into model input, and the model's output turned into the answer's
document: the plain JSON route (`parse_plain`) and the Open Inference Protocol (`parse_v2`).

    parsed = decode(parse_plain, served, {"instances": [{"a": 1.0}]})
    doc = parsed.render(served, request_id, labels, probabilities)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from shipyard.errors import InvalidArgumentError, ShipyardError
from shipyard.serving import protocol

if TYPE_CHECKING:
    import numpy as np

    from shipyard.serving.runtime import ServedModel

log = logging.getLogger("shipyard.serving")


class Parsed(NamedTuple):
    """A request turned into model input, plus how to shape the answer."""

    columns: Mapping[str, np.ndarray]
    proba: bool
    render: Callable[[ServedModel, str, np.ndarray, np.ndarray | None], dict[str, Any]]
    binary: frozenset[str] = frozenset()  # outputs answered as raw bytes (`binary.answer`)


Parser = Callable[["ServedModel", Any], Parsed]


def nrows(columns: Mapping[str, np.ndarray]) -> int:
    matrix = getattr(columns, "matrix", None)
    if matrix is not None:
        return len(matrix)
    return len(next(iter(columns.values()))) if columns else 0


def parse_plain(served: ServedModel, body: Any) -> Parsed:
    assert served.model is not None
    columns, proba = served.wire.parse_predict(body, served.model.signature)
    if proba and not served.model.has_proba:
        raise InvalidArgumentError("this model has no probabilities", field="probabilities")

    def render(
        served: ServedModel, request_id: str, labels: np.ndarray, probabilities: np.ndarray | None
    ) -> dict[str, Any]:
        assert served.model is not None
        doc: dict[str, Any] = {
            "request_id": request_id,
            "endpoint": served.endpoint,
            "model": served.model_name,
            "model_version": served.model.version,
            "predictions": labels,
        }
        if probabilities is not None:
            doc["probabilities"] = probabilities
            if served.model.classes is not None:
                doc["classes"] = served.model.classes
        return doc

    return Parsed(columns, proba, render)


def parse_v2(served: ServedModel, body: Any) -> Parsed:
    assert served.model is not None
    columns, wanted, given_id, binary = served.wire.parse_v2(body, served.model.signature)
    known = {"predict", "predict_proba"}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise InvalidArgumentError(
            f"unknown output(s) {unknown}; this model offers "
            f"{sorted(known) if served.model.has_proba else ['predict']}",
            field="outputs",
        )
    want_proba = "predict_proba" in wanted
    if want_proba and not served.model.has_proba:
        raise InvalidArgumentError("this model has no predict_proba output", field="outputs")

    def render(
        served: ServedModel, request_id: str, labels: np.ndarray, probabilities: np.ndarray | None
    ) -> dict[str, Any]:
        assert served.model is not None
        outputs = []
        if not wanted or "predict" in wanted:
            outputs.append(protocol.v2_tensor("predict", labels, "predict" in binary))
        if probabilities is not None:
            raw = "predict_proba" in binary
            outputs.append(protocol.v2_tensor("predict_proba", probabilities, raw))
        doc: dict[str, Any] = {
            "model_name": served.endpoint,
            "model_version": str(served.model.version),
            "id": given_id or request_id,
            "outputs": outputs,
        }
        if given_id:  # the caller's id is echoed; feedback needs the one the server issued
            doc["parameters"] = {"request_id": request_id}
        return doc

    return Parsed(columns, want_proba, render, binary)


def decode(parse: Parser, served: ServedModel, doc: Any) -> Parsed:
    """The caller's body as model input. The decoders raise typed errors; anything else they
    raise is still the caller's input that was not validated (logged, to be mended): a 400, so
    it never counts as the model's failure against a rollout."""
    try:
        return parse(served, doc)
    except ShipyardError:
        raise
    except Exception as exc:
        log.warning(
            "endpoint %s: a body the decoder did not expect", served.endpoint, exc_info=True
        )
        raise InvalidArgumentError(
            f"the body could not be decoded: {type(exc).__name__}: {exc}", field="body"
        ) from exc


def model_metadata(name: str, served: ServedModel) -> dict[str, Any]:
    """The V2 model metadata document of an endpoint."""
    m = served.model
    doc: dict[str, Any] = {
        "name": name,
        "state": served.state,
        "error": served.error,
        "model_uri": served.uri,
        "memory_bytes": served.memory_bytes,
    }
    if m is None:
        return doc
    seen = m.manifest.get("output_dtypes") or {}  # from the warm-up's answers
    labels_type = _v2_datatype(seen.get("predict")) or (
        "BYTES" if m.classes and any(isinstance(c, str) for c in m.classes) else "FP64"
    )
    shape = m.manifest.get("output_shape") or [-1]  # a tensor model's, from the warm-up
    outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": labels_type, "shape": shape}]
    if m.has_proba:
        proba_type = _v2_datatype(seen.get("predict_proba")) or "FP32"
        outputs.append(
            {"name": "predict_proba", "datatype": proba_type, "shape": [-1, len(m.classes or [])]}
        )
    doc.update(
        {
            "versions": [str(m.version)],
            "platform": m.backend,
            "flavor": m.flavor,
            "registered_model": m.name,
            "inputs": served.wire.v2_metadata_inputs(m.signature),
            "outputs": outputs,
        }
    )
    return doc


def _v2_datatype(dtype: str | None) -> str | None:
    """The V2 datatype infer answers for a numpy dtype name (None: not known)."""
    if not dtype:
        return None
    import numpy as np

    try:
        return str(protocol.v2_tensor("x", np.empty(0, dtype=dtype))["datatype"])
    except TypeError:
        return None
