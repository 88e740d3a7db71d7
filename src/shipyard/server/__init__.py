"""The control plane: `shipyard server` (REST API under /api, plus every endpoint's data plane)."""
