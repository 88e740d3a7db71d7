"""Data contracts: an expectation suite for a DataFrame, checked by pandera.

    suite = Suite("churn-input", [
        Column("tenure", dtype="int64", not_null=True, min=0, max=120),
        Column("plan", allowed=["basic", "pro"]),
        Column("customer_id", unique=True),
        Rows(min=1000),
        Distribution(reference="train.parquet", columns=["tenure"], severity="warning"),
    ])
    result = suite.validate(df)          # every failed expectation, with counts and examples
    result.raise_for_blocking()          # ContractFailedError when an "error" one failed

or the same in YAML (`Suite.from_yaml`, `shipyard data validate FILE --suite suite.yaml`):

    name: churn-input
    expectations:
      - {column: tenure, dtype: int64, not_null: true, min: 0, max: 120}
      - {column: plan, allowed: [basic, pro]}
      - {rows: {min: 1000}}
      - {distribution: {reference: train.parquet, columns: [tenure]}, severity: warning}

Column, null, range, set, uniqueness and row-count checks are pandera's; the distribution
check is shipyard's drift test (KS / chi-square with Holm correction) against a reference
DataFrame file or the training profile of a registered model (`models:/churn@champion`).
Severity "error" (the default) blocks a pipeline; "warning" is reported only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import ContractFailedError, InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.config import Settings

Severity = Literal["error", "warning"]
EXAMPLES = 5


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str | None = None  # a pandas dtype name: int64, float64, str, bool, category, …
    not_null: bool = False
    min: float | None = None
    max: float | None = None
    allowed: Sequence[Any] | None = None
    unique: bool = False
    severity: Severity = "error"


@dataclass(frozen=True)
class Rows:
    min: int | None = None
    max: int | None = None
    severity: Severity = "error"


@dataclass(frozen=True)
class Distribution:
    reference: str  # a Parquet/CSV file, or a model URI whose training profile is the reference
    columns: Sequence[str] | None = None
    alpha: float = 0.01
    min_effect: float | None = 0.1
    severity: Severity = "error"


Expectation = Column | Rows | Distribution


@dataclass
class Failure:
    expectation: str  # e.g. "tenure: min 0"
    column: str | None
    check: str
    severity: str
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "check": self.check,
            "severity": self.severity,
            "count": self.count,
            "examples": self.examples,
        }

    def __str__(self) -> str:
        shown = ", ".join(
            f"{e['value']!r}" + (f" (row {e['row']})" if e.get("row") is not None else "")
            for e in self.examples
        )
        return f"{self.expectation}: {self.count} failing" + (f" — e.g. {shown}" if shown else "")


@dataclass
class ValidationResult:
    suite: str
    rows: int
    expectations: int
    failures: list[Failure]

    @property
    def blocking(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "error"]

    @property
    def passed(self) -> bool:
        return not self.blocking

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "rows": self.rows,
            "expectations": self.expectations,
            "passed": self.passed,
            "failures": [f.to_dict() for f in self.failures],
        }

    def raise_for_blocking(self) -> ValidationResult:
        if self.blocking:
            lines = "; ".join(str(f) for f in self.blocking)
            raise ContractFailedError(
                f"data contract '{self.suite}' failed: {lines}", report=self.to_dict()
            )
        return self


class Suite:
    def __init__(
        self, name: str, expectations: Sequence[Expectation], *, base: Path | None = None
    ) -> None:
        if not expectations:
            raise InvalidArgumentError(f"suite '{name}' has no expectations", field="expectations")
        self.name = name
        self.expectations = list(expectations)
        self.base = base  # where relative reference paths start

    def __repr__(self) -> str:
        return f"<Suite {self.name}: {len(self.expectations)} expectations>"

    # -- declaring ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, base: Path | None = None) -> Suite:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("expectations"), list):
            raise InvalidArgumentError(
                "a suite is a mapping with `name` and a list of `expectations`", field="suite"
            )
        out: list[Expectation] = []
        for i, item in enumerate(doc["expectations"]):
            out.append(_expectation(item, i))
        return cls(str(doc.get("name") or "suite"), out, base=base)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Suite:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise InvalidArgumentError(f"no such suite file: {p}", field="suite")
        try:
            doc = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise InvalidArgumentError(f"{p}: not valid YAML: {exc}", field="suite") from exc
        return cls.from_dict(doc, base=p.resolve().parent)

    # -- checking ----------------------------------------------------------------------------

    def validate(self, df: pd.DataFrame, *, settings: Settings | None = None) -> ValidationResult:
        """Check every expectation; never raises for failed ones (see `raise_for_blocking`)."""
        failures = self._pandera(df)
        for exp in self.expectations:
            if isinstance(exp, Distribution):
                failures.extend(self._distribution(exp, df, settings))
        return ValidationResult(self.name, len(df), len(self.expectations), failures)

    def _pandera(self, df: pd.DataFrame) -> list[Failure]:
        import pandera.pandas as pa

        columns: dict[str, Any] = {}
        severity: dict[str | None, str] = {}
        labels: dict[str | None, str] = {}
        frame_checks = []
        for exp in self.expectations:
            if isinstance(exp, Column):
                checks = []
                if exp.min is not None:
                    checks.append(pa.Check.ge(exp.min))
                if exp.max is not None:
                    checks.append(pa.Check.le(exp.max))
                if exp.allowed is not None:
                    checks.append(pa.Check.isin(list(exp.allowed)))
                columns[exp.name] = pa.Column(
                    exp.dtype,
                    checks=checks,
                    nullable=not exp.not_null,
                    unique=exp.unique,
                    required=True,
                    coerce=False,
                )
                severity[exp.name] = exp.severity
            elif isinstance(exp, Rows):
                if exp.min is not None:
                    check = f"row count >= {exp.min}"
                    frame_checks.append(pa.Check(lambda d, n=exp.min: len(d) >= n, error=check))
                    severity[check], labels[check] = exp.severity, check
                if exp.max is not None:
                    check = f"row count <= {exp.max}"
                    frame_checks.append(pa.Check(lambda d, n=exp.max: len(d) <= n, error=check))
                    severity[check], labels[check] = exp.severity, check
        if not columns and not frame_checks:
            return []
        schema = pa.DataFrameSchema(columns, checks=frame_checks, strict=False)
        try:
            schema.validate(df, lazy=True)
        except pa.errors.SchemaErrors as exc:
            return _failures(exc.failure_cases, severity, len(df))
        return []

    def _distribution(
        self, exp: Distribution, df: pd.DataFrame, settings: Settings | None
    ) -> list[Failure]:
        from shipyard.monitoring.drift import detect_drift

        reference = self._reference(exp.reference, settings)
        cols = list(exp.columns) if exp.columns else None
        report = detect_drift(
            reference, df, columns=cols, alpha=exp.alpha, min_effect=exp.min_effect
        )
        out = []
        for column, verdict in report.columns.items():
            if verdict.drifted:
                out.append(
                    Failure(
                        expectation=f"{column}: distribution like {exp.reference}",
                        column=column,
                        check=f"{verdict.test} p={verdict.p_adjusted:.2g}",
                        severity=exp.severity,
                        count=verdict.current_rows,
                        examples=[
                            {
                                "value": round(verdict.effect_size, 4),
                                "metric": verdict.effect_metric,
                                "rule": verdict.rule,
                            }
                        ],
                    )
                )
        return out

    def _reference(self, ref: str, settings: Settings | None) -> Any:
        if ref.startswith("models:/") or ("@" in ref and not Path(ref).exists()):
            from shipyard.registry import Registry
            from shipyard.sketches import Profile
            from shipyard.stores import open_stores

            registry = Registry(open_stores(settings))
            mv = registry.resolve(ref if ref.startswith("models:/") else f"models:/{ref}")
            recorded = registry.reference_profile(mv)
            if recorded is None:
                raise InvalidArgumentError(
                    f"{ref} has no training profile; register it with reference_data=…",
                    field="reference",
                )
            return Profile.from_dict(recorded)
        from shipyard.monitoring.sources import read_table

        path = Path(ref)
        if not path.is_absolute() and self.base is not None:
            path = self.base / path
        return read_table(path)

    def step(self, name: str | None = None) -> Any:
        """A pipeline step that validates its input, records the result as metrics and
        returns the frame unchanged — or fails the pipeline when a blocking check fails."""
        from shipyard.pipelines.step import Step, current_step

        suite = self

        def validate(df: pd.DataFrame) -> pd.DataFrame:
            result = suite.validate(df)
            ctx = current_step()
            ctx.log_metrics(
                {
                    "contract_failures": len(result.failures),
                    "contract_blocking": len(result.blocking),
                }
            )
            ctx.set_tag("contract", suite.name)
            result.raise_for_blocking()
            return df

        validate.__qualname__ = f"validate[{self.name}]"
        return Step(validate, name=name or f"validate_{_slug(self.name)}")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_") or "suite"


def _expectation(item: Any, i: int) -> Expectation:
    if not isinstance(item, Mapping):
        raise InvalidArgumentError(f"expectations[{i}] must be a mapping", field="expectations")
    item = dict(item)
    severity = item.pop("severity", "error")
    if severity not in ("error", "warning"):
        raise InvalidArgumentError(
            f"expectations[{i}]: severity is error or warning, not {severity!r}",
            field="severity",
        )
    try:
        if "column" in item:
            return Column(name=str(item.pop("column")), severity=severity, **item)
        if "rows" in item:
            return Rows(**dict(item["rows"]), severity=severity)
        if "distribution" in item:
            return Distribution(**dict(item["distribution"]), severity=severity)
    except TypeError as exc:
        raise InvalidArgumentError(f"expectations[{i}]: {exc}", field="expectations") from exc
    raise InvalidArgumentError(
        f"expectations[{i}] needs one of: column, rows, distribution", field="expectations"
    )


def _failures(cases: Any, severity: Mapping[str | None, str], rows: int) -> list[Failure]:
    """pandera's failure cases (one row per failing value) grouped per column and check."""
    import pandas as pd

    out = []
    cases = cases.astype({"column": "object", "check": "object"})
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        column = None if pd.isna(column) else str(column)
        check = str(check)
        if check == "column_in_dataframe":
            column, label, count = str(group["failure_case"].iloc[0]), "column is missing", 1
        elif check.startswith("dtype("):
            label, count = f"type {check[6:-1]}", rows
        elif column is None:
            label, count = f"{check} (the frame has {rows})", 1
        else:
            label, count = _label(check), len(group)
        examples = [
            {"value": _plain(v), "row": _plain(r)}
            for v, r in zip(group["failure_case"], group["index"], strict=False)
        ][:EXAMPLES]
        if check.startswith("dtype("):
            examples = [{"value": _plain(group["failure_case"].iloc[0]), "row": None}]
        sev = severity.get(column if column is not None else check, "error")
        if column is None and check in severity:
            sev = severity[check]
        out.append(
            Failure(
                expectation=f"{column}: {label}" if column else label,
                column=column,
                check=check,
                severity=sev,
                count=int(count),
                examples=examples if column is not None and check != "column_in_dataframe" else [],
            )
        )
    return out


_LABELS = {
    "not_nullable": "not null",
    "field_uniqueness": "unique",
}


def _label(check: str) -> str:
    if check in _LABELS:
        return _LABELS[check]
    for prefix, word in (
        ("greater_than_or_equal_to(", "min "),
        ("less_than_or_equal_to(", "max "),
        ("isin(", "in "),
    ):
        if check.startswith(prefix):
            return word + check[len(prefix) : -1]
    return check


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        with contextlib.suppress(ValueError, AttributeError):
            value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, (int, float, str, bool)) else str(value)
