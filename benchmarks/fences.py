"""What each fence's private path buys over the public path it falls back to
(src/shipyard/fences/), measured side by side in one run and printed as a ratio.

    python3.11 benchmarks/fences.py                    # ONNX and prometheus_client
    python3.11 benchmarks/fences.py --redis redis://127.0.0.1:6379/0   # and the online store
    python3.11 benchmarks/fences.py --json

Cases (each the median of `--reps` timings of `--n` calls, after a warm-up):
  onnx        one 1-row prediction of a 30-feature logistic regression: the compiled
              session's run (`InferenceSession._sess.run`) vs `InferenceSession.run`
  prometheus  one request's latency with several workers (PROMETHEUS_MULTIPROC_DIR, so
              prometheus_client's memory-mapped values): tallied, then published with
              `_sum`/`_buckets` once per 1,000 requests, vs replayed through
              `Histogram.observe`
  redis       one single-key online-store lookup: each thread's own connection vs the
              client's pool and command machinery (needs a Redis)

The figures behind the comments that explain these choices in src/ come from here."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], n: int, reps: int) -> float:
    """Median seconds per call of `fn` over `reps` runs of `n` calls."""
    for _ in range(min(n, 1000)):
        fn()
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n)
    return statistics.median(runs)


def onnx_case(n: int, reps: int) -> tuple[float, float]:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from shipyard.flavors.onnx import OnnxPredictor, convert_sklearn
    from shipyard.flavors.signature import infer_signature

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    signature = infer_signature(X[:5])
    columns = signature.columns_from_matrix(X[:5])
    data = convert_sklearn(model, signature, columns)
    fast = OnnxPredictor.from_bytes(data, signature)
    public = OnnxPredictor.from_bytes(data, signature)
    public._run_now = None  # what the fence falls back to
    one = signature.columns_from_matrix(X[:1])
    assert (fast.predict_columns(one) == public.predict_columns(one)).all()
    return timed(lambda: fast.predict_columns(one), n, reps), timed(
        lambda: public.predict_columns(one), n, reps
    )


def prometheus_case(n: int, reps: int) -> tuple[float, float]:
    from shipyard.serving.metrics import ServingMetrics

    def per_request(replay: bool) -> float:
        metrics = ServingMetrics()
        assert metrics.shared
        metrics._replay = replay
        count = 0

        def request() -> None:
            nonlocal count
            metrics.observe("e", "m", "1", 200, 0.003, 1)
            count += 1
            if count % 1000 == 0:
                metrics.publish()

        metrics._publishing = True  # no timer: this loop publishes itself
        return timed(request, n, reps)

    return per_request(False), per_request(True)


def redis_case(url: str, n: int, reps: int) -> tuple[float, float]:
    import uuid

    from shipyard.stores.online import RedisOnlineStore

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    fast = RedisOnlineStore(url, prefix=prefix)
    public = RedisOnlineStore(url, prefix=prefix)
    public._direct = False
    fast.write("v", [("k", 1, b"x" * 64)])
    try:
        assert fast.read("v", ["k"]) == public.read("v", ["k"])
        return timed(lambda: fast.read("v", ["k"]), n, reps), timed(
            lambda: public.read("v", ["k"]), n, reps
        )
    finally:
        fast.drop("v")
        fast.close()
        public.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--redis", default=None, help="a Redis URL for the online-store case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {
        "onnx": onnx_case(args.n, args.reps),
        "prometheus": prometheus_case(args.n, args.reps),
    }
    if args.redis:
        results["redis"] = redis_case(args.redis, args.n // 4, args.reps)
    if args.json:
        print(json.dumps({k: {"private": a, "public": b} for k, (a, b) in results.items()}))
        return
    print(f"{'case':<12}{'private path':>16}{'public path':>16}{'public / private':>18}")
    for name, (private, public) in results.items():
        ratio = public / private
        print(f"{name:<12}{private * 1e6:>13.2f} µs{public * 1e6:>13.2f} µs{ratio:>17.2f}x")


if __name__ == "__main__":
    # prometheus_client reads this at import: several workers' memory-mapped values
    folder = tempfile.mkdtemp(prefix="bench-prom-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", folder)
    sys.exit(main())
