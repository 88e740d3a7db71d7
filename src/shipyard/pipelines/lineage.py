"""Lineage of a pipeline output: the step run, code and inputs that made it, recursively."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.errors import NotFoundError

if TYPE_CHECKING:
    from shipyard.config import Settings


def lineage(digest: str, *, settings: Settings | None = None, depth: int = 50) -> dict[str, Any]:
    """Which step (code hash, params, seed, git commit, environment) made the output `digest`
    from which inputs — each input traced the same way, back to the first step."""
    from shipyard.stores import open_stores

    stores = open_stores(settings)
    if len(digest) < 8:
        raise NotFoundError(f"give at least 8 characters of the digest, not {digest!r}")
    return _trace(stores, digest, depth)


def _trace(stores: Any, digest: str, depth: int) -> dict[str, Any]:
    producers = stores.metadata.pipelines.lineage(digest)
    if not producers:
        raise NotFoundError(
            f"no pipeline step produced an output with digest {digest}",
            kind="output",
            name=digest,
        )
    step = producers[0]  # the run that computed it; later ones reused it from the cache
    full = next((o["digest"] for o in step.outputs if o["digest"].startswith(digest)), digest)
    run = stores.metadata.runs.get_run(step.run_id) if step.run_id else None
    node: dict[str, Any] = {
        "digest": full,
        "kind": next((o["kind"] for o in step.outputs if o["digest"] == full), None),
        "step": step.step,
        "step_run": step.id,
        "pipeline_run": step.pipeline_run_id,
        "code_hash": step.code_hash,
        "params": step.params,
        "seed": step.seed,
        "run_id": step.run_id,
        "git_commit": run.git_commit if run else None,
        "git_dirty": run.git_dirty if run else None,
        "environment": run.environment_digest if run else None,
        "made_at": step.ended_at,
        "inputs": {},
    }
    if depth > 0:
        node["inputs"] = {
            arg: _trace(stores, d, depth - 1) for arg, d in sorted(step.inputs.items())
        }
    return node
