"""The tables of ../frameworks.py: serving (req/s, errors, ratios, PASS/FAIL per cell against
the issue's targets), parity, log_model + register time, and the optimizer's place."""

from __future__ import annotations

import statistics
from typing import Any

from report import fmt_load, rps, versions_line  # benchmarks/serving/report.py

# shipyard req/s ÷ peer req/s, in every cell (issue 16); 0 errors anywhere
TARGETS = {"mlflow": 20.0, "bentoml-best": 4.0, "fastapi": 1.0}
LOGGING_TARGET = 10.0
SERVERS = ("shipyard", "mlflow", "bentoml", "bentoml-batch", "fastapi")
HEADS = {
    "shipyard": "shipyard",
    "mlflow": "MLflow",
    "bentoml": "BentoML",
    "bentoml-batch": "Bento batch",
    "fastapi": "FastAPI",
}


def cell_verdict(cell: dict[str, Any]) -> tuple[dict[str, float | None], list[str]]:
    """The three ratios and what fails in this cell (empty: PASS)."""
    ratios: dict[str, float | None] = {}
    fails = []
    ours = rps(cell, "shipyard")
    for peer, minimum in TARGETS.items():
        theirs = rps(cell, peer)
        r = ours / theirs if ours is not None and theirs else None
        ratios[peer] = r
        if r is None:
            fails.append(f"no {peer} figure")
        elif r < minimum:
            fails.append(f"{peer} {r:.2f}x < {minimum:g}x")
    if cell["servers"].get("shipyard", {}).get("errors"):
        fails.append(f"shipyard errors {cell['servers']['shipyard']['errors']}")
    return ratios, fails


def serving_lines(flavor: str, m: dict[str, Any]) -> list[str]:
    lines = ["", f"== serving: {flavor}, {m['title']} =="]
    for s in m["servers"].values():
        if s["failed"]:
            lines.append(f"  {s['label']} FAILED its check and was not loaded: {s['failed']}")
    head = "".join(f"{HEADS[k]:>16}" for k in SERVERS)
    lines.append(
        f"{'conc':>4} {'rows':>4}{head}  {'/MLflow':>8}{'/Bento':>8}{'/FastAPI':>9}  verdict"
    )
    lines.append(" " * 9 + "".join(f"{'req/s (err)':>16}" for _ in SERVERS))
    for cell in m["cells"]:
        cols = ""
        for k in SERVERS:
            r = cell["servers"].get(k)
            cols += f"{'-':>16}" if r is None else f"{r['rps']:>10,.0f} ({r['errors']:>2})"
        ratios, fails = cell_verdict(cell)
        rs = "".join(
            f"{'-':>{w}}" if ratios[p] is None else f"{ratios[p]:>{w - 1}.2f}x"
            for p, w in (("mlflow", 8), ("bentoml-best", 8), ("fastapi", 9))
        )
        verdict = "PASS" if not fails else "FAIL: " + "; ".join(fails)
        peer_errors = sum(r["errors"] for k, r in cell["servers"].items() if k != "shipyard")
        if peer_errors:
            verdict += f" (peers' errors: {peer_errors})"
        lines.append(f"{cell['concurrency']:>4} {cell['rows']:>4}{cols}  {rs}  {verdict}")
    return lines


def parity_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", "== parity: shipyard's served outputs vs the framework's own predict =="]
    for r in rows:
        text = f"  {r['model']:<22} {r['rows']:>6,} rows  max |diff| {r['max_abs_diff']:.2e}"
        if "label_flips" in r:
            text += f"  labels differ on {r['label_flips']} rows"
        if "max_rel_drift" in r:
            ok = r["max_rel_drift"] < 1e-6 or "note" in r
            text += f"  relative drift {r['max_rel_drift']:.2e} ({'PASS' if ok else 'FAIL'})"
        lines.append(text)
        lines.append(f"  {'':<22} served by: {r['backend']}")
        if "note" in r:
            lines.append(f"  {'':<22} {r['note']}")
    return lines


def logging_lines(logging: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "== log_model + register, median seconds (shipyard vs MLflow's log_model with "
        "registered_model_name) ==",
        f"  {'flavor':<10}{'shipyard':>10}{'(+ONNX sync)':>14}{'MLflow':>10}{'MLflow/shipyard':>17}"
        f"  target >= {LOGGING_TARGET:g}x",
    ]
    for flavor, times in logging["shipyard"].items():
        ours = statistics.median(times["auto"])
        sync = f"{statistics.median(times['onnx']):.3f}" if times["onnx"] else "refused"
        theirs = statistics.median(logging["mlflow"][flavor])
        ratio = theirs / ours
        verdict = "PASS" if ratio >= LOGGING_TARGET else "FAIL"
        lines.append(
            f"  {flavor:<10}{ours:>10.3f}{sync:>14}{theirs:>10.3f}{ratio:>16.1f}x  {verdict}"
        )
        if times.get("onnx_refused"):
            lines.append(f"  {'':<10}onnx=True refused: {times['onnx_refused'][:150]}")
    return lines


def render(report: dict[str, Any]) -> str:
    spec, cfg, v = report["spec"], report["config"], report["versions"]
    lines = [
        "shipyard frameworks benchmark",
        f"data: {spec['rows']:,} training rows x {spec['features']} features "
        f"(make_classification, seed {spec['seed']}); {spec['test_rows']:,} held-out rows served "
        f"and compared; boosters {spec['trees']} trees, depth {spec['depth']}",
        f"load average: start {fmt_load(report['loadavg']['start'])}, end "
        f"{fmt_load(report['loadavg']['end'])}; {report['cpus']} CPUs; took "
        f"{report['elapsed_s']:.0f} s",
        f"serving: wrk, 1 thread, closed loop; {cfg['rounds']} round(s) x {cfg['seconds']} s per "
        "cell, servers rotated each round; best round shown; errors summed over rounds",
        "versions:",
        *(f"  {k:<9} {versions_line(val)}" for k, val in v.items()),
    ]
    for what, why in report["skipped"].items():
        lines.append(f"{what} rows: {why}")
    for flavor, m in report["serving"].items():
        lines += serving_lines(flavor, m)
    if report["serving"]:
        lines.append(
            "targets per cell: shipyard >= 20x MLflow, >= 4x BentoML (better of its two "
            "configs), >= 1x FastAPI; 0 shipyard errors"
        )
    lines += parity_lines(report["parity"])
    lines += logging_lines(report["logging"])
    lines += optimizer_lines(report["optimizer"])
    return "\n".join(lines)


def optimizer_lines(opt: dict[str, Any]) -> list[str]:
    lines = ["", "== optimizer (shipyard models optimize; held-out = the 10,000 test rows) =="]
    if not opt.get("available"):
        return [*lines, f"  {opt['note']}"]
    heads = (
        f"{'flavor':<10}{'technique':<20}{'p50 ms/row old -> new':<24}{'size KB old -> new':<20}"
    )
    lines.append(f"  {heads}metric delta (new - old)")
    for row in opt["rows"]:
        head = f"  {row['flavor']:<10}{row['technique']:<20}"
        if "error" in row:
            lines.append(f"{head}refused: {row['error']}")
            continue
        r = row["report"]
        delta = ", ".join(
            f"{k} {v:+.4f}" for k, v in r["metrics"]["delta"].items() if v is not None
        )
        lat, size = r["latency_p50_ms_per_row"], r["size_bytes"]
        lat_text = f"{lat['old']:.3f} -> {lat['new']:.3f}"
        size_text = f"{size['old'] / 1024:,.0f} -> {size['new'] / 1024:,.0f}"
        lines.append(f"{head}{lat_text:<24}{size_text:<20}{delta}")
    return lines
