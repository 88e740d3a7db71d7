"""`shipyard monitor report` read back as a user reads it: the charts' axes give back the data
(ticks on the bin edges, bar heights on the share axis), the multivariate verdict is the one the
domain classifier computes, and for an endpoint live accuracy is the one `monitor accuracy`
gives (or "not computable" with the reason when no label came back)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import shipyard as sy
from shipyard.config import Settings
from shipyard.monitoring.multivariate import domain_classifier
from shipyard.server.app import create_server_app
from shipyard.serving.http import BackgroundServer
from shipyard.sketches import Profile
from tests.helpers import SHIPYARD

pytestmark = pytest.mark.slow

VOID = {"meta", "br", "img", "input", "hr", "link"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def own_text(self) -> str:  # without nested elements (a <text>'s <title>)
        return "".join(c for c in self.children if isinstance(c, str))

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for c in self.children:
            if isinstance(c, Node):
                if (tag is None or c.tag == tag) and all(
                    (k == "class_" and v in c.classes()) or c.attrs.get(k.rstrip("_")) == v
                    for k, v in attrs.items()
                ):
                    found.append(c)
                found.extend(c.all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


class Tree(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {})
        self.stack = [self.root]
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1 and self.stack.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*SHIPYARD, *args], capture_output=True, text=True, env=dict(os.environ), timeout=300
    )
    assert out.returncode == 0, out.stderr
    return out


def chart_of(page: Node, column: str) -> Node:
    cards = [c for c in page.all("div", class_="card") if c.all("h3")]
    card = next(c for c in cards if c.one("h3").text().split(" — ")[0] == column)
    return card.one("svg")


def y_scale(svg: Node) -> tuple[float, float]:
    """(baseline y, pixels per share) from the y axis's ticks, checking their labels."""
    ticks = svg.one("g", class_="y").all("g", class_="tick")
    values = [float(t.attrs["data-value"] or "") for t in ticks]
    ys = [float(t.one("line").attrs["y1"] or "") for t in ticks]
    for t, v in zip(ticks, values, strict=True):
        assert t.one("text").text().endswith("%")
        assert float(t.one("text").text()[:-1]) == pytest.approx(100 * v, abs=1e-6)
    assert values[0] == 0 and len(values) >= 3
    per_share = (ys[0] - ys[-1]) / values[-1]
    assert all(  # a linear axis: every tick where the first and last put it
        y == pytest.approx(ys[0] - per_share * v, abs=0.02) for v, y in zip(values, ys, strict=True)
    )
    return ys[0], per_share


def bars(svg: Node, cls: str) -> list[tuple[float, float]]:
    return [
        (float(r.attrs["x"] or ""), float(r.attrs["height"] or ""))
        for r in svg.one("g", class_="bars").all("rect", class_=cls)
    ]


def test_axes_give_back_the_data_and_the_multivariate_verdict_is_shown(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 6_000
    ref = pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.6, n),
            "age": rng.normal(45, 12, n),
            "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
        }
    )
    cur = pd.DataFrame(
        {
            "income": rng.lognormal(10.3, 0.6, n),
            "age": rng.normal(45, 12, n),
            "plan": rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    out = cli(
        "monitor",
        "report",
        "--reference",
        str(tmp_path / "ref.parquet"),
        "--current",
        str(tmp_path / "cur.parquet"),
        "--out",
        str(tmp_path / "r.html"),
        "--json-out",
        str(tmp_path / "r.json"),
    )
    assert "2 of 3 column(s) drifted" in out.stdout
    page = Tree((tmp_path / "r.html").read_text()).root
    edges = Profile.from_frame(ref).columns

    for column in ("income", "age"):
        svg = chart_of(page, column)
        ticks = svg.one("g", class_="x").all("g", class_="tick")
        values = [float(t.attrs["data-value"] or "") for t in ticks]
        assert len(values) >= 4 and values == sorted(values)
        assert set(values) <= set(edges[column].edges)  # type: ignore[attr-defined]
        labels = [t.one("text").own_text() for t in ticks]
        assert len(set(labels)) == len(labels)
        for label, value in zip(labels, values, strict=True):
            assert "e" not in label  # 12,300 rather than 1.23e+04
            assert float(label.replace(",", "")) == pytest.approx(value, rel=5e-3)
        positions = [float(t.one("line").attrs["x1"] or "") for t in ticks]
        bar_x = [x for x, _ in bars(svg, "ref")]
        assert all(any(abs(p - x) < 0.02 for x in bar_x) for p in positions)  # on boundaries
        base, per_share = y_scale(svg)
        for r in svg.one("g", class_="bars").all("rect"):  # every bar stands on the 0 tick
            top, height = float(r.attrs["y"] or ""), float(r.attrs["height"] or "")
            assert top + height == pytest.approx(base, abs=0.02)
        for cls, sample in (("ref", ref), ("cur", cur)):
            inset = 0.0 if cls == "ref" else bar_x[1] - bar_x[0]  # current bars sit inset
            heights = bars(svg, cls)
            for (lo, x_lo), (hi, x_hi) in zip(
                zip(values, positions, strict=True),
                zip(values[1:], positions[1:], strict=True),
                strict=False,
            ):
                read = sum(h for x, h in heights if x_lo - 0.02 <= x - inset * 0.25 < x_hi - 0.02)
                share = float(((sample[column] > lo) & (sample[column] <= hi)).mean())
                assert read / per_share == pytest.approx(share, abs=2e-3), (column, cls, lo, hi)
        legend = svg.one("g", class_="legend").text()
        assert "reference (6,000 rows)" in legend and "current (6,000 rows)" in legend

    plan = chart_of(page, "plan")
    assert [t.attrs["data-value"] for t in plan.one("g", class_="x").all("g", class_="tick")] == [
        "basic",
        "pro",
        "team",
    ]
    y_scale(plan)

    expected = domain_classifier(ref, cur, columns=["income", "age", "plan"], alpha=0.05)
    assert expected.drifted
    section = page.one("div", id="multivariate")
    assert section.one(id="multivariate-verdict").text() == "drift"
    auc = section.one(**{"data-field": "auc"})
    assert float(auc.attrs["data-value"] or "") == pytest.approx(expected.auc, abs=1e-12)
    assert auc.text() == f"{expected.auc:.3f}"
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["multivariate"]["computed"] is True
    assert doc["multivariate"]["drifted"] is expected.drifted
    assert doc["multivariate"]["auc"] == pytest.approx(expected.auc, abs=1e-12)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


def report_on(endpoint: str, tmp_path: Path, name: str) -> tuple[Node, dict[str, Any]]:
    cli(
        "monitor",
        "report",
        "--endpoint",
        endpoint,
        "--window",
        "1h",
        "--out",
        str(tmp_path / f"{name}.html"),
        "--json-out",
        str(tmp_path / f"{name}.json"),
    )
    return (
        Tree((tmp_path / f"{name}.html").read_text()).root,
        json.loads((tmp_path / f"{name}.json").read_text()),
    )


def assert_not_computable_yet(page: Node, doc: dict[str, Any]) -> None:
    """Before any label came back: live accuracy is "not computable" and says why."""
    section = page.one("div", id="accuracy")
    assert section.one(**{"data-field": "labelled_rows"}).text() == "0"
    reason = section.one(**{"data-field": "not_computable"}).text()
    assert reason.startswith("not computable: no label was sent back for this endpoint")
    assert "nan" not in section.text().lower()
    assert doc["accuracy"]["not_computable"]["all"] in reason
    assert "live accuracy: not computable" in page.one(id="summary").text()
    # the reference is the training profile, so no rows for a domain classifier: said so
    assert page.one(id="multivariate-verdict").text() == "not computed"
    assert "--reference FILE" in page.one("div", id="multivariate").text()
    assert doc["multivariate"]["computed"] is False


def test_an_endpoint_report_shows_live_accuracy_or_why_not(
    settings: Settings,
    breast_cancer: Any,
    logreg: Any,
    tmp_path: Path,
) -> None:
    X, y = breast_cancer
    with sy.start_run(experiment="live") as run:
        run.log_dataset(X, name="train")
        mv = run.log_model(logreg, name="churn", input_example=X[:5])
    sy.set_alias("churn", "champion", mv.version)
    from shipyard.stores import open_stores

    open_stores(settings).metadata.endpoints.create("churn", "models:/churn@champion", actor="t")
    fast = settings.model_copy(update={"predlog_flush_seconds": 0.1})
    live = X.sample(200, random_state=2)
    truth = y.loc[live.index].to_numpy()
    sent: list[tuple[str, list[Any], list[int]]] = []
    with BackgroundServer(create_server_app(fast, refresh_seconds=0.2)) as srv:
        srv.wait_ready()
        for start in range(0, 200, 20):
            r = httpx.post(
                f"{srv.url}/endpoints/churn/predict",
                json={"instances": live.iloc[start : start + 20].to_dict(orient="records")},
            )
            assert r.status_code == 200
            labels = [int(v) for v in truth[start : start + 20]]
            sent.append((r.json()["request_id"], r.json()["predictions"], labels))
        time.sleep(0.6)
        assert_not_computable_yet(*report_on("churn", tmp_path, "before"))

        for rid, _, labels in sent[:6]:  # labels for 120 of the 200 rows
            labels[0] = 1 - labels[0]  # one wrong answer per request, whatever the model said
            r = httpx.post(
                f"{srv.url}/endpoints/churn/feedback", json={"request_id": rid, "labels": labels}
            )
            assert r.status_code < 300, r.text
        time.sleep(0.6)
    page, doc = report_on("churn", tmp_path, "after")
    told = json.loads(
        cli("monitor", "accuracy", "--endpoint", "churn", "--window", "1h", "--json").stdout
    )
    hits = sum(
        p == t
        for _, predictions, labels in sent[:6]
        for p, t in zip(predictions, labels, strict=True)
    )
    assert told["labelled_rows"] == 120
    assert told["overall"]["accuracy"] == pytest.approx(hits / 120)
    section = page.one("div", id="accuracy")
    assert section.one(**{"data-field": "labelled_rows"}).text() == "120"
    overall = section.one("tr", **{"data-version": "all"})
    assert overall.one(**{"data-metric": "n"}).text() == "120"
    accuracy = overall.one(**{"data-metric": "accuracy"})
    assert float(accuracy.attrs["data-value"] or "") == told["overall"]["accuracy"]
    assert accuracy.text() == f"{told['overall']['accuracy']:.4g}"
    assert (
        float(overall.one(**{"data-metric": "f1"}).attrs["data-value"] or "")
        == told["overall"]["f1"]
    )
    version = section.one("tr", **{"data-version": str(mv.version)})
    assert version.one(**{"data-metric": "n"}).text() == "120"
    assert doc["accuracy"]["overall"] == told["overall"]
    headline = f"live accuracy {told['overall']['accuracy']:.4g} over 120 labelled rows"
    assert headline in page.one(id="summary").text()
    assert doc["accuracy"]["labelled_rows"] == 120
