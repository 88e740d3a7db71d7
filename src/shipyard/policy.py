"""An endpoint's traffic policy as a typed, validated record, discriminated by its kind.

The metadata store keeps the kind in the endpoint's `policy` column and the rest as JSON in its
`config` column. `rollout/` writes it (`Deployments`) and judges it (`controller.decide`); the
data plane (`serving/`) routes requests by it; the edges show it. `serving` may not import
`rollout` (it stands below it in the layer list), so the record lives here, beside `config.py`
and `errors.py`, and knows no capability: every layer can read it.

    policy = parse_policy("canary", record.config)   # InvalidArgumentError naming the field
    policy.weight                                    # 5.0
    store.set_policy(name, policy=policy.kind, config=policy.to_config(), …)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from shipyard.errors import InvalidArgumentError, StoreError

Kind: TypeAlias = Literal["single", "canary", "ab", "shadow", "bluegreen"]
KINDS: tuple[Kind, ...] = ("single", "canary", "ab", "shadow", "bluegreen")


class _Record(BaseModel):
    # NaN and infinities never validate: stored as JSON they would become null and make the
    # row unreadable (no status, no rollback) until replaced
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# counts a caller sets: positive and within what every store and JSON encoder takes
Count: TypeAlias = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Thresholds(_Record):
    """When a candidate has regressed against stable (canary, shadow, blue-green)."""

    # candidate error rate may exceed stable's by this much
    max_error_rate_delta: float = Field(default=0.02, ge=0, le=1)
    max_p99_ratio: float = Field(default=1.5, gt=0)  # candidate p99 may be this times stable's
    p99_slack_ms: float = Field(default=5.0, ge=0)  # ... plus this much (tiny latencies jitter)
    # live quality from late labels (when both sides have enough): the candidate's accuracy
    # may be this much below stable's (classes), its MAE this fraction above stable's (numbers)
    max_quality_drop: float = Field(default=0.05, ge=0)
    # effect size of the prediction-distribution change that rolls back. None (the default):
    # a candidate is supposed to predict differently, so a shift is only reported as a
    # warning. Rollouts stored before it became opt-in keep the 0.2 they were started with.
    max_prediction_shift: float | None = Field(default=None, ge=0)
    prediction_alpha: float = Field(default=0.01, gt=0, lt=1)


class VerdictNote(_Record):
    """The controller's latest verdict on a manual (or holding) rollout, for `deploy status`."""

    action: str
    reason: str
    at_ms: int
    evidence: Any = None


class LastRollout(_Record):
    """How the endpoint's previous rollout ended."""

    policy: Kind
    outcome: str  # promoted | rolled back
    reason: str
    candidate_version: int | None = None
    stable_version: int | None = None
    ended_ms: int
    evidence: Any = None


class _Policy(_Record):
    # settings of the endpoint that outlive any rollout
    require_approval: bool = False

    def to_config(self) -> dict[str, Any]:
        """The JSON stored in the endpoint's `config` column (the kind has its own column)."""
        doc = self.model_dump(exclude={"kind"})  # the store makes it JSON (audit.json_safe)
        if not self.require_approval:  # stored only when set, as it always was
            del doc["require_approval"]
        return {k: v for k, v in doc.items() if v is not None}


class SinglePolicy(_Policy):
    """One model answers everything."""

    kind: Literal["single"] = "single"
    last_rollout: LastRollout | None = None


class _Rollout(_Policy):
    candidate_uri: str  # pinned: models:/name/version
    candidate_version: int = Field(ge=1)
    stable_version: int = Field(ge=1)
    started_ms: int
    auto: bool = False
    thresholds: Thresholds = Thresholds()
    gate_override: str | None = None  # the reason the candidate's failed gates were overridden
    verdict: VerdictNote | None = None


class CanaryPolicy(_Rollout):
    """`weight` % of requests to the candidate, raised step by step."""

    kind: Literal["canary"] = "canary"
    steps: list[float]
    step: int = Field(default=0, ge=0)
    weight: float
    step_started_ms: int
    min_requests: Count = 100
    min_seconds: float = Field(default=30.0, ge=0)

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[float]) -> list[float]:
        if not steps or any(not 0 < s <= 100 for s in steps):
            raise ValueError("canary steps are weights in (0, 100], e.g. 5,25,50,100")
        if any(b <= a for a, b in itertools.pairwise(steps)) or steps[-1] != 100:
            raise ValueError("canary steps must increase and end at 100")
        return steps


class AbPolicy(_Rollout):
    """A fixed-horizon A/B test: `split` % of caller keys to the candidate."""

    kind: Literal["ab"] = "ab"
    split: float = Field(default=50.0, gt=0, lt=100)
    min_samples: Count = 1000
    alpha: float = Field(default=0.05, gt=0, lt=1)
    higher_is_better: bool = True
    # where outcomes come from: the `outcome` of /feedback, or (as before outcomes had a field
    # of their own, and so for tests stored then) its `label`
    outcome_source: Literal["outcome", "label"] = "label"


class ShadowPolicy(_Rollout):
    """Stable answers; the candidate also predicts on `sample` of the requests."""

    kind: Literal["shadow"] = "shadow"
    sample: float = Field(default=1.0, gt=0, le=1)
    min_requests: Count = 200
    min_seconds: float = Field(default=0.0, ge=0)
    min_agreement: float = Field(default=0.95, ge=0, le=1)
    # two numeric predictions agree when |shadow - stable| <= atol + rtol * |stable|
    # (numpy.isclose); labels (integers, text) agree only when equal
    agreement_rtol: float = Field(default=0.05, ge=0)
    agreement_atol: float = Field(default=1e-8, ge=0)


class BlueGreenPolicy(_Rollout):
    """All traffic to the candidate at once (`switched`), kept `keep_seconds` before promotion."""

    kind: Literal["bluegreen"] = "bluegreen"
    keep_seconds: float = Field(default=600.0, ge=0)
    switched: bool = False
    switched_ms: int | None = None


RolloutPolicy: TypeAlias = CanaryPolicy | AbPolicy | ShadowPolicy | BlueGreenPolicy
EndpointPolicy: TypeAlias = SinglePolicy | RolloutPolicy
_MODELS: dict[str, type[_Policy]] = {
    "single": SinglePolicy,
    "canary": CanaryPolicy,
    "ab": AbPolicy,
    "shadow": ShadowPolicy,
    "bluegreen": BlueGreenPolicy,
}
_ADAPTER: TypeAdapter[EndpointPolicy] = TypeAdapter(
    Annotated[EndpointPolicy, Field(discriminator="kind")]
)


def parse_policy(kind: str, config: Mapping[str, Any]) -> EndpointPolicy:
    """The typed policy of an endpoint from its `policy` column and `config` JSON; bad input
    raises InvalidArgumentError naming the field."""
    if kind not in KINDS:
        raise InvalidArgumentError(
            f"policy must be one of {', '.join(KINDS)}, not {kind!r}", field="policy"
        )
    try:
        return _ADAPTER.validate_python({**config, "kind": kind})
    except ValidationError as exc:
        raise _invalid(exc) from None


class _Stored(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def policy(self) -> str: ...
    @property
    def config(self) -> dict[str, Any]: ...


def policy_of(record: _Stored) -> EndpointPolicy:
    """The typed policy of a stored endpoint record. A row that no longer validates (written
    by hand, or by a version before migration 0009) is a StoreError naming endpoint and field."""
    try:
        return parse_policy(record.policy, record.config)
    except InvalidArgumentError as exc:
        raise StoreError(
            f"endpoint '{record.name}' has an invalid stored policy: {exc.message}",
            public=f"endpoint '{record.name}' has an invalid stored policy",
            **exc.details,
        ) from None


def upgrade_stored(kind: str, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The validated shape of a row written before policies were typed (migration 0009):
    settings no policy of its kind has are dropped, defaults filled in, numbers given their
    types. None when the row does not validate even so (it is left as it is)."""
    model = _MODELS.get(kind)
    if model is None or not isinstance(config, Mapping):
        return None
    known = {k: v for k, v in config.items() if k in model.model_fields}
    if isinstance(known.get("thresholds"), Mapping):
        known["thresholds"] = {
            k: v for k, v in known["thresholds"].items() if k in Thresholds.model_fields
        }
    try:
        return parse_policy(kind, known).to_config()
    except InvalidArgumentError:
        return None


def build_policy(kind: Kind, **fields: Any) -> EndpointPolicy:
    """A new policy from keyword fields (validated as `parse_policy` does)."""
    return parse_policy(kind, fields)


def _invalid(exc: ValidationError) -> InvalidArgumentError:
    """The first problem of a validation error, as one readable line naming the field."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    if loc and loc[0] in KINDS:  # the discriminated union's branch, not a field
        loc = loc[1:]
    field = ".".join(loc) or "policy"
    cause = err.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, ValueError) else err["msg"]
    if err["type"] == "extra_forbidden":
        message = "is not a setting of this policy"
    elif err["type"] == "missing":
        message = "is required"
    return InvalidArgumentError(
        message if isinstance(cause, ValueError) else f"{field}: {message}", field=field
    )


class Traffic(BaseModel):
    """What the data plane needs to route a request: a lenient read of the served endpoint's
    settings (`policy` plus the policy's own fields, next to batching options), so a replica
    keeps routing whatever else the row holds."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: str = Field(default="single", alias="policy")  # an unknown kind routes as single
    weight: float = 0.0
    split: float = 50.0
    sample: float = 1.0
    switched: bool = False

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Traffic:
        try:
            return cls.model_validate(config)
        except ValidationError as exc:
            raise _invalid(exc) from None
