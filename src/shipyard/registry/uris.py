"""Model URIs: `models:/name/3`, `models:/name@alias`, `models:/name/latest`,
`runs:/<run_id>/model`, and the short forms `name@alias` and `name/3`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import InvalidArgumentError
from shipyard.stores.records import MAX_VERSION

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
_MODELS = re.compile(
    rf"^(?:models:/)?(?P<name>{_NAME})(?:/(?P<version>\d+|latest)|@(?P<alias>[A-Za-z0-9_\-]+))$"
)
_RUNS = re.compile(r"^runs:/(?P<run>[0-9a-f]{4,32})(?:/(?P<path>[^/]+))?/?$")


@dataclass(frozen=True)
class ModelRef:
    name: str | None = None
    version: int | None = None
    alias: str | None = None
    latest: bool = False
    run_id: str | None = None

    def __str__(self) -> str:
        if self.run_id:
            return f"runs:/{self.run_id}/model"
        if self.alias:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{'latest' if self.latest else self.version}"


def parse_model_uri(uri: str) -> ModelRef:
    """Parse a model URI; a bad one gets an error that shows the accepted forms."""
    uri = uri.strip()
    if m := _RUNS.match(uri):
        return ModelRef(run_id=m["run"])
    if m := _MODELS.match(uri):
        if m["alias"]:
            return ModelRef(name=m["name"], alias=m["alias"])
        if m["version"] == "latest":
            return ModelRef(name=m["name"], latest=True)
        if m["version"]:
            digits = m["version"].lstrip("0")
            if not digits or len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
                raise InvalidArgumentError(
                    f"'{uri[:80]}' names version {m['version'][:20]}; "
                    f"versions are 1 to {MAX_VERSION}",
                    field="model_uri",
                )
            return ModelRef(name=m["name"], version=int(digits))
    raise InvalidArgumentError(
        f"'{uri}' is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS, "
        "models:/NAME/latest, runs:/RUN_ID/model, or the short forms NAME@ALIAS and NAME/VERSION",
        field="model_uri",
    )


def is_model_uri(uri: str) -> bool:
    """Whether a string has the form of a model URI (valid or not: `churn/0` is a URI naming
    a version that cannot exist), so it names the registry and never a folder."""
    text = uri.strip()
    if text.startswith(("models:/", "runs:/")):
        return True
    return bool(_RUNS.match(text) or _MODELS.match(text))
