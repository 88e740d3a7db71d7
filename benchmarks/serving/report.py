"""Tables, ratios and the issue's targets for run.py's results."""

from __future__ import annotations

import statistics
from typing import Any

SHIPYARD_CONFIGS = ("shipyard", "shipyard-2w")
PEERS = ("mlflow", "bentoml", "bentoml-batch", "bentoml-best", "fastapi")
# The targets: shipyard's req/s over each peer's, and its median latency alone.
TARGETS = {"mlflow": 20.0, "bentoml": 4.0, "fastapi": 1.0, "p50_ms": 2.0}
PEER_HEADS = {
    "mlflow": "MLflow",
    "bentoml": "BentoML",
    "bentoml-batch": "BentoML batch",
    "bentoml-best": "BentoML best",
    "fastapi": "FastAPI+ORT",
}


def rps(cell: dict[str, Any], key: str) -> float | None:
    """A server's req/s in a cell; `bentoml-best` is the better of BentoML's two configs."""
    servers = cell["servers"]
    if key == "bentoml-best":
        values = [servers[k]["rps"] for k in ("bentoml", "bentoml-batch") if k in servers]
        return max(values) if values else None
    return servers[key]["rps"] if key in servers else None


def ratio(cell: dict[str, Any], ours: str, peer: str) -> float | None:
    a, b = rps(cell, ours), rps(cell, peer)
    return a / b if a is not None and b else None


def paired_ratios(cell: dict[str, Any], ours: str, peer: str) -> list[float]:
    """Round by round, shipyard's req/s ÷ the peer's (measured back to back in that round)."""
    servers = cell["servers"]
    if ours not in servers or peer not in servers:
        return []
    pairs = zip(servers[ours].get("rounds", []), servers[peer].get("rounds", []), strict=False)
    return [a["rps"] / b["rps"] for a, b in pairs if b["rps"]]


def evaluate_targets(models: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per target and shipyard config: every cell it covers, both models, the
    worst cell, and whether it was met."""
    checks = [
        ("mlflow", f">= {TARGETS['mlflow']:g}x MLflow req/s at concurrency 16 and 64", (16, 64)),
        ("bentoml-best", f">= {TARGETS['bentoml']:g}x BentoML (best config) req/s at 16 and 64",
         (16, 64)),
        ("fastapi", f">= {TARGETS['fastapi']:g}x FastAPI+onnxruntime req/s in every cell", None),
    ]  # fmt: skip
    out = []
    for ours in SHIPYARD_CONFIGS:
        if not any(ours in m["servers"] for m in models.values()):
            continue
        for peer, text, concurrencies in checks:
            minimum = TARGETS["bentoml" if peer == "bentoml-best" else peer]
            cells = []
            for name, m in models.items():
                for cell in m["cells"]:
                    if concurrencies and cell["concurrency"] not in concurrencies:
                        continue
                    r = ratio(cell, ours, peer)
                    cells.append((name, cell["concurrency"], cell["rows"], r))
            out.append(_verdict(ours, text, cells, lambda r, m=minimum: r >= m, "x"))
        cells = [
            (name, cell["concurrency"], cell["rows"], cell["servers"][ours]["p50_ms"])
            for name, m in models.items()
            for cell in m["cells"]
            if cell["concurrency"] == 1 and ours in cell["servers"]
        ]
        text = f"p50 <= {TARGETS['p50_ms']:g} ms at concurrency 1"
        out.append(_verdict(ours, text, cells, lambda v: v <= TARGETS["p50_ms"], " ms", worst=max))
    return out


def _verdict(
    ours: str, text: str, cells: list[tuple[str, int, int, float | None]], ok: Any, unit: str,
    worst: Any = min,
) -> dict[str, Any]:  # fmt: skip
    known = [c for c in cells if c[3] is not None]
    if not known:
        return {"config": ours, "target": text, "met": None, "note": "no data", "cells": cells}
    bad = next((c for c in cells if c[3] is None), None)
    w = worst(known, key=lambda c: c[3])
    met = bad is None and all(ok(c[3]) for c in known)
    note = f"worst {w[3]:.2f}{unit} ({w[0]} c={w[1]} rows={w[2]})"
    if bad is not None:
        note += f"; no figure for {bad[0]} c={bad[1]} rows={bad[2]}"
    return {"config": ours, "target": text, "met": met, "note": note, "cells": cells}


def render(report: dict[str, Any]) -> str:
    cfg = report["config"]
    v = report["versions"]
    lines = [
        "shipyard serving benchmark",
        f"load average: start {fmt_load(report['loadavg']['start'])}, "
        f"end {fmt_load(report['loadavg']['end'])}; {report['cpus']} CPUs; "
        f"took {report['elapsed_s']:.0f} s",
        f"method: wrk, 1 thread, closed loop; {cfg['rounds']} rounds x {cfg['seconds']} s per "
        "cell, servers interleaved (rotated) in each round after an unrecorded warm-up;",
        "        shown: the best round by req/s (its p50/p99); errors summed over all rounds;",
        "        req/s counts 2xx answers only",
        "versions:",
        f"  shipyard  {versions_line(v['shipyard'])}",
        f"  MLflow    {versions_line(v['mlflow'])}",
        f"  BentoML   {versions_line(v['bentoml'])}",
        f"  baseline  {versions_line(v['fastapi'])}",
        f"  {v['wrk']}",
    ]
    for name, m in report["models"].items():
        lines += ["", f"== {name}: {m['title']} =="]
        for s in m["servers"].values():
            if s["failed"]:
                lines.append(f"  {s['label']} FAILED its check and was not loaded: {s['failed']}")
            if s.get("early_errors"):
                lines.append(
                    f"  note: {s['label']} answered {s['early_errors']} predict request(s) with "
                    "an error after its health check said ready (a worker still loading?)"
                )
        lines.append(f"{'conc':>4} {'rows':>4}  {'server':<22}{'req/s':>10}{'p50 ms':>9}"
                     f"{'p99 ms':>9}{'errors':>8}")  # fmt: skip
        for cell in m["cells"]:
            first = True
            for key, r in cell["servers"].items():
                head = f"{cell['concurrency']:>4} {cell['rows']:>4}" if first else " " * 9
                first = False
                lines.append(
                    f"{head}  {m['servers'][key]['label']:<22}{r['rps']:>10,.0f}"
                    f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}"
                )
        for ours in SHIPYARD_CONFIGS:
            if ours not in m["servers"] or m["servers"][ours]["failed"]:
                continue
            lines += ["", f"{m['servers'][ours]['label']} req/s / peer req/s:"]
            heads = "".join(f"{PEER_HEADS[p]:>15}" for p in PEERS)
            lines.append(f"{'conc':>4} {'rows':>4}  {heads}")
            for cell in m["cells"]:
                cols = "".join(fmt_ratio(ratio(cell, ours, p)) for p in PEERS)
                lines.append(f"{cell['concurrency']:>4} {cell['rows']:>4}  {cols}")
            if any(paired_ratios(c, ours, "fastapi") for c in m["cells"]):
                lines += [
                    "",
                    f"{m['servers'][ours]['label']} ÷ FastAPI+ORT round by round (a diagnostic:"
                    " the targets use the best rounds)",
                    f"{'conc':>4} {'rows':>4}  {'rounds':<28}{'median':>7}",
                ]
                for cell in m["cells"]:
                    pr = paired_ratios(cell, ours, "fastapi")
                    if pr:
                        each = " ".join(f"{r:.2f}" for r in pr)
                        lines.append(
                            f"{cell['concurrency']:>4} {cell['rows']:>4}  {each:<28}"
                            f"{statistics.median(pr):>6.2f}x"
                        )
    lines += ["", "targets (both models; shipyard vs each peer):"]
    for t in report["targets"]:
        mark = {True: "met  ", False: "UNMET", None: "n/a  "}[t["met"]]
        lines.append(f"  [{mark}] {t['config']:<12} {t['target']}: {t['note']}")
    return "\n".join(lines)


def fmt_ratio(r: float | None) -> str:
    return f"{'-':>15}" if r is None else f"{r:>14.2f}x"


def fmt_load(load: Any) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def versions_line(v: dict[str, str]) -> str:
    return ", ".join(f"{k} {val}" for k, val in v.items())
