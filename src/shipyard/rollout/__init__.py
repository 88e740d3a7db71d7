"""Safe rollouts: canary, A/B, shadow and blue-green policies on an endpoint, and the
controller that judges the candidate on live evidence and promotes or rolls back."""

from __future__ import annotations

from shipyard.rollout.controller import Controller, Verdict, decide
from shipyard.rollout.deployments import Deployments

__all__ = ["Controller", "Deployments", "Verdict", "decide"]
