"""fences/sklearn.py: its check passes on the installed scikit-learn; without a scorer's
`_score_func` the metric function is found by the name its repr shows, so the reviewed types
of skops_trust stay the same."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sklearn import metrics

from shipyard.fences import sklearn as fence
from shipyard.flavors import skops_trust


@pytest.fixture(autouse=True)
def _fresh_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fence, "_usable", None)  # restored after the test
    skops_trust.reviewed_types.cache_clear()
    yield
    skops_trust.reviewed_types.cache_clear()


class _Renamed:
    """A scorer of a scikit-learn that renamed `_score_func` (its public repr unchanged)."""

    __module__ = "sklearn.metrics._scorer"  # where scikit-learn's scorer classes live

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __repr__(self) -> str:
        return repr(self._inner)


def test_check_passes_on_the_installed_version(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.check() is True
    assert caplog.records == []
    assert fence.score_function(metrics.get_scorer("f1")) is metrics.f1_score


def test_without_score_func_the_repr_names_the_same_functions(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    expected = skops_trust.reviewed_types()
    assert "sklearn.metrics._classification.accuracy_score" in expected
    skops_trust.reviewed_types.cache_clear()
    get_scorer = metrics.get_scorer
    monkeypatch.setattr(metrics, "get_scorer", lambda name: _Renamed(get_scorer(name)))
    with caplog.at_level(logging.WARNING, "shipyard.fences"):
        assert fence.check() is False
        assert skops_trust.reviewed_types() == expected
    assert len(caplog.records) == 1
    assert "_score_func" in caplog.records[0].getMessage()
