"""The options every target shares, and `--set key=value` for the ones only a target has."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shipyard.errors import InvalidArgumentError

# CPU and memory as Kubernetes quantities: 500m, 2, 1Gi, 512Mi
CPU_QUANTITY = re.compile(r"^\d+(\.\d+)?m?$")
MEMORY_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
# an image reference: [registry/]repo[:tag][@sha256:<64 hex>]
IMAGE_REFERENCE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
_SET_KEY = re.compile(r"^[a-z][a-z0-9_.-]*$")
# what a --set value may hold, whatever the target: no quote, space, newline, `$`, `{` or
# backslash can reach a Dockerfile, a shell step, a PromQL query or a Go template
_SET_VALUE = re.compile(r"[A-Za-z0-9._:/@%+=,~<>!*\[\]-]{0,500}")


@dataclass(frozen=True)
class RenderOptions:
    """What the user chooses about a render; the model's facts decide the rest."""

    image: str | None = None  # the serving image; default: shipyard-<app>:v<version>
    namespace: str = "default"
    port: int = 8080
    replicas: int = 2
    max_replicas: int = 10
    cpu: str = "500m"
    memory: str = "1Gi"
    model_source: Literal["bake", "pull"] = "bake"
    drain_seconds: float = 15.0
    trusted: bool = False  # the rendered server may run a model's own code (pickle, Python)
    settings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image is not None and not IMAGE_REFERENCE.fullmatch(self.image):
            raise InvalidArgumentError(
                f"'{self.image}' is not an image reference (e.g. ghcr.io/acme/churn:3 or "
                "ghcr.io/acme/churn@sha256:<64 hex digits>)",
                field="image",
            )
        if not 1 <= self.port <= 65535:
            raise InvalidArgumentError("--port is 1 to 65535", field="port")
        if not 1 <= self.replicas <= self.max_replicas:
            raise InvalidArgumentError(
                f"--replicas ({self.replicas}) must be at least 1 and at most --max-replicas "
                f"({self.max_replicas})",
                field="replicas",
            )
        if not CPU_QUANTITY.fullmatch(self.cpu):
            raise InvalidArgumentError(f"--cpu '{self.cpu}' is not like 500m or 2", field="cpu")
        if not MEMORY_QUANTITY.fullmatch(self.memory):
            raise InvalidArgumentError(
                f"--memory '{self.memory}' is not like 512Mi or 2Gi", field="memory"
            )
        if self.model_source not in ("bake", "pull"):
            raise InvalidArgumentError("--model-source is bake or pull", field="model_source")
        if not 0 <= self.drain_seconds <= 3600:
            raise InvalidArgumentError("--drain is 0 to 3600 seconds", field="drain_seconds")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", self.namespace):
            raise InvalidArgumentError(
                f"--namespace '{self.namespace}' is not a Kubernetes namespace name",
                field="namespace",
            )

    def setting(self, key: str, default: str) -> str:
        """A target's own option (`--set key=value`)."""
        return self.settings.get(key, default)


def parse_settings(pairs: list[str], known: Mapping[str, str]) -> dict[str, str]:
    """`--set key=value` pairs, checked against the keys the target knows (key -> help)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not _SET_KEY.fullmatch(key):
            raise InvalidArgumentError(f"--set '{pair[:80]}' is not key=value", field="set")
        if not _SET_VALUE.fullmatch(value):
            raise InvalidArgumentError(
                f"--set {key}: the value may hold letters, digits and . _ : / @ % + = , ~ < > ! "
                "* [ ] - only (no space, quote, newline, $ or braces), at most 500 characters",
                field="set",
            )
        if key not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise InvalidArgumentError(
                f"--set {key}: this target knows no such setting (it knows: {listed})",
                field="set",
            )
        out[key] = value
    return out
