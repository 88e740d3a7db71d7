"""UI benchmark: the same seeded data in MLflow's web UI and in shipyard's, side by side in one
run: time from `page.goto` to the first rows visible on the runs page of a big experiment and on
a 100-run compare, cold (a fresh browser context) and warm (a reload), plus the tab's JS heap
and DOM size; the ratios MLflow / shipyard.

    python3.11 benchmarks/ui.py            # 1,500 runs x 150 params x 300 metrics (issue #17)
    python3.11 benchmarks/ui.py --quick    # 200 runs x 30 params x 50 metrics
    python3.11 benchmarks/ui.py --json     # results as JSON on stdout (progress on stderr)

MLflow lives in its own virtualenv (`benchmarks/.venv-ui-mlflow`, created on first use with the
latest `mlflow`), never in shipyard's dependencies. The seeded stores are cached in
`benchmarks/.ui-cache/<data spec>/` (shipyard's SHIPYARD_HOME, MLflow's SQLite file per MLflow
version), so a second run starts at once. The browser is Debian's Chromium driven by Playwright
(shipyard's dev venv, where this script re-executes itself); every request off 127.0.0.1 is
aborted. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE_ROOT = HERE / ".ui-cache"
SEED_PY = REPO / "tests" / "e2e" / "ui" / "seed.py"
MLFLOW_VENV = HERE / ".venv-ui-mlflow"
sys.path.insert(0, str(HERE / "serving"))

import run as srv  # noqa: E402  (benchmarks/serving/run.py: venvs, servers, versions, loadavg)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [  # tests/e2e/test_report_page.py's, headless comes from Playwright
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# matched in Playwright's driver, so loopback requests never make a round trip to Python
OFF_LOOPBACK = re.compile(r"^(?!(?:https?|wss?)://127\.0\.0\.1[:/]|data:|blob:|about:)")
COMPARE_RUNS = 100
PAGES = ("runs", "compare")
SIDES = ("shipyard", "mlflow")
# what "first rows visible" means on each page
SELECTORS = {
    ("shipyard", "runs"): "[role=gridcell] a",
    ("shipyard", "compare"): "main [role=gridcell], main td",
    ("mlflow", "runs"): '.ag-row [role=gridcell] a[href*="/runs/"]',  # the run-name link
    ("mlflow", "compare"): "table td.data-value",  # "Run Name:" row of the compare table
}
VERSION_PACKAGES = {"shipyard": ["shipyard", "playwright"], "mlflow": ["mlflow"]}


@dataclass(frozen=True)
class Spec:
    runs: int
    params: int
    metrics: int
    steps: int

    @property
    def key(self) -> str:
        return f"{self.runs}r-{self.params}p-{self.metrics}m-{self.steps}s"


FULL = Spec(1500, 150, 300, 10_000)
QUICK = Spec(200, 30, 50, 1_000)
log = srv.log


# -- seeded stores, cached ------------------------------------------------------------------


def mlflow_python() -> Path:
    return MLFLOW_VENV / "bin" / "python"


def make_mlflow_venv(upgrade: bool) -> None:
    python = mlflow_python()
    if python.exists() and not upgrade:
        return
    log(f"setting up {MLFLOW_VENV.name}: pip install -U mlflow")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "-U", "pip"], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "-U", "mlflow"], check=True)


def shipyard_env(home: Path, src: Path | None) -> dict[str, str]:
    """A clean environment for shipyard (no SHIPYARD_* from the caller) on HOME; SRC first on
    PYTHONPATH when another checkout's shipyard is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(srv.QUIET_ENV, SHIPYARD_HOME=str(home), SHIPYARD_USER="bench")
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return env


def seeded(folder: Path, argv: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    """Run ARGV once to seed FOLDER (its last stdout line is the ids as JSON) and cache the ids
    in FOLDER/ids.json; a folder without ids.json is an interrupted seeding and starts over."""
    ids_path = folder / "ids.json"
    if ids_path.exists():
        log(f"{what}: cached in {folder.relative_to(HERE)}")
        return json.loads(ids_path.read_text())  # type: ignore[no-any-return]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"{what}: seeding {folder.relative_to(HERE)} (once; cached for the next runs)")
    start = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"seeding {what} failed:\n{done.stderr[-3000:]}")
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    ids_path.write_text(json.dumps(ids))
    log(f"  seeded in {time.monotonic() - start:.0f} s")
    return ids  # type: ignore[no-any-return]


def seed_shipyard(spec: Spec, python: Path, src: Path | None) -> dict[str, Any]:
    home = CACHE_ROOT / spec.key / "shipyard"
    code = (
        "import json, sys\nfrom tests.e2e.ui.seed import seed\n"
        "print(json.dumps(seed(*map(int, sys.argv[1:]))))"
    )
    sizes = [str(n) for n in (spec.runs, spec.params, spec.metrics, spec.steps)]
    ids = seeded(home, [str(python), "-c", code, *sizes], shipyard_env(home, src), "shipyard")
    return {"home": home, "runs": ids}


def seed_mlflow(spec: Spec, version: str) -> dict[str, Any]:
    folder = CACHE_ROOT / spec.key / f"mlflow-{version}"
    db, artifacts = folder / "mlflow.db", folder / "artifacts"
    argv = [str(mlflow_python()), str(HERE / "uibench" / "seed_mlflow.py"), str(db)]
    argv += [str(artifacts), str(SEED_PY), *map(str, (spec.runs, spec.params))]
    argv += [str(spec.metrics), str(spec.steps)]
    ids = seeded(folder, argv, {**os.environ, **srv.QUIET_ENV}, "mlflow")
    return {"db": db, "artifacts": artifacts, **ids}


# -- servers ----------------------------------------------------------------------------------


def shipyard_server(python: Path, home: Path, src: Path | None) -> srv.Server:
    argv = [str(python), "-m", "shipyard", "server", "--host", "127.0.0.1", "--port", "{port}"]
    argv += ["--log-level", "warning"]
    env = srv.with_venv_path(python, {})
    env = {**shipyard_env(home, src), "PATH": env["PATH"]}
    return srv.Server("shipyard", "shipyard", argv, "", "/ui", "", env)


def mlflow_server(db: Path, artifacts: Path) -> srv.Server:
    python = mlflow_python()
    argv = [str(python.parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}"]
    argv += ["--default-artifact-root", str(artifacts), "--host", "127.0.0.1", "--port", "{port}"]
    return srv.Server("mlflow", "MLflow", argv, "", "/health", "", srv.with_venv_path(python, {}))


def urls(side: str, base: str, seed: dict[str, Any]) -> dict[str, str]:
    """The runs page of experiment "big" and the compare page of its first 100 runs."""
    first = seed["runs"]["big"][:COMPARE_RUNS]
    if side == "shipyard":
        return {
            "runs": f"{base}/ui/runs?experiment=big",
            "compare": f"{base}/ui/compare?runs={','.join(first)}",
        }
    exp = seed["experiments"]["big"]
    runs = urllib.parse.quote(json.dumps(first, separators=(",", ":")))
    exps = urllib.parse.quote(json.dumps([exp]))
    return {
        "runs": f"{base}/#/experiments/{exp}/runs",
        "compare": f"{base}/#/compare-runs?runs={runs}&experiments={exps}",
    }


def shipyard_compare_exists(base: str) -> bool:
    try:
        status, _ = srv.http(f"{base}/ui/assets/pages/compare.js")
    except OSError:
        return False
    return bool(status == 200)


# -- measuring in Chromium --------------------------------------------------------------------


def page_metrics(context: Any, page: Any) -> dict[str, Any]:
    """The JS heap after a forced GC (CDP) and the number of DOM elements."""
    cdp = context.new_cdp_session(page)
    cdp.send("HeapProfiler.collectGarbage")
    cdp.send("Performance.enable")
    found = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    cdp.detach()
    return {
        "heap_mb": round(found.get("JSHeapUsedSize", 0) / 2**20, 1),
        "dom_elements": page.evaluate("document.getElementsByTagName('*').length"),
    }


def first_rows(page: Any, selector: str, timeout_s: float, load: Any) -> float | None:
    """Seconds from calling LOAD (goto or reload) to SELECTOR's first match visible; None on
    timeout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    start = time.perf_counter()
    try:
        load()
        page.locator(selector).first.wait_for(state="visible", timeout=timeout_s * 1000)
    except PlaywrightTimeout:
        return None
    return time.perf_counter() - start


def measure(
    browser: Any, url: str, selector: str, timeout_s: float, shot: Path | None = None
) -> dict[str, Any]:
    """One cold load in a fresh context (empty cache), its heap and DOM once the network is
    quiet (and a screenshot to SHOT), then one warm load (a reload)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    outside: list[str] = []
    errors: list[str] = []

    def block(route: Any) -> None:
        outside.append(route.request.url)
        route.abort()

    context.route(OFF_LOOPBACK, block)
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        ms = timeout_s * 1000

        def goto() -> None:
            page.goto(url, wait_until="commit", timeout=ms)

        def reload() -> None:
            page.reload(wait_until="commit", timeout=ms)

        cold = first_rows(page, selector, timeout_s, goto)
        out: dict[str, Any] = {"cold_s": cold}
        if cold is not None:
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_load_state("networkidle", timeout=15_000)
            out.update(page_metrics(context, page))
            if shot is not None:
                page.screenshot(path=str(shot))
            out["warm_s"] = first_rows(page, selector, timeout_s, reload)
        out.update(console_errors=len(errors), errors=sorted(set(errors))[:5], outside=outside)
        return out
    finally:
        context.close()


def run_reps(
    browser: Any,
    targets: dict[str, dict[str, str]],
    reps: int,
    timeout_s: float,
    shots: Path | None = None,
) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], dict[str, Any]]:
    """One untimed warm-up load of every page (servers' first-request costs; screenshots to
    SHOTS/<side>-<page>.png when SHOTS is given), then REPS rounds; the sides alternate which
    goes first from round to round. Returns the rounds' samples and the warm-up loads."""
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in targets}
    warmups: dict[str, Any] = {}
    for side, pages in targets.items():
        for page, url in pages.items():
            shot = shots / f"{side}-{page}.png" if shots else None
            got = measure(browser, url, SELECTORS[side, page], timeout_s, shot)
            warmups[f"{side} {page}"] = got
            log(f"warm-up: {side:8} {page:7} cold {fmt_s(got['cold_s'])}")
    for rep in range(reps):
        order = list(targets) if rep % 2 == 0 else list(reversed(targets))
        for page in PAGES:
            for side in order:
                if page not in targets[side]:
                    continue
                got = measure(browser, targets[side][page], SELECTORS[side, page], timeout_s)
                samples[side].setdefault(page, []).append(got)
                log(f"round {rep + 1}/{reps}: {side:8} {page:7} cold {fmt_s(got['cold_s'])}"
                    f"  warm {fmt_s(got.get('warm_s'))}")  # fmt: skip
    return samples, warmups


def median(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present or len(present) < len(values):
        return None  # a timed-out load makes the median unknown
    return statistics.median(present)


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cold_s": median([s["cold_s"] for s in samples]),
        "warm_s": median([s.get("warm_s") for s in samples]),
        "heap_mb": median([s.get("heap_mb") for s in samples]),
        "dom_elements": median([s.get("dom_elements") for s in samples]),
        "console_errors": max(s["console_errors"] for s in samples),
        "errors": sorted({e for s in samples for e in s["errors"]})[:5],
        "outside": sorted({u for s in samples for u in s["outside"]}),
        "samples": samples,
    }


# -- report -----------------------------------------------------------------------------------


def fmt_s(value: float | None, timeout: float | None = None) -> str:
    if value is None:
        return f"> {timeout:.0f} s" if timeout else "timeout"
    return f"{value:.2f} s"


def ratio(mlflow: Any, shipyard: Any) -> str:
    if mlflow is None or shipyard is None or not shipyard:
        return "-"
    return f"{mlflow / shipyard:.1f}x"


def pair(sy: dict[str, Any] | None, ml: dict[str, Any] | None, key: str) -> str:
    return f"{(sy or {}).get(key) or '-'} / {(ml or {}).get(key) or '-'}"


def render(report: dict[str, Any]) -> str:
    spec, res, timeout = report["spec"], report["results"], report["timeout_s"]
    lines = [
        "shipyard vs MLflow web UI benchmark",
        f"data: {spec['runs']:,} runs x {spec['params']} params x {spec['metrics']} metrics in "
        f"experiment big, 3 runs x {spec['steps']:,} steps, 5 diff runs (tests/e2e/ui/seed.py); "
        f"compare = the first {COMPARE_RUNS} runs",
        f"load average: start {' '.join(map(str, report['loadavg']['start']))}, end "
        f"{' '.join(map(str, report['loadavg']['end']))}; {report['cpus']} CPUs; "
        f"took {report['elapsed_s']:.0f} s",
        f"browser: Chromium {report['chromium']} headless, 1400x900, loopback only; median of "
        f"{report['reps']} rounds; cold = fresh context, warm = reload",
        "versions:",
    ]
    for side, v in report["versions"].items():
        lines.append(f"  {side:9} " + ", ".join(f"{k} {val}" for k, val in v.items()))
    if report.get("shipyard_src"):
        lines.append(f"  shipyard from {report['shipyard_src']}")
    lines += [
        "",
        "page      load   shipyard      MLflow   MLflow/shipyard   heap MB sy / ML   DOM sy / ML",
    ]
    for page in PAGES:
        sy, ml = res["shipyard"].get(page), res["mlflow"].get(page)
        if sy is None and ml is None:
            continue  # not asked for (--pages)
        if sy is None:
            lines.append(f"{page:9} shipyard: {report['notes'].get(page, 'not available')}")
        for load in ("cold", "warm"):
            a = sy[f"{load}_s"] if sy else None
            b = ml[f"{load}_s"] if ml else None
            extra = ""
            if load == "cold":
                extra = f"   {pair(sy, ml, 'heap_mb'):>15}   {pair(sy, ml, 'dom_elements'):>11}"
            sy_txt = fmt_s(a, timeout) if sy else "n/a"
            ml_txt = fmt_s(b, timeout) if ml else "n/a"
            lines.append(f"{page:9} {load:5} {sy_txt:>9} {ml_txt:>11} {ratio(b, a):>17}{extra}")
    for side in SIDES:
        for page, r in res[side].items():
            if r["outside"]:
                lines.append(f"{side} {page}: blocked off-loopback requests: {r['outside'][:5]}")
            if r["console_errors"]:
                lines.append(f"{side} {page}: up to {r['console_errors']} console error(s) per "
                             f"load: {'; '.join(e[:90] for e in r['errors'])}")  # fmt: skip
    warm_ups = ", ".join(f"{k} {fmt_s(v['cold_s'], timeout)}" for k, v in report["warmups"].items())
    lines.append(f"untimed warm-up loads (first after server start): {warm_ups}")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 runs x 30 params x 50 metrics")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--reps", type=int, default=3, help="measured rounds (default 3)")
    p.add_argument("--timeout", type=float, default=180, help="seconds per load (default 180)")
    p.add_argument("--pages", default="runs,compare", help="comma-separated: runs,compare")
    p.add_argument("--shipyard-src", type=Path, help="measure the shipyard package in this "
                   "src/ directory (another checkout) instead of the installed one")  # fmt: skip
    p.add_argument("--shots", type=Path, help="save a screenshot of each page (warm-up) here")
    p.add_argument("--reinstall", action="store_true", help="pip install -U mlflow first")
    p.add_argument("--reseed", action="store_true", help="drop the cached stores for this size")
    return p.parse_args()


def start_servers(servers: list[srv.Server], work: Path, timeout_s: float) -> None:
    for server in servers:
        srv.start(server, work)
    for server in servers:
        srv.wait_ready(server, time.monotonic() + timeout_s)
        log(f"{server.label} up on {server.base}")


def measure_all(args: argparse.Namespace, seeds: dict[str, Any], python: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    src = args.shipyard_src.resolve() if args.shipyard_src else None
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    servers = [
        shipyard_server(python, seeds["shipyard"]["home"], src),
        mlflow_server(seeds["mlflow"]["db"], seeds["mlflow"]["artifacts"]),
    ]
    work = Path(tempfile.mkdtemp(prefix="shipyard-ui-bench-"))
    pages = [p for p in args.pages.split(",") if p in PAGES]
    notes: dict[str, str] = {}
    try:
        start_servers(servers, work, 180)
        targets = {s.key: urls(s.key, s.base, seeds[s.key]) for s in servers}
        for side in targets:
            targets[side] = {p: u for p, u in targets[side].items() if p in pages}
        if "compare" in pages and not shipyard_compare_exists(servers[0].base):
            notes["compare"] = "not available (no /ui/compare page in this shipyard)"
            del targets["shipyard"]["compare"]
            log(f"shipyard compare: {notes['compare']}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                samples, warmups = run_reps(browser, targets, args.reps, args.timeout, args.shots)
                chromium = browser.version
            finally:
                browser.close()
    finally:
        for server in servers:
            srv.stop(server)
        shutil.rmtree(work, ignore_errors=True)
    results = {s: {p: summarize(v) for p, v in pages_.items()} for s, pages_ in samples.items()}
    return {"results": results, "warmups": warmups, "notes": notes, "chromium": chromium}


def main() -> None:
    args = parse_args()
    python = srv.shipyard_python()
    if Path(sys.prefix).resolve() != python.parent.parent.resolve():
        os.execv(python, [str(python), __file__, *sys.argv[1:]])
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    spec = QUICK if args.quick else FULL
    started, load_start = time.monotonic(), srv.loadavg()
    log(f"load average at start: {load_start}")
    make_mlflow_venv(args.reinstall)
    versions = {
        "shipyard": srv.versions(python, VERSION_PACKAGES["shipyard"]),
        "mlflow": srv.versions(mlflow_python(), VERSION_PACKAGES["mlflow"]),
    }
    if args.reseed:
        shutil.rmtree(CACHE_ROOT / spec.key, ignore_errors=True)
    src = args.shipyard_src.resolve() if args.shipyard_src else None
    seeds = {
        "shipyard": seed_shipyard(spec, python, src),
        "mlflow": seed_mlflow(spec, versions["mlflow"]["mlflow"]),
    }
    measured = measure_all(args, seeds, python)
    report = {
        "spec": spec.__dict__, "reps": args.reps, "timeout_s": args.timeout,
        "cpus": os.cpu_count(), "loadavg": {"start": load_start, "end": srv.loadavg()},
        "elapsed_s": round(time.monotonic() - started, 1), "versions": versions,
        "shipyard_src": str(src) if src else None, "selectors": {
            f"{side} {page}": sel for (side, page), sel in SELECTORS.items()
        }, **measured,
    }  # fmt: skip
    saved = CACHE_ROOT / "last-report.json"
    saved.write_text(json.dumps(report, indent=2, default=str))
    log(f"results saved in {saved}")
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))


if __name__ == "__main__":
    main()
