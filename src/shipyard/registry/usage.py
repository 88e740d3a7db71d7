"""Which endpoints use a model or a version: the guard before a removal.

An endpoint uses a version when its model URI pins it (`models:/churn/3`), follows `latest`
while it is the latest, names the run that logged it (`runs:/<id>/model`), or when a rollout
(canary, A/B, shadow, blue-green) has it as stable or candidate. Aliases are judged by the
store (an alias is a row, not a URI).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.registry.uris import ModelRef
    from shipyard.stores.records import EndpointRecord, ModelVersionRecord


def endpoint_users(
    endpoints: Sequence[EndpointRecord],
    name: str,
    versions: Sequence[ModelVersionRecord],
    latest: int | None,
) -> list[str]:
    """Phrases naming each endpoint that uses one of `versions` of model `name` (all of its
    versions when removing the model)."""
    out = []
    for e in endpoints:
        roles = endpoint_roles(e, name, versions, latest)
        if roles:
            out.append(f"endpoint '{e.name}' ({', '.join(roles)})")
    return out


def endpoint_roles(
    endpoint: EndpointRecord,
    name: str,
    versions: Sequence[ModelVersionRecord],
    latest: int | None,
    aliases: Mapping[str, int] | None = None,
) -> list[str]:
    """How `endpoint` uses one of `versions` of model `name` ("serves", "candidate", "stable
    version 3"…); [] when it does not. With `aliases` (alias → version), a URI naming an alias
    uses the version it points at ("serves via @champion"); without, aliases count for
    nothing (the removal guard judges alias rows on their own)."""
    numbers = {v.version for v in versions}
    runs = {v.run_id for v in versions if v.run_id}
    roles = []
    for role, ref in _refs(endpoint):
        if _uses(ref, name, numbers, runs, latest):
            roles.append(role)
        elif aliases and ref.name == name and aliases.get(ref.alias or "") in numbers:
            roles.append(f"{role} via @{ref.alias}")
    roles += _rollout_roles(endpoint, name, numbers)
    return list(dict.fromkeys(roles))


def _refs(e: EndpointRecord) -> list[tuple[str, ModelRef]]:
    from shipyard.registry.uris import parse_model_uri

    uris = [("serves", e.model_uri)]
    candidate = e.config.get("candidate_uri")
    if isinstance(candidate, str):
        uris.append(("candidate", candidate))
    out = []
    for role, uri in uris:
        try:
            out.append((role, parse_model_uri(uri)))
        except ShipyardError:  # a row no longer valid names nothing we could remove
            continue
    return out


def _uses(ref: ModelRef, name: str, numbers: set[int], runs: set[str], latest: int | None) -> bool:
    if ref.run_id is not None:
        return any(r.startswith(ref.run_id) for r in runs)
    if ref.name != name:
        return False
    if ref.alias is not None:
        return False  # the alias row itself blocks the removal
    if ref.latest:
        return latest in numbers
    return ref.version in numbers


def _rollout_roles(e: EndpointRecord, name: str, numbers: set[int]) -> list[str]:
    """Stable and candidate of a rollout in progress (the stable is of the endpoint's model)."""
    from shipyard.policy import policy_of

    try:
        policy = policy_of(e)
    except ShipyardError:
        return []
    roles = []
    stable = getattr(policy, "stable_version", None)
    candidate = getattr(policy, "candidate_version", None)
    serves = _refs(e)
    if stable in numbers and serves and serves[0][1].name == name:
        roles.append(f"stable version {stable}")
    cand_refs = [ref for role, ref in serves if role == "candidate"]
    if candidate in numbers and cand_refs and cand_refs[0].name == name:
        roles.append(f"candidate version {candidate}")
    return roles
