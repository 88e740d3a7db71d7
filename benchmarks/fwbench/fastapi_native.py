"""The baseline: a minimal hand-written FastAPI endpoint calling the framework's own predict,
what an engineer would write in an afternoon (no validation, no logging, no metrics). One
uvicorn worker. Runs in benchmarks/.venv-fw-fastapi.

    python fastapi_native.py FLAVOR MODEL_FILE N_FEATURES PORT
    curl -s 127.0.0.1:PORT/predict -d '{"instances": [{"f00": 0.1, ...}]}'
"""

import sys

import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fwmodels import columns, load

flavor, model_path, n_features, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
FEATURES = columns(n_features)
model = load(flavor, model_path, n_features)

if flavor == "torch":
    import torch

    torch.set_num_threads(1)

    def predict(x: np.ndarray) -> list[int]:
        with torch.no_grad():
            return model(torch.from_numpy(x.astype(np.float32))).argmax(dim=1).tolist()
else:

    def predict(x: np.ndarray) -> list[int]:
        return model.predict(x).tolist()


app = FastAPI()


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/predict")
async def predict_route(request: Request) -> Response:
    rows = orjson.loads(await request.body())["instances"]
    x = np.array([[row[f] for f in FEATURES] for row in rows], dtype=np.float64)
    body = orjson.dumps({"predictions": predict(x)})
    return Response(body, media_type="application/json")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", workers=1)
