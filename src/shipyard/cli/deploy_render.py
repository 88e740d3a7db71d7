"""`shipyard deploy render`: deployment assets for a model version or an endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.deploy.targets import TARGETS

_TARGET_HELP = "; ".join(f"{name}: {line}" for name, (_, line) in TARGETS.items())


_Target = Annotated[str, typer.Option("--target", "-t", help=_TARGET_HELP)]
_ModelUri = Annotated[
    str | None,
    typer.Argument(metavar="[MODEL_URI]", help="models:/NAME@ALIAS or models:/NAME/VERSION"),
]
_Out = Annotated[
    Path | None, typer.Option("--out", "-o", help="Folder to write (default: print a diff).")
]
_Endpoint = Annotated[
    str | None,
    typer.Option(help="Render a stored endpoint and its rollout policy instead of a model."),
]
_Image = Annotated[
    str | None, typer.Option(help="Serving image, best by digest: ghcr.io/acme/churn@sha256:…")
]
_Source = Annotated[
    str,
    typer.Option(
        help="bake: the model's files go into the image (checked by digest); pull: the "
        "server fetches the pinned version from SHIPYARD_DB_URL/SHIPYARD_ARTIFACTS at start."
    ),
]
_Drain = Annotated[
    float, typer.Option(help="Seconds a replica drains after SIGTERM before it exits.")
]
_Set = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="A target's own setting, key=value (repeatable); --set help lists them."
    ),
]
_Trusted = Annotated[
    bool, typer.Option(help="The model runs its own code (pickle, Python model): serve it so.")
]
_Check = Annotated[
    bool,
    typer.Option("--check", help="Write nothing; print the diff and exit 1 if --out would change."),
]


def render_command(
    target: _Target,
    model_uri: _ModelUri = None,
    out: _Out = None,
    endpoint: _Endpoint = None,
    image: _Image = None,
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "default",
    port: Annotated[int, typer.Option(help="Port the server listens on.")] = 8080,
    replicas: Annotated[int, typer.Option(help="Replicas (the HPA's minimum).")] = 2,
    max_replicas: Annotated[int, typer.Option(help="The HPA's maximum.")] = 10,
    cpu: Annotated[str, typer.Option(help="CPU request per replica.")] = "500m",
    memory: Annotated[str, typer.Option(help="Memory request and limit per replica.")] = "1Gi",
    model_source: _Source = "bake",
    drain: _Drain = 15.0,
    set_: _Set = None,
    trusted: _Trusted = False,
    check: _Check = False,
) -> None:
    """Render deployment assets for a model version (an alias is pinned to its version) or
    for an endpoint with its rollout policy. The same inputs give byte-identical files;
    rendering over an earlier render prints what changed.

    \b
    Examples:
      shipyard deploy render models:/churn@champion --target docker --out deploy/docker
      shipyard deploy render churn@champion -t k8s -o deploy/k8s --image ghcr.io/acme/churn@sha256:…
      shipyard deploy render --endpoint churn --target argo --out deploy/argo
      shipyard deploy render models:/churn/3 -t edge -o churn-edge && pip install ./churn-edge
      shipyard deploy render models:/churn@champion -t k8s -o deploy/k8s --check   # CI drift check
    """
    from shipyard.deploy import Deploy, RenderOptions, parse_settings
    from shipyard.errors import InvalidArgumentError
    from shipyard.stores import open_stores

    deploy = Deploy(open_stores())
    if set_ == ["help"]:
        for key, text in sorted(deploy.settings(target).items()):
            typer.echo(f"{key}: {text}")
        return
    settings = parse_settings(set_ or [], deploy.settings(target))
    if model_source not in ("bake", "pull"):
        raise InvalidArgumentError("--model-source is bake or pull", field="model_source")
    options = RenderOptions(
        image=image,
        namespace=namespace,
        port=port,
        replicas=replicas,
        max_replicas=max_replicas,
        cpu=cpu,
        memory=memory,
        model_source="bake" if model_source == "bake" else "pull",
        drain_seconds=drain,
        trusted=trusted,
        settings=settings,
    )
    rendered = deploy.render(target, model_uri=model_uri, endpoint=endpoint, options=options)
    if out is None or check:
        changes = deploy.diff(rendered.files, out or Path("/nonexistent-shipyard-render"))
        typer.echo(changes, nl=False)
        if check and changes:
            raise typer.Exit(1)
        return
    subject = rendered.subject
    written = deploy.write(rendered.files, out, what=f"{target} {subject}")
    if written.diff and written.changed != written.files:
        typer.echo(written.diff, nl=False)
    typer.echo(
        f"{target}: {len(written.files)} files in {out} for {subject} "
        f"({len(written.changed)} changed, {len(written.removed)} removed)",
        err=True,
    )
