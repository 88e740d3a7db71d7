"""Foreign protocols on shipyard's own stores: MLflow's REST API (`compat.mlflow`).

An edge like `server/` and `cli/`: it speaks another tool's wire format and calls the
capabilities (tracking, registry), never the stores.
"""
