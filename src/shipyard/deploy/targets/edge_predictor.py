"""Predict with an ONNX model exported by `shipyard deploy render --target edge`, on a device
without shipyard: only the standard library, numpy and onnxruntime.

    python predictor.py rows.json                 # or - for stdin; prints JSON predictions
    python predictor.py --serve --port 8080       # POST /predict, GET /health, GET /signature
    from predictor import Predictor               # Predictor().predict([{"x": 1.0, ...}])

Input is JSON: a list of rows ({"column": value, ...}; a model fitted on an array also takes
[value, ...]), {"instances": [rows]}, or {"inputs": {"column": [values]}}. Every row is
checked against signature.json (the model's columns, their types, whether a value may be
missing) before the model runs; a bad row is a one-line error that names the row and the
column. The answer is {"predictions": [...], "probabilities": [[...]]} (probabilities when
the model has them).

This file is copied unchanged from shipyard (shipyard/deploy/targets/edge_predictor.py);
model.onnx and signature.json sit beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
_NUMBER_TYPES = {"double", "float", "long", "integer"}
_WHOLE_TYPES = {"long", "integer"}
MAX_BODY = 16 * 1024 * 1024


class InputError(ValueError):
    """The input does not fit the model's signature; the message says where and why."""


class Predictor:
    """The model beside this file, with its signature."""

    def __init__(self, folder: Path = HERE) -> None:
        self.signature: dict[str, Any] = json.loads(
            (folder / "signature.json").read_text(encoding="utf-8")
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.columns: list[dict[str, Any]] = list(self.signature["inputs"])
        self.names = [c["name"] for c in self.columns]
        self.tensors = self.signature.get("kind") == "tensors"
        graph_inputs = self.session.get_inputs()
        self.input_name = graph_inputs[0].name
        self.input_dtype = np.float64 if "double" in graph_inputs[0].type else np.float32
        outputs = [o.name for o in self.session.get_outputs()]
        self.label_output = outputs[0]
        self.proba_output = outputs[1] if len(outputs) > 1 and not self.tensors else None

    def predict(self, payload: Any) -> dict[str, Any]:
        """Predictions for a JSON payload (see the module's text)."""
        if self.tensors:
            feed = self._tensors(payload)
        else:
            feed = {self.input_name: self.matrix(rows_of(payload, self.names))}
        wanted = [self.label_output] + ([self.proba_output] if self.proba_output else [])
        results = self.session.run(wanted, feed)
        labels = np.asarray(results[0])
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.ravel()
        answer: dict[str, Any] = {"predictions": labels.tolist()}
        if self.proba_output:
            answer["probabilities"] = np.asarray(results[1]).tolist()
        return answer

    def matrix(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The rows as the model's 2-D input, every value checked."""
        if not rows:
            raise InputError("no rows to predict")
        out = np.empty((len(rows), len(self.columns)), dtype=np.float64)
        known = set(self.names)
        positional = self.signature.get("kind") == "tensor"  # fitted on an array: f0, f1…
        for i, row in enumerate(rows):
            if positional and isinstance(row, list):
                if len(row) != len(self.names):
                    raise InputError(
                        f"row {i}: {len(row)} values, the model takes {len(self.names)}"
                    )
                row = {name: row[j] for j, name in enumerate(self.names)}
            if not isinstance(row, dict):
                raise InputError(f"row {i}: expected an object of columns, got {_kind(row)}")
            extra = sorted(set(row) - known)
            if extra:
                raise InputError(
                    f"row {i}: unknown column {extra[0]!r} (the model takes {len(known)} "
                    f"columns: {', '.join(self.names[:5])}{', …' if len(known) > 5 else ''})"
                )
            for j, column in enumerate(self.columns):
                out[i, j] = self._value(i, column, row.get(column["name"]))
        with np.errstate(over="ignore"):
            cast = out.astype(self.input_dtype)
        if np.isinf(cast).any() and not np.isinf(out).any():
            raise InputError("a value is beyond the model's float32 input range (±3.4e38)")
        return cast

    @staticmethod
    def _value(i: int, column: dict[str, Any], value: Any) -> float:
        name, dtype = column["name"], column.get("type", "double")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if column.get("missing"):
                return math.nan
            raise InputError(f"row {i}: {name!r} is missing, and this model takes no missing value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"row {i}: {name!r} must be a number ({dtype}), got {_kind(value)}")
        if dtype not in _NUMBER_TYPES:
            raise InputError(
                f"row {i}: {name!r} has type {dtype}, which this predictor cannot feed"
            )
        if dtype in _WHOLE_TYPES and float(value) % 1 != 0:
            raise InputError(f"row {i}: {name!r} must be a whole number ({dtype}), got {value}")
        if isinstance(value, float) and math.isinf(value):
            raise InputError(f"row {i}: {name!r} is infinite")
        return float(value)

    def _tensors(self, payload: Any) -> dict[str, np.ndarray]:
        """Named N-d inputs: {"inputs": {name: nested lists}}, shaped as the graph says."""
        inputs = payload.get("inputs") if isinstance(payload, dict) else None
        if not isinstance(inputs, dict):
            raise InputError('expected {"inputs": {"name": [[...]]}} for this tensor model')
        feed = {}
        for spec in self.session.get_inputs():
            if spec.name not in inputs:
                raise InputError(f"input {spec.name!r} is missing")
            dtype: Any = np.float64 if "double" in spec.type else np.float32
            if "int64" in spec.type:
                dtype = np.int64
            try:
                array = np.asarray(inputs[spec.name], dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise InputError(f"input {spec.name!r}: not a numeric array ({exc})") from None
            shape = list(spec.shape)
            if array.ndim != len(shape) or any(
                isinstance(shape[k], int) and shape[k] != array.shape[k]
                for k in range(1, len(shape))
            ):
                raise InputError(f"input {spec.name!r}: shape {list(array.shape)}, want {shape}")
            feed[spec.name] = array
        return feed


def rows_of(payload: Any, names: list[str]) -> list[dict[str, Any]]:
    """The rows of any accepted payload shape."""
    if isinstance(payload, dict) and "instances" in payload:
        payload = payload["instances"]
    elif isinstance(payload, dict) and "inputs" in payload:
        columns = payload["inputs"]
        if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
            raise InputError('"inputs" must map each column to a list of values')
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise InputError(f'"inputs": columns of different lengths {sorted(lengths)}')
        n = lengths.pop() if lengths else 0
        return [{k: v[i] for k, v in columns.items()} for i in range(n)]
    elif isinstance(payload, dict) and set(payload) <= set(names):
        payload = [payload]  # one row
    if not isinstance(payload, list):
        raise InputError(
            'expected a list of rows, {"instances": [rows]} or {"inputs": {column: [values]}}'
        )
    return payload


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _handler(predictor: Predictor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            elif self.path == "/signature":
                self._send(200, predictor.signature)
            else:
                self._send(404, {"error": f"no route {self.path}; POST /predict"})

        def do_POST(self) -> None:
            if self.path != "/predict":
                self._send(404, {"error": f"no route {self.path}; POST /predict"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, {"error": f"the body is over {MAX_BODY} bytes"})
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"null")
                self._send(200, predictor.predict(payload))
            except (InputError, ValueError) as exc:
                self._send(400, {"error": str(exc)})

        def log_message(self, format: str, *args: Any) -> None:  # quiet: one line a request
            sys.stderr.write(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Predict with the ONNX model beside this file.")
    parser.add_argument("input", nargs="?", default="-", help="JSON file of rows (- for stdin)")
    parser.add_argument("--serve", action="store_true", help="serve POST /predict over HTTP")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (with --serve)")
    parser.add_argument("--port", type=int, default=8080, help="port (with --serve; 0: any)")
    args = parser.parse_args(argv)
    predictor = Predictor()
    if args.serve:
        server = ThreadingHTTPServer((args.host, args.port), _handler(predictor))
        print(f"serving on http://{args.host}:{server.server_address[1]}", file=sys.stderr)
        sys.stderr.flush()
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
        return 0
    try:
        text = (
            sys.stdin.read() if args.input == "-" else Path(args.input).read_text(encoding="utf-8")
        )
        print(json.dumps(predictor.predict(json.loads(text))))
    except (InputError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
