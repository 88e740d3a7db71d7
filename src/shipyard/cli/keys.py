"""`shipyard keys`: API keys for the data and control planes."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import new_app, print_json, table, ts

app = new_app("""API keys: created once (the secret is shown only then), stored hashed, scoped.

\b
Examples:
  shipyard keys create ci-bot --scope predict --endpoint churn --rate 50
  shipyard keys list
  shipyard keys revoke 3fa9c2d1 --reason "leaked in a log"
""")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", "-s", help="predict, feedback, read, track or admin (repeat)."),
    ],
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", "-e", help="Limit to these endpoints (repeat)."),
    ] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Requests per second.")] = None,
    burst: Annotated[int | None, typer.Option(min=1, help="Bucket size (default: rate).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a key and print it once.

    \b
    Example:
      shipyard keys create ci-bot --scope predict --endpoint churn --rate 50 --burst 100
      curl -H "Authorization: Bearer sy_…" localhost:8080/endpoints/churn/predict -d …
    """
    from shipyard.access import ApiKeys
    from shipyard.stores import open_stores

    record, key = ApiKeys(open_stores()).create(
        name, scopes=scope, endpoints=endpoint, rate_per_second=rate, burst=burst
    )
    if as_json:
        print_json({**record.to_dict(), "key": key})
        return
    typer.echo(f"created key {record.id} for {name} (scopes: {', '.join(record.scopes)})")
    typer.echo(key)
    typer.echo("store it now: shipyard keeps only its hash", err=True)


@app.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List keys (never their secrets).

    \b
    Example:
      shipyard keys list --json
    """
    from shipyard.access import ApiKeys
    from shipyard.stores import open_stores

    keys = ApiKeys(open_stores()).list()
    if as_json:
        print_json([k.to_dict() for k in keys])
        return
    table(
        f"{len(keys)} key(s)",
        ["id", "name", "scopes", "endpoints", "rate", "created", "revoked"],
        [
            [
                k.id,
                k.name,
                ",".join(k.scopes),
                ",".join(k.endpoints or ()) or "all",
                f"{k.rate_per_second:g}/s" if k.rate_per_second else "",
                ts(k.created_at),
                ts(k.revoked_at) if k.revoked_at else "",
            ]
            for k in keys
        ],
    )


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (second part of sy_<id>_…).")],
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (audit log).")] = None,
) -> None:
    """Revoke a key; servers refuse it within seconds (SHIPYARD_AUTH_CACHE_SECONDS).

    \b
    Example:
      shipyard keys revoke 3fa9c2d1 --reason "rotated"
    """
    from shipyard.access import ApiKeys
    from shipyard.stores import open_stores

    ApiKeys(open_stores()).revoke(key_id, reason=reason)
    typer.echo(f"revoked key {key_id}")
