"""The baseline: a minimal hand-written FastAPI + onnxruntime endpoint, what an engineer would
write in an afternoon (no validation, no logging, no metrics). One uvicorn worker.

    python fastapi_onnx.py MODEL.onnx FEATURES.json PORT
    curl -s 127.0.0.1:PORT/predict -d '{"instances": [{"mean radius": 17.99, ...}]}'
"""

import sys

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

model_path, features_path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(features_path, "rb") as fh:
    FEATURES = orjson.loads(fh.read())

options = ort.SessionOptions()
options.intra_op_num_threads = 1  # tiny models: thread hand-offs cost more than they save
session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0].name
LABEL = session.get_outputs()[0].name

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/predict")
async def predict(request: Request) -> Response:
    rows = orjson.loads(await request.body())["instances"]
    x = np.array([[row[f] for f in FEATURES] for row in rows], dtype=np.float32)
    labels = session.run([LABEL], {INPUT: x})[0]
    body = orjson.dumps({"predictions": labels.tolist()})
    return Response(body, media_type="application/json")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", workers=1)
