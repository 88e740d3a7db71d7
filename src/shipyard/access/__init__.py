"""Who may call shipyard: API keys (created once, stored hashed, scoped, revocable).

keys = ApiKeys(open_stores())
record, secret = keys.create("ci-bot", scopes=["predict"], endpoints=["churn"])
keys.revoke(record.id, reason="rotated")
"""

from __future__ import annotations

from shipyard.access.keys import ApiKeys

__all__ = ["ApiKeys"]
