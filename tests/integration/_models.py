"""Importable helper models for tests that pickle (pickle needs an importable class)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Doubler:
    def predict(self, x: Any) -> Any:
        return np.asarray(x)[:, 0] * 2


class Sleeper:
    """Takes `seconds` per call: for timeout tests."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, x: Any) -> Any:
        import time

        time.sleep(self.seconds)
        return np.asarray(x)[:, 0]


class Broken:
    """Fails on every call after `ok_calls` (warm-up passes)."""

    def __init__(self, ok_calls: int = 3) -> None:
        self.ok_calls = ok_calls
        self.calls = 0

    def predict(self, x: Any) -> Any:
        self.calls += 1
        if self.calls > self.ok_calls:
            raise ValueError("candidate exploded")
        return np.zeros(len(x))


class Constant:
    """Predicts one label for everything."""

    def __init__(self, label: int) -> None:
        self.label = label

    def predict(self, x: Any) -> Any:
        return np.full(len(np.asarray(x)), self.label)


class SlowConstant(Constant):
    """A constant label, `seconds` late."""

    def __init__(self, label: int, seconds: float) -> None:
        super().__init__(label)
        self.seconds = seconds

    def predict(self, x: Any) -> Any:
        import time

        time.sleep(self.seconds)
        return super().predict(x)
