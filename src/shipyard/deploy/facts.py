"""What a render knows: the facts of a model version (or of an endpoint and the versions its
rollout policy names), read once through the registry and rollout capabilities.

Every target renders from these facts alone, never from the stores, so two renders of the
same facts and options are byte-identical: no clock, no hostname, no ordering of a dict that
was not sorted first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.stores import Stores

# a Kubernetes object name (RFC 1123 label): what a model or endpoint name becomes
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")
# flavors whose loading runs the model's own code: served only with --trusted
_RUNS_OWN_CODE = frozenset({"python", "python_model"})


@dataclass(frozen=True)
class VersionFacts:
    """One model version, pinned: the alias a render starts from is resolved once."""

    name: str
    version: int
    flavor: str
    digest: str  # the manifest's sha256: what a baked image and a pulled model must match
    onnx_digest: str | None
    onnx_status: str  # "ok" when a verified ONNX conversion exists
    signature: dict[str, Any] | None
    python: str  # major.minor the version was saved with
    packages: dict[str, str]  # the recorded lock: distribution -> exact version
    framework: tuple[str, ...]
    needs_trust: bool  # its runtime runs the model's own code (pickle, a Python model)
    alias: str | None = None  # the alias the user named, when they named one

    @property
    def uri(self) -> str:
        """The pinned URI: a render never follows an alias after it ran."""
        return f"models:/{self.name}/{self.version}"

    @property
    def onnx_ready(self) -> bool:
        return self.onnx_status == "ok" or self.flavor == "onnx"


@dataclass(frozen=True)
class EndpointFacts:
    """An endpoint and the rollout its policy describes (canary steps, thresholds)."""

    name: str
    policy: str  # single, canary, ab, shadow, bluegreen
    stable: VersionFacts
    candidate: VersionFacts | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """The subject of one render: a model version, or an endpoint (whose stable version is
    `model`)."""

    model: VersionFacts
    endpoint: EndpointFacts | None = None
    shipyard_version: str = ""

    @property
    def app(self) -> str:
        """The Kubernetes name of what is rendered: the endpoint's, else the model's."""
        return kube_name(self.endpoint.name if self.endpoint else self.model.name)


def kube_name(name: str) -> str:
    """A model or endpoint name as a Kubernetes object name: lower case, [a-z0-9-], at most
    50 characters (room for the suffixes a render adds, like '-canary')."""
    out = _DNS_LABEL.sub("-", name.lower()).strip("-")[:50].strip("-")
    if not out:
        raise InvalidArgumentError(
            f"'{name}' has no letter or digit to make a Kubernetes name of", field="name"
        )
    return out


def gather_model(stores: Stores, uri: str) -> Facts:
    """The facts of the version a model URI names now (an alias is resolved and pinned)."""
    import shipyard
    from shipyard.registry.uris import parse_model_uri

    ref = parse_model_uri(uri)
    version = _version_facts(stores, uri, alias=ref.alias)
    return Facts(model=version, shipyard_version=shipyard.__version__)


def gather_endpoint(stores: Stores, name: str) -> Facts:
    """The facts of a stored endpoint: its stable version and, during a rollout, the
    candidate and the policy's settings."""
    import shipyard
    from shipyard.policy import SinglePolicy, policy_of
    from shipyard.rollout import Deployments

    record = Deployments(stores).get(name)
    policy = policy_of(record)
    stable = _version_facts(stores, record.model_uri)
    candidate = None
    if not isinstance(policy, SinglePolicy):
        candidate = _version_facts(stores, policy.candidate_uri)
    endpoint = EndpointFacts(
        name=record.name,
        policy=policy.kind,
        stable=stable,
        candidate=candidate,
        config=policy.model_dump(mode="json"),
    )
    return Facts(model=stable, endpoint=endpoint, shipyard_version=shipyard.__version__)


def _version_facts(stores: Stores, uri: str, *, alias: str | None = None) -> VersionFacts:
    from shipyard.flavors import read_manifest
    from shipyard.flavors.environment import Environment
    from shipyard.registry import Registry

    registry = Registry(stores)
    mv = registry.resolve(uri)
    manifest = read_manifest(stores.artifacts, mv.artifact_digest)
    env = Environment.from_manifest(manifest)
    return VersionFacts(
        name=mv.name,
        version=mv.version,
        flavor=mv.flavor,
        digest=mv.artifact_digest,
        onnx_digest=mv.onnx_digest,
        onnx_status=mv.onnx_status,
        signature=mv.signature,
        python=".".join(env.python.split(".")[:2]) if env.python else "3.11",
        packages=dict(sorted(env.packages.items())),
        framework=tuple(env.framework),
        needs_trust=manifest.get("serialization") == "pickle" or mv.flavor in _RUNS_OWN_CODE,
        alias=alias,
    )
