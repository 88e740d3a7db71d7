"""Pipelines: steps, DAG runner, caching and lineage, data contracts, quality gates, executors."""
