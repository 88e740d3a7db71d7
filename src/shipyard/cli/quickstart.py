"""`shipyard quickstart`: the whole slice in one command — train two models on a dataset that
ships with scikit-learn, track both runs, register both versions, make the better one the
champion, serve it on a free loopback port and send it real requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from shipyard.registry import Registry

quickstart = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None
)

MODEL = "breast-cancer"


def _train(progress: Any, task: Any) -> list[tuple[str, Any]]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import shipyard as sy

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    candidates = [
        (
            "logreg",
            {"model": "logreg", "C": 1.0},
            make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
        ),
        (
            "random-forest",
            {"model": "rf", "n_estimators": 100, "max_depth": 8},
            RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1),
        ),
    ]
    results = []
    for run_name, params, estimator in candidates:
        progress.update(task, description=f"training {run_name}")
        with sy.start_run(experiment="quickstart", name=run_name, params=params) as run:
            run.log_dataset(X_train.assign(target=y_train), name="breast_cancer_train")
            run.log_dataset(X_test.assign(target=y_test), name="breast_cancer_test", role="eval")
            estimator.fit(X_train, y_train)
            proba = estimator.predict_proba(X_test)[:, 1]
            pred = estimator.predict(X_test)
            run.log_metrics(
                {
                    "auc": float(roc_auc_score(y_test, proba)),
                    "accuracy": float(accuracy_score(y_test, pred)),
                    "f1": float(f1_score(y_test, pred)),
                }
            )
            progress.update(task, description=f"registering {run_name}")
            mv = run.log_model(
                estimator,
                name=MODEL,
                input_example=X_train.iloc[:20],
                onnx="auto",
                description=f"{run_name} on breast_cancer",
                reference_data=X_train,
                reference_target=y_train,
            )
        progress.advance(task)
        results.append((run.id, mv))
    return results


@quickstart.command()
def quickstart_command(
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep the server running at the end.")
    ] = True,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 0,
) -> None:
    """Train two models, track and register them, set `champion`, serve it and query it.

    \b
    Example:
      shipyard quickstart --no-serve     # everything, then stop the server (CI)
      shipyard quickstart                # ... and keep serving until Ctrl-C
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    import shipyard as sy
    from shipyard.config import get_settings
    from shipyard.registry import Registry
    from shipyard.rollout import Deployments
    from shipyard.server.app import create_server_app
    from shipyard.serving.http import BackgroundServer
    from shipyard.stores import open_stores

    console = Console(stderr=True)
    settings = get_settings()
    console.print(f"shipyard home: {settings.home}  (set SHIPYARD_HOME to change)")
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
    ) as progress:
        task = progress.add_task("loading scikit-learn", total=4)
        results = _train(progress, task)
        progress.update(task, description="checking the ONNX conversions")
        sy.Registry.wait_for_conversions(timeout=300)
        progress.update(task, description="choosing the champion")
        stores = open_stores(settings)
        runs = {r.id: r for r in sy.search_runs(experiments="quickstart", max_results=100)}
        best_run, best = max(results, key=lambda rv: runs[rv[0]].metrics.get("auc", 0.0))
        sy.set_alias(
            MODEL,
            "champion",
            best.version,
            reason=f"highest test AUC ({runs[best_run].metrics['auc']:.4f})",
        )
        Deployments(stores).create(
            MODEL, f"models:/{MODEL}@champion", replace=True, reason="quickstart"
        )
        progress.advance(task)
        progress.update(task, description="starting the server")
        app = create_server_app(settings, refresh_seconds=1.0)
        srv = BackgroundServer(app, port=port).start()
        srv.wait_ready()
        progress.advance(task)
        progress.update(task, description="done")

    stored = Registry(stores).load(f"models:/{MODEL}@champion").manifest["input_example"]
    example, answer, v2 = _query_server(srv.url, stored)
    _print_summary(srv.url, Registry(stores), results, runs, best.version, example, answer, v2)
    if not serve:
        srv.stop()
        return
    Console().print(f"\nserving on {srv.url}; press Ctrl-C to stop")
    try:
        srv.thread.join()
    except KeyboardInterrupt:
        srv.stop()


def _query_server(
    url: str, stored: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Two rows of the model's input example, sent once to the plain route and once as a V2
    tensor → (the rows, the plain answer, the V2 answer)."""
    import httpx

    from shipyard.flavors.signature import example_records

    example = example_records(stored)[:2]
    resp = httpx.post(
        f"{url}/endpoints/{MODEL}/predict",
        json={"instances": example, "probabilities": True},
        timeout=30,
    )
    resp.raise_for_status()
    v2 = httpx.post(
        f"{url}/v2/models/{MODEL}/infer",
        json={
            "inputs": [
                {
                    "name": "input",
                    "shape": [len(example), len(example[0])],
                    "datatype": "FP64",
                    "data": stored["data"][:2],
                }
            ]
        },
        timeout=30,
    )
    v2.raise_for_status()
    return example, resp.json(), v2.json()


def _print_summary(
    url: str,
    registry: Registry,
    results: list[tuple[str, Any]],
    runs: dict[str, Any],
    champion: int,
    example: list[dict[str, Any]],
    answer: dict[str, Any],
    v2: dict[str, Any],
) -> None:
    from rich.console import Console

    out = Console()
    out.print("\n[bold]runs[/bold] (experiment 'quickstart')")
    for run_id, mv in results:
        r = runs[run_id]
        out.print(
            f"  {r.name:<14} run {run_id[:8]}  auc={r.metrics['auc']:.4f}  "
            f"accuracy={r.metrics['accuracy']:.4f}  -> {MODEL} version {mv.version} "
            f"(onnx: {registry.resolve(f'models:/{MODEL}/{mv.version}').onnx_status})"
        )
    out.print(f"[bold]champion[/bold]: {MODEL} version {champion}")
    out.print(
        f"[bold]predict[/bold]: {answer['predictions']} from version "
        f"{answer['model_version']} (request {answer['request_id'][:8]})"
    )
    out.print(f"[bold]V2 infer[/bold]: {v2['outputs'][0]['data']}")
    out.print("\n[bold]try it[/bold]:")
    out.print(
        f"  curl -s {url}/endpoints/{MODEL}/predict -H 'content-type: application/json' "
        f"-d '{{\"instances\": {_json(example[:1])}}}'",
        soft_wrap=True,
    )
    out.print(f"  API docs  {url}/docs")
    out.print(f"  metrics   {url}/metrics")
    out.print(f"  models    {url}/api/models/{MODEL}")
    out.print("  CLI       shipyard runs list -e quickstart; shipyard models show " + MODEL)


def _json(doc: Any) -> str:
    import json

    return json.dumps(doc)
